//! Chunk codecs: decompression and compression (through `flate2` and `weezl`), PackBits,
//! TIFF predictors 2 and 3, and sample conversion to and from `f32`.
//!
//! Every function works on one chunk's bytes and reports damage as a message; the caller
//! adds the file and chunk index.

use std::io::{Read, Write};

use super::{Compression, DataType};

/// The largest ratio of decoded to stored bytes a chunk in this compression can have, or
/// `None` for a compression this reader does not decode. A chunk claiming more is damaged
/// (or hostile), and is refused before anything is allocated for it.
///
/// Deflate cannot exceed 1032:1 (258-byte matches in 2-bit codes); TIFF LZW with 12-bit codes
/// about 1400:1 (its strings grow by one byte per code); PackBits 64:1 (128 bytes from a
/// 2-byte run); no compression 1:1.
pub(crate) fn max_ratio(compression: Compression) -> Option<u64> {
    match compression {
        Compression::None => Some(1),
        Compression::PackBits => Some(64),
        Compression::Deflate => Some(1100),
        Compression::Lzw => Some(2048),
        _ => None,
    }
}

/// Decompresses one chunk into exactly `expected` bytes (extra output is ignored).
#[cfg(test)]
pub(crate) fn decompress(
    compression: Compression,
    src: &[u8],
    expected: usize,
) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; expected];
    decompress_into(compression, src, &mut out)?;
    Ok(out)
}

/// Decompresses one chunk into `out`, which it fills exactly (extra output is ignored).
pub(crate) fn decompress_into(
    compression: Compression,
    src: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    let expected = out.len();
    let got = match compression {
        Compression::None => {
            let n = expected.min(src.len());
            out[..n].copy_from_slice(&src[..n]);
            n
        }
        Compression::Deflate => {
            let mut dec = flate2::read::ZlibDecoder::new(src);
            let mut filled = 0;
            while filled < expected {
                match dec.read(&mut out[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => return Err(format!("deflate: {e}")),
                }
            }
            filled
        }
        Compression::Lzw => {
            let mut dec = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
            let (mut consumed, mut filled) = (0, 0);
            loop {
                let r = dec.decode_bytes(&src[consumed..], &mut out[filled..]);
                consumed += r.consumed_in;
                filled += r.consumed_out;
                match r.status {
                    Ok(weezl::LzwStatus::Ok) if r.consumed_in > 0 || r.consumed_out > 0 => {}
                    Ok(_) => break,
                    // Many TIFF writers end strips without an end code; a short read below
                    // catches real truncation.
                    Err(_) if filled == expected => break,
                    Err(e) => return Err(format!("LZW: {e}")),
                }
                if filled == expected {
                    break;
                }
            }
            filled
        }
        Compression::PackBits => unpack_bits(src, out),
        other => return Err(format!("compression {other} is not supported")),
    };
    if got < expected {
        return Err(format!("decoded {got} bytes, expected {expected}"));
    }
    Ok(())
}

/// PackBits (Apple run-length) decoding into `out`; returns the bytes written.
fn unpack_bits(src: &[u8], out: &mut [u8]) -> usize {
    let (mut i, mut o) = (0, 0);
    while i < src.len() && o < out.len() {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            let len = (n as usize + 1).min(src.len() - i).min(out.len() - o);
            out[o..o + len].copy_from_slice(&src[i..i + len]);
            i += n as usize + 1;
            o += len;
        } else if n != -128 {
            let Some(&b) = src.get(i) else { break };
            i += 1;
            let len = ((1 - i32::from(n)) as usize).min(out.len() - o);
            out[o..o + len].fill(b);
            o += len;
        }
    }
    o
}

/// Compresses one chunk.
pub(crate) fn compress(
    compression: Compression,
    level: u32,
    src: &[u8],
) -> Result<Vec<u8>, String> {
    match compression {
        Compression::None => Ok(src.to_vec()),
        Compression::Deflate => {
            let mut enc = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(src.len() / 2),
                flate2::Compression::new(level.clamp(1, 9)),
            );
            enc.write_all(src).map_err(|e| e.to_string())?;
            enc.finish().map_err(|e| e.to_string())
        }
        Compression::Lzw => {
            let mut enc = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
            enc.encode(src).map_err(|e| e.to_string())
        }
        other => Err(format!("writing {other} compression is not supported")),
    }
}

/// Puts samples of `size` bytes stored in the file's byte order into native order.
fn to_native(buf: &mut [u8], size: usize, little_endian: bool) {
    if size == 1 || little_endian == cfg!(target_endian = "little") {
        return;
    }
    for s in buf.chunks_exact_mut(size) {
        s.reverse();
    }
}

/// Undoes horizontal differencing (predictor 2) on one row of native-order samples.
fn undo_horizontal(row: &mut [u8], size: usize, spp: usize) {
    macro_rules! acc {
        ($t:ty) => {{
            let n = row.len() / size;
            for i in spp..n {
                let (a, b) = row.split_at_mut(i * size);
                let prev = <$t>::from_ne_bytes(
                    a[(i - spp) * size..][..size].try_into().unwrap_or_default(),
                );
                let cur = <$t>::from_ne_bytes(b[..size].try_into().unwrap_or_default());
                b[..size].copy_from_slice(&cur.wrapping_add(prev).to_ne_bytes());
            }
        }};
    }
    match size {
        1 => {
            for i in spp..row.len() {
                row[i] = row[i].wrapping_add(row[i - spp]);
            }
        }
        2 => acc!(u16),
        4 => acc!(u32),
        _ => acc!(u64),
    }
}

/// Applies horizontal differencing (predictor 2) to one row of native-order samples.
fn apply_horizontal(row: &mut [u8], size: usize, spp: usize) {
    macro_rules! diff {
        ($t:ty) => {{
            let n = row.len() / size;
            for i in (spp..n).rev() {
                let (a, b) = row.split_at_mut(i * size);
                let prev = <$t>::from_ne_bytes(
                    a[(i - spp) * size..][..size].try_into().unwrap_or_default(),
                );
                let cur = <$t>::from_ne_bytes(b[..size].try_into().unwrap_or_default());
                b[..size].copy_from_slice(&cur.wrapping_sub(prev).to_ne_bytes());
            }
        }};
    }
    match size {
        1 => {
            for i in (spp..row.len()).rev() {
                row[i] = row[i].wrapping_sub(row[i - spp]);
            }
        }
        2 => diff!(u16),
        4 => diff!(u32),
        _ => diff!(u64),
    }
}

/// Undoes the floating-point predictor (3) on one row: byte differencing with stride
/// `spp`, then the byte planes (most significant first) are interleaved back into
/// native-order samples.
fn undo_float(row: &mut [u8], size: usize, spp: usize, tmp: &mut Vec<u8>) {
    for i in spp..row.len() {
        row[i] = row[i].wrapping_add(row[i - spp]);
    }
    tmp.clear();
    tmp.extend_from_slice(row);
    let n = row.len() / size;
    for (i, out) in row.chunks_exact_mut(size).enumerate() {
        // Byte k of the big-endian representation is in plane k.
        let mut be = [0u8; 8];
        for (k, b) in be[..size].iter_mut().enumerate() {
            *b = tmp[k * n + i];
        }
        if cfg!(target_endian = "little") {
            be[..size].reverse();
        }
        out.copy_from_slice(&be[..size]);
    }
}

/// Applies the floating-point predictor (3) to one row of native-order samples.
fn apply_float(row: &mut [u8], size: usize, spp: usize, tmp: &mut Vec<u8>) {
    tmp.clear();
    tmp.extend_from_slice(row);
    let n = row.len() / size;
    for (i, s) in tmp.chunks_exact(size).enumerate() {
        let mut be = [0u8; 8];
        be[..size].copy_from_slice(s);
        if cfg!(target_endian = "little") {
            be[..size].reverse();
        }
        for (k, &b) in be[..size].iter().enumerate() {
            row[k * n + i] = b;
        }
    }
    for i in (spp..row.len()).rev() {
        row[i] = row[i].wrapping_sub(row[i - spp]);
    }
}

/// Turns a decompressed chunk (file byte order, predictor applied) into native-order
/// samples, row by row (`row_bytes` per row, `spp` samples per pixel).
pub(crate) fn unpredict(
    buf: &mut [u8],
    dt: DataType,
    predictor: u16,
    little_endian: bool,
    row_bytes: usize,
    spp: usize,
) {
    let size = dt.size();
    if row_bytes == 0 {
        return;
    }
    match predictor {
        3 => {
            let mut tmp = Vec::with_capacity(row_bytes);
            for row in buf.chunks_exact_mut(row_bytes) {
                undo_float(row, size, spp, &mut tmp);
            }
        }
        2 => {
            to_native(buf, size, little_endian);
            for row in buf.chunks_exact_mut(row_bytes) {
                undo_horizontal(row, size, spp);
            }
        }
        _ => to_native(buf, size, little_endian),
    }
}

/// Applies a predictor to native-order samples before compression (inverse of
/// [`unpredict`] for a little-endian file written on this machine).
pub(crate) fn predict(buf: &mut [u8], dt: DataType, predictor: u16, row_bytes: usize, spp: usize) {
    let size = dt.size();
    if row_bytes == 0 {
        return;
    }
    let mut tmp = Vec::with_capacity(row_bytes);
    for row in buf.chunks_exact_mut(row_bytes) {
        match predictor {
            3 => apply_float(row, size, spp, &mut tmp),
            2 => apply_horizontal(row, size, spp),
            _ => {}
        }
    }
}

/// Converts native-order samples to `f32`, appending to `out`.
pub(crate) fn samples_to_f32(buf: &[u8], dt: DataType, out: &mut Vec<f32>) {
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            out.extend(buf.chunks_exact($n).map(|c| {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                <$t>::from_ne_bytes(a) as f32
            }))
        };
    }
    match dt {
        DataType::U8 => out.extend(buf.iter().map(|&b| f32::from(b))),
        DataType::I8 => out.extend(buf.iter().map(|&b| f32::from(b as i8))),
        DataType::U16 => conv!(u16, 2),
        DataType::I16 => conv!(i16, 2),
        DataType::U32 => conv!(u32, 4),
        DataType::I32 => conv!(i32, 4),
        DataType::F32 => conv!(f32, 4),
        DataType::F64 => conv!(f64, 8),
    }
}

/// Appends one value (already validated to fit, NaN only for floats) in native order.
pub(crate) fn push_sample(v: f64, dt: DataType, out: &mut Vec<u8>) {
    match dt {
        DataType::U8 => out.push(v.round() as u8),
        DataType::I8 => out.extend_from_slice(&(v.round() as i8).to_ne_bytes()),
        DataType::U16 => out.extend_from_slice(&(v.round() as u16).to_ne_bytes()),
        DataType::I16 => out.extend_from_slice(&(v.round() as i16).to_ne_bytes()),
        DataType::U32 => out.extend_from_slice(&(v.round() as u32).to_ne_bytes()),
        DataType::I32 => out.extend_from_slice(&(v.round() as i32).to_ne_bytes()),
        DataType::F32 => out.extend_from_slice(&(v as f32).to_ne_bytes()),
        DataType::F64 => out.extend_from_slice(&v.to_ne_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_matches_the_tiff_spec_example() {
        // TIFF 6.0 specification, section 9 (PackBits), the worked example.
        let packed = [
            0xFEu8, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7,
            0xAA,
        ];
        let want = [
            0xAAu8, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22,
            0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA,
        ];
        let out = decompress(Compression::PackBits, &packed, want.len()).unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn predictors_round_trip() {
        for (dt, pred) in [
            (DataType::U8, 2),
            (DataType::I16, 2),
            (DataType::U32, 2),
            (DataType::F32, 3),
            (DataType::F64, 3),
            (DataType::F32, 2),
        ] {
            let mut raw = Vec::new();
            for i in 0..48 {
                push_sample(f64::from(i * 7 % 23), dt, &mut raw);
            }
            let spp = 2;
            let row_bytes = 8 * spp * dt.size();
            let mut buf = raw.clone();
            predict(&mut buf, dt, pred, row_bytes, spp);
            assert_ne!(buf, raw, "{dt:?} predictor {pred} changed nothing");
            unpredict(
                &mut buf,
                dt,
                pred,
                cfg!(target_endian = "little"),
                row_bytes,
                spp,
            );
            assert_eq!(buf, raw, "{dt:?} predictor {pred}");
        }
    }

    #[test]
    fn codecs_round_trip_and_short_data_is_an_error() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        for c in [Compression::None, Compression::Deflate, Compression::Lzw] {
            let z = compress(c, 6, &data).unwrap();
            assert_eq!(decompress(c, &z, data.len()).unwrap(), data, "{c}");
            assert!(decompress(c, &z, data.len() + 10).is_err(), "{c}");
        }
        assert!(decompress(Compression::Deflate, b"garbage", 10).is_err());
    }
}
