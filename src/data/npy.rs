//! NPY files (`numpy.save`): a C-ordered 1-D or 2-D array of little-endian numbers. Errors name
//! the byte offset.

use crate::diag::{Code, Diagnostic};
use ndarray::Array2;
use std::path::Path;

/// Parses an NPY file into a matrix (a 1-D array becomes one column).
pub(super) fn parse_npy(bytes: &[u8], path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    let bad = |offset: usize, what: &str| {
        Box::new(
            Diagnostic::general(Code::BadData, format!("`{}`, byte {offset}: {what}", path.display()))
                .in_file(path)
                .with_hint("save the array with numpy.save (a C-ordered 1-D or 2-D array of numbers)"),
        )
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(0, "wrong magic: an NPY file starts with \\x93NUMPY"));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize, 12),
        _ => return Err(bad(6, "unsupported NPY version")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad(bytes.len(), "the file ends inside its header"))?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad(start, "the header is not text"))?;
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
    let (size, little) = match descr {
        "|u1" | "|i1" | "<u1" | "<i1" => (1, true),
        "<i2" | "<u2" => (2, true),
        "<f4" | "<i4" | "<u4" => (4, true),
        "<f8" | "<i8" | "<u8" => (8, true),
        _ => return Err(bad(start, "unsupported dtype (use little-endian ints or floats)")),
    };
    let _ = little;
    let count = rows.checked_mul(cols).ok_or_else(|| bad(start, "shape overflows"))?;
    let need = count
        .checked_mul(size)
        .and_then(|n| n.checked_add(end))
        .ok_or_else(|| bad(start, "shape overflows"))?;
    if bytes.len() < need {
        return Err(bad(bytes.len(), "truncated: the data is shorter than the shape says"));
    }
    let data = &bytes[end..need];
    let values: Vec<f32> = match descr {
        "|u1" | "<u1" => data.iter().map(|&b| b as f32).collect(),
        "|i1" | "<i1" => data.iter().map(|&b| b as i8 as f32).collect(),
        "<i2" => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
            .collect(),
        "<u2" => data
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as f32)
            .collect(),
        "<f4" => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect(),
        "<i4" => data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4")) as f32)
            .collect(),
        "<u4" => data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")) as f32)
            .collect(),
        "<f8" => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32)
            .collect(),
        "<i8" => data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8")) as f32)
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")) as f32)
            .collect(),
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(end + i * size, "a value is NaN or infinite"));
    }
    Ok(Array2::from_shape_vec((rows, cols), values).expect("rows * cols values"))
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
