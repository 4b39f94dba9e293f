//! Copy-then-hash between real files: the kernel copies (`copy_file_range`,
//! one copy of each byte, as `cp` does), and a second thread hashes the
//! *copy* through a read-only mapping, 64 MiB behind. Reading the bytes
//! into user space to hash them and writing them back out costs two more
//! copies; on this project's machines memory bandwidth, not hashing, is
//! what limits import and export.
//!
//! Hashing the destination rather than the source means the hash is always
//! of the bytes that are kept, even if the source changes meanwhile.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc;

use super::import::PipeError;

/// Bytes copied per step; the hasher follows one step behind.
const STEP: u64 = 64 << 20;

/// Copy `size` bytes from the start of `src` to the start of `dst` (which
/// must be empty and private to this process), and run `hash` over the
/// copied bytes as they land. `progress` is told of each copied step.
pub(super) fn copy_then_hash<T: Send>(
    src: &File,
    dst: &File,
    size: u64,
    progress: &dyn Fn(u64),
    hash: impl FnOnce(MapReader<'_>) -> io::Result<T> + Send,
) -> Result<T, PipeError> {
    dst.set_len(size).map_err(PipeError::Write)?;
    let mut from = src.try_clone().map_err(PipeError::Read)?;
    let mut to = dst.try_clone().map_err(PipeError::Write)?;
    std::io::Seek::rewind(&mut from).map_err(PipeError::Read)?;
    std::io::Seek::rewind(&mut to).map_err(PipeError::Write)?;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<u64>();
        let hasher = s.spawn(|| hash(MapReader::new(dst, size, rx)));
        let mut done = 0u64;
        let mut result = Ok(());
        while done < size {
            let n = (size - done).min(STEP);
            // std turns this into copy_file_range between two files.
            match io::copy(&mut (&mut from).take(n), &mut to) {
                Ok(m) if m == n => {}
                Ok(_) => {
                    result = Err(PipeError::Read(io::ErrorKind::UnexpectedEof.into()));
                    break;
                }
                Err(e) => {
                    // Reading the source or writing the copy: which, the
                    // error kind cannot tell; a full disk is the common case.
                    result = Err(PipeError::Write(e));
                    break;
                }
            }
            done += n;
            progress(n);
            if tx.send(done).is_err() {
                break;
            }
        }
        drop(tx);
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("hashing thread panicked")));
        result?;
        hashed.map_err(PipeError::Write)
    })
}

/// Mapped at a time: small, so that resident memory stays bounded however
/// large the file (mapped page-cache pages count as the process's RSS).
const WINDOW: u64 = 8 << 20;

/// Reads the copy through a sliding read-only mapping, up to the offset the
/// copier has reached.
pub(super) struct MapReader<'a> {
    file: &'a File,
    size: u64,
    ready: mpsc::Receiver<u64>,
    /// Bytes the copier has finished.
    limit: u64,
    /// Next byte to hand out.
    pos: u64,
    window: Option<(u64, memmap2::Mmap)>,
}

impl<'a> MapReader<'a> {
    fn new(file: &'a File, size: u64, ready: mpsc::Receiver<u64>) -> Self {
        Self {
            file,
            size,
            ready,
            limit: 0,
            pos: 0,
            window: None,
        }
    }

    fn map(&mut self) -> io::Result<&[u8]> {
        let start = self.pos - self.pos % WINDOW;
        if self.window.as_ref().map(|(s, _)| *s) != Some(start) {
            // Unmap the old window first, so at most one is resident.
            self.window = None;
            let len = WINDOW.min(self.size - start) as usize;
            // SAFETY: the file is a temporary this process created and
            // sized before copying into it; nothing else writes or
            // truncates it while a window is mapped (the store is locked
            // to this process, and an export's temporary is replaced only
            // by this process), so the mapped bytes stay valid. Only read.
            #[allow(unsafe_code)]
            let map = unsafe {
                memmap2::MmapOptions::new()
                    .offset(start)
                    .len(len)
                    .map(self.file)?
            };
            self.window = Some((start, map));
        }
        let (start, map) = self.window.as_ref().ok_or(io::ErrorKind::Other)?;
        Ok(&map[(self.pos - start) as usize..])
    }
}

impl Read for MapReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.limit {
            if self.pos == self.size {
                return Ok(0);
            }
            match self.ready.recv() {
                Ok(n) => self.limit = n.min(self.size),
                Err(_) => return Ok(0),
            }
        }
        let avail = (self.limit - self.pos) as usize;
        let bytes = self.map()?;
        let n = avail.min(out.len()).min(bytes.len());
        out[..n].copy_from_slice(&bytes[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}
