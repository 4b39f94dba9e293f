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
    if size == 0 {
        let empty = MapReader::new(&[], None);
        return hash(empty).map_err(PipeError::Write);
    }
    // SAFETY: `dst` is a file this process just created under a temporary
    // name and sized above; nothing else writes or truncates it while the
    // mapping lives (the store is locked to this process, and an export's
    // temporary is replaced only by another export of this process), so
    // the mapped bytes stay valid, and they are only read.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(dst) }.map_err(PipeError::Write)?;
    let mut from = src.try_clone().map_err(PipeError::Read)?;
    let mut to = dst.try_clone().map_err(PipeError::Write)?;
    std::io::Seek::rewind(&mut from).map_err(PipeError::Read)?;
    std::io::Seek::rewind(&mut to).map_err(PipeError::Write)?;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<u64>();
        let hasher = s.spawn(|| hash(MapReader::new(&map, Some(rx))));
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

/// Reads a mapping up to the offset the copier has reached.
pub(super) struct MapReader<'a> {
    map: &'a [u8],
    ready: Option<mpsc::Receiver<u64>>,
    limit: usize,
    pos: usize,
}

impl<'a> MapReader<'a> {
    fn new(map: &'a [u8], ready: Option<mpsc::Receiver<u64>>) -> Self {
        let limit = if ready.is_none() { map.len() } else { 0 };
        Self {
            map,
            ready,
            limit,
            pos: 0,
        }
    }
}

impl Read for MapReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.limit {
            match self.ready.as_ref().map(|r| r.recv()) {
                Some(Ok(n)) => self.limit = (n as usize).min(self.map.len()),
                _ => return Ok(0),
            }
        }
        let n = (self.limit - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.map[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
