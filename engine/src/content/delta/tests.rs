use super::*;

/// Bytes that look like a build of a program: repeats with small
/// differences, so that a patch has something to find.
fn program(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes()[..((x >> 60) as usize % 8) + 1]);
        out.extend_from_slice(b"call rel32 ; mov rax, [rip+disp] ; ");
    }
    out.truncate(len);
    out
}

/// `old` with addresses shifted the way a small source change shifts them.
fn next_build(old: &[u8]) -> Vec<u8> {
    let mut new = old.to_vec();
    new.splice(5_000..5_000, b"a new function body".iter().copied());
    for i in (0..new.len()).step_by(997) {
        new[i] = new[i].wrapping_add(3);
    }
    new.truncate(new.len() - 1_234);
    new
}

fn applied(old: &[u8], patch: &[u8], size: u64) -> Result<Vec<u8>, PatchError> {
    let mut out = Vec::new();
    apply(
        old,
        old.len() as u64,
        patch,
        patch.len() as u64,
        size,
        &mut |b| {
            assert!(b.len() <= STEP);
            out.extend_from_slice(b);
            Ok(())
        },
    )?;
    Ok(out)
}

#[test]
fn a_patch_turns_the_old_build_into_the_new_one_and_is_small() {
    let old = program(600_000, 7);
    let new = next_build(&old);
    let patch = make(&old, &new).expect("make");
    assert_eq!(&patch[..8], MAGIC_ZSTD);
    // Format 1 too, which bspatch reads.
    let bs = make_bsdiff(&old, &new).expect("make");
    assert_eq!(&bs[..8], MAGIC);
    assert_eq!(applied(&old, &bs, new.len() as u64).expect("apply"), new);
    assert!(
        patch.len() < new.len() / 10,
        "{} for {}",
        patch.len(),
        new.len()
    );
    assert_eq!(applied(&old, &patch, new.len() as u64).expect("apply"), new);
    // The same pair makes the same patch, byte for byte: a release's root
    // must not depend on the machine that made it.
    assert_eq!(make(&old, &new).expect("again"), patch);
    // From nothing, and to nothing.
    let from_empty = make(&[], &new).expect("make");
    assert_eq!(
        applied(&[], &from_empty, new.len() as u64).expect("apply"),
        new
    );
    let to_empty = make(&old, &[]).expect("make");
    assert!(applied(&old, &to_empty, 0).expect("apply").is_empty());
}

#[test]
fn a_patch_for_another_size_or_format_is_refused_before_any_output() {
    let old = program(100_000, 3);
    let new = next_build(&old);
    let patch = make(&old, &new).expect("make");
    let n = new.len() as u64;
    let mut out = 0usize;
    let mut count = |b: &[u8]| {
        out += b.len();
        Ok(())
    };
    // The release says another size: nothing is produced.
    let e = apply(
        &old[..],
        100_000,
        &patch[..],
        patch.len() as u64,
        n - 1,
        &mut count,
    )
    .unwrap_err();
    assert!(matches!(e, PatchError::WrongSize { .. }), "{e}");
    let mut other = patch.clone();
    other[..8].copy_from_slice(b"ZSTDPTCH");
    let e = apply(
        &old[..],
        100_000,
        &other[..],
        other.len() as u64,
        n,
        &mut count,
    )
    .unwrap_err();
    assert!(matches!(e, PatchError::UnknownFormat), "{e}");
    let e = apply(&old[..], 100_000, &patch[..5], 5, n, &mut count).unwrap_err();
    assert!(matches!(e, PatchError::Read(_)), "{e}");
    assert_eq!(out, 0);
}

#[test]
fn a_damaged_patch_is_an_error_or_other_bytes_never_more_than_the_size() {
    let old = program(200_000, 11);
    let new = next_build(&old);
    let patch = make(&old, &new).expect("make");
    let n = new.len() as u64;
    // Every 37th byte after the header flipped in turn: never a panic,
    // never output past the size; whatever comes out that is not the new
    // file is for the caller's verification to catch.
    let mut errors = 0;
    for i in (HEADER_LEN..patch.len()).step_by(37) {
        let mut bad = patch.clone();
        bad[i] ^= 0x40;
        let mut produced = 0u64;
        let r = apply(
            &old[..],
            old.len() as u64,
            &bad[..],
            bad.len() as u64,
            n,
            &mut |b| {
                produced += b.len() as u64;
                Ok(())
            },
        );
        assert!(produced <= n);
        if r.is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0, "no damage was noticed by the reader at all");
}

#[test]
fn control_triples_that_point_past_the_size_are_refused() {
    // A hand-made patch: one triple adding 10 bytes to a file of 5.
    let triple = {
        let mut t = Vec::new();
        for v in [10u64, 0, 0] {
            t.extend_from_slice(&v.to_le_bytes());
        }
        t
    };
    let bz = |b: &[u8]| {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        std::io::Write::write_all(&mut e, b).expect("bzip2");
        e.finish().expect("bzip2")
    };
    let (ctrl, diff, extra) = (bz(&triple), bz(&[0u8; 10]), bz(&[]));
    let mut p = MAGIC.to_vec();
    for v in [ctrl.len() as u64, diff.len() as u64, 5] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&ctrl);
    p.extend_from_slice(&diff);
    p.extend_from_slice(&extra);
    let e = applied(b"hello", &p, 5).unwrap_err();
    assert!(matches!(e, PatchError::Malformed(_)), "{e}");
    // A header whose streams are longer than the patch.
    let mut long = p.clone();
    long[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = applied(b"hello", &long, 5).unwrap_err();
    assert!(matches!(e, PatchError::Malformed(_)), "{e}");
    // A negative length.
    let mut neg = p;
    neg[23] |= 0x80;
    let e = applied(b"hello", &neg, 5).unwrap_err();
    assert!(matches!(e, PatchError::Malformed(_)), "{e}");
}

/// The pair of wire-spec/content.md §3.2.
fn vector_pair() -> (Vec<u8>, Vec<u8>) {
    let old = b"swarm delta vector: version 1.0.0 of a file\n".repeat(3);
    let mut new = old.clone();
    new[28..33].copy_from_slice(b"1.1.0");
    new.extend_from_slice(b"and a new last line\n");
    (old, new)
}

fn spec_block(name: &str) -> String {
    let spec = include_str!("../../../../wire-spec/content.md");
    let open = format!("<!-- {name} -->");
    let body = &spec[spec.find(&open).expect("marker") + open.len()..];
    let a = body.find("```").expect("block") + 3;
    let b = a + body[a..].find("```").expect("block end");
    body[a..b].split_whitespace().collect()
}

#[test]
fn the_spec_vector_applies_to_its_base_and_makes_the_new_file() {
    let (old, new) = vector_pair();
    let hex = spec_block("delta-vector-patch");
    let patch: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(patch.len(), 179);
    let h = Header::parse(&patch, patch.len() as u64).expect("header");
    assert_eq!((h.ctrl_len, h.diff_len, h.new_size), (49, 45, 152));
    assert_eq!(applied(&old, &patch, 152).expect("apply"), new);
}

#[test]
fn the_spec_record_vector_encodes_and_decodes() {
    let p = PatchRef {
        format: FORMAT_BSDIFF4,
        base: Hash::of(b"v1"),
        patch: Hash::of(b"patch"),
        size: 300,
    };
    let bytes = encode_record(&[p]);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, spec_block("delta-vector-record"));
    assert_eq!(decode_record(&bytes), Some(vec![p]));
    // An unknown format is skipped, the rest kept; a broken record is none.
    let mut other = bytes.clone();
    other[1] = 7;
    assert_eq!(decode_record(&other), Some(vec![]));
    assert_eq!(decode_record(&bytes[..bytes.len() - 1]), None);
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(decode_record(&extra), None);
    assert_eq!(decode_record(&[0]), None);
    assert_eq!(decode_record(&[9]), None);
}

#[test]
fn a_format_2_stream_that_asks_for_a_huge_window_is_refused() {
    // A valid patch of 5 bytes whose add stream is a zstd frame declaring
    // a 128 MiB window: refused before the decoder allocates it.
    let z = |b: &[u8], log: u32| {
        let mut e = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd");
        e.set_parameter(zstd::stream::raw::CParameter::WindowLog(log))
            .expect("window");
        std::io::Write::write_all(&mut e, b).expect("write");
        e.finish().expect("finish")
    };
    let triple: Vec<u8> = [5u64, 0, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let build = |log: u32| {
        let (ctrl, diff, extra) = (z(&triple, 20), z(&[0u8; 5], log), z(&[], 20));
        let mut p = MAGIC_ZSTD.to_vec();
        for v in [ctrl.len() as u64, diff.len() as u64, 5] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p.extend_from_slice(&ctrl);
        p.extend_from_slice(&diff);
        p.extend_from_slice(&extra);
        p
    };
    assert_eq!(applied(b"hello", &build(20), 5).expect("apply"), b"hello");
    let e = applied(b"hello", &build(27), 5).unwrap_err();
    assert!(matches!(e, PatchError::Read(_)), "{e}");
}

#[test]
fn the_spec_format_2_vector_applies_to_its_base() {
    let (old, new) = vector_pair();
    let hex = spec_block("delta-vector-patch-2");
    let patch: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(&patch[..8], MAGIC_ZSTD);
    assert_eq!(applied(&old, &patch, 152).expect("apply"), new);
}
