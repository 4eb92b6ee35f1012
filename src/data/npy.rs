//! NPY files (`numpy.save`): a C-ordered 1-D or 2-D array of little-endian numbers. Errors name
//! the byte offset.

use super::binary::{Layout, read_up_to};
use crate::diag::{Code, Diagnostic};
use ndarray::Array2;
use std::io::Read;
use std::path::Path;

/// The dtypes netc reads: NPY's `descr`, bytes per value, and the name in messages.
const DTYPES: [(&[&str], usize, &str); 10] = [
    (&["|u1", "<u1"], 1, "u1"),
    (&["|i1", "<i1"], 1, "i1"),
    (&["<i2"], 2, "i2"),
    (&["<u2"], 2, "u2"),
    (&["<f4"], 4, "f4"),
    (&["<i4"], 4, "i4"),
    (&["<u4"], 4, "u4"),
    (&["<f8"], 8, "f8"),
    (&["<i8"], 8, "i8"),
    (&["<u8"], 8, "u8"),
];

/// Longest NPY header netc reads (numpy writes far shorter ones).
const MAX_HEADER: usize = 1 << 16;

/// Reads and checks an NPY header from `r`: the layout of the values that follow.
pub(super) fn read_header(r: &mut dyn Read, path: &Path) -> Result<Layout, Box<Diagnostic>> {
    let bad = |offset: usize, what: &str| {
        Box::new(
            Diagnostic::general(Code::BadData, format!("`{}`, byte {offset}: {what}", path.display()))
                .in_file(path)
                .with_hint("save the array with numpy.save (a C-ordered 1-D or 2-D array of numbers)"),
        )
    };
    let mut magic = [0u8; 10];
    let got = read_up_to(r, &mut magic, path)?;
    if got < 10 || &magic[..6] != b"\x93NUMPY" {
        return Err(bad(0, "wrong magic: an NPY file starts with \\x93NUMPY"));
    }
    let (header_len, start): (usize, usize) = match magic[6] {
        1 => (u16::from_le_bytes([magic[8], magic[9]]) as usize, 10),
        2 | 3 => {
            let mut more = [0u8; 2];
            if read_up_to(r, &mut more, path)? < 2 {
                return Err(bad(10, "the file ends inside its header"));
            }
            (u32::from_le_bytes([magic[8], magic[9], more[0], more[1]]) as usize, 12)
        }
        _ => return Err(bad(6, "unsupported NPY version")),
    };
    if header_len > MAX_HEADER {
        return Err(bad(
            8,
            "the header is longer than 64 KiB; this is not a numpy.save file",
        ));
    }
    let mut raw = vec![0u8; header_len];
    let got = read_up_to(r, &mut raw, path)?;
    if got < header_len {
        return Err(bad(start + got, "the file ends inside its header"));
    }
    let end = start + header_len;
    // numpy writes an ASCII header; anything else (a NUL, a control byte) is damage.
    if let Some(i) = raw
        .iter()
        .position(|&b| !(b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b)))
    {
        return Err(bad(start + i, "the header is not ASCII text"));
    }
    let header = std::str::from_utf8(&raw).expect("ASCII is UTF-8");
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        let rest = header[at + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        Some(rest)
    };
    let descr = field("descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or_else(|| bad(start, "no 'descr' in the header"))?;
    if field("fortran_order").is_some_and(|r| r.starts_with("True")) {
        return Err(bad(start, "Fortran-ordered arrays are not supported"));
    }
    let shape_text = field("shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad(start, "no 'shape' in the header"))?;
    let dims: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(start, "the shape is not a list of numbers"))?;
    let (rows, cols) = match dims.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        _ => return Err(bad(start, "netc reads 1-D and 2-D arrays only")),
    };
    if rows == 0 || cols == 0 {
        return Err(Box::new(
            Diagnostic::general(
                Code::BadData,
                format!(
                    "`{}`, byte {start}: the shape {dims:?} has a zero dimension, so the file holds no values",
                    path.display()
                ),
            )
            .in_file(path)
            .with_hint("give an array with at least one row of at least one value"),
        ));
    }
    let element = DTYPES
        .iter()
        .position(|(names, _, _)| names.contains(&descr))
        .ok_or_else(|| bad(start, "unsupported dtype (use little-endian ints or floats)"))?;
    let (_, size, kind) = DTYPES[element];
    let body = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(size))
        .ok_or_else(|| bad(start, "shape overflows"))?;
    Ok(Layout {
        header: end,
        body,
        rows,
        cols,
        element: element as u8,
        size,
        kind,
    })
}

/// Decodes the body of an NPY file laid out as `layout`: exactly `layout.body` bytes.
pub(super) fn decode_body(layout: &Layout, data: &[u8], path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        data.chunks_exact(N)
            .map(|c| f(c.try_into().expect("N bytes")))
            .collect()
    }
    let values: Vec<f32> = match DTYPES[layout.element as usize].2 {
        "u1" => each(data, |b: [u8; 1]| b[0] as f32),
        "i1" => each(data, |b: [u8; 1]| b[0] as i8 as f32),
        "i2" => each(data, |b| i16::from_le_bytes(b) as f32),
        "u2" => each(data, |b| u16::from_le_bytes(b) as f32),
        "f4" => each(data, f32::from_le_bytes),
        "i4" => each(data, |b| i32::from_le_bytes(b) as f32),
        "u4" => each(data, |b| u32::from_le_bytes(b) as f32),
        "f8" => each(data, |b| f64::from_le_bytes(b) as f32),
        "i8" => each(data, |b| i64::from_le_bytes(b) as f32),
        _ => each(data, |b| u64::from_le_bytes(b) as f32),
    };
    layout.refuse_non_finite(&values, path)?;
    Ok(Array2::from_shape_vec((layout.rows, layout.cols), values).expect("rows * cols values"))
}

/// Parses a whole NPY file in memory (a 1-D array becomes one column).
pub(super) fn parse_npy(bytes: &[u8], path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    let layout = read_header(&mut &bytes[..], path)?;
    let body = layout.body_of(bytes, path)?;
    decode_body(&layout, body, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_reads_floats_and_refuses_garbage() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{header:<118}\n");
        bytes.extend((padded.len() as u16).to_le_bytes());
        bytes.extend(padded.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0] {
            bytes.extend(v.to_le_bytes());
        }
        let m = parse_npy(&bytes, Path::new("x.npy")).expect("valid");
        assert_eq!(m[[1, 0]], 3.0);
        assert!(parse_npy(&bytes[..bytes.len() - 2], Path::new("x.npy")).is_err());
        assert!(parse_npy(b"garbage!!!!!", Path::new("x.npy")).is_err());
    }
}
