//! IDX files (as MNIST's): a magic number with the element type, big-endian dimensions, then
//! the values. Errors name the byte offset.

use crate::diag::{Code, Diagnostic};
use ndarray::Array2;
use std::path::Path;

/// Parses an IDX file into a matrix: the first dimension is rows, the others are flattened.
pub(super) fn parse_idx(bytes: &[u8], path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    let bad = |offset: usize, what: String| {
        Box::new(
            Diagnostic::general(Code::BadData, format!("`{}`, byte {offset}: {what}", path.display()))
                .in_file(path)
                .with_hint("check that this is an IDX file (as MNIST's), not truncated"),
        )
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(
            0,
            "wrong magic number: an IDX file starts with two zero bytes".to_string(),
        ));
    }
    let (size, kind) = match bytes[2] {
        0x08 => (1, "u8"),
        0x09 => (1, "i8"),
        0x0B => (2, "i16"),
        0x0C => (4, "i32"),
        0x0D => (4, "f32"),
        0x0E => (8, "f64"),
        other => return Err(bad(2, format!("unknown element type 0x{other:02x}"))),
    };
    let ndims = bytes[3] as usize;
    if ndims == 0 || ndims > 8 {
        return Err(bad(3, format!("{ndims} dimensions; netc reads 1 to 8")));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(bad(bytes.len(), "the file ends inside its header".to_string()));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let rows = dims[0];
    let cols: usize = dims[1..]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(4, "dimensions overflow".to_string()))?;
    let count = rows
        .checked_mul(cols)
        .ok_or_else(|| bad(4, "dimensions overflow".to_string()))?;
    let need = count
        .checked_mul(size)
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| bad(4, "dimensions overflow".to_string()))?;
    if bytes.len() < need {
        return Err(bad(
            bytes.len(),
            format!(
                "truncated: the header promises {count} values of {kind} ({need} bytes), the file has {}",
                bytes.len()
            ),
        ));
    }
    let data = &bytes[header..need];
    let values: Vec<f32> = match bytes[2] {
        0x08 => data.iter().map(|&b| b as f32).collect(),
        0x09 => data.iter().map(|&b| b as i8 as f32).collect(),
        0x0B => data
            .chunks_exact(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]) as f32)
            .collect(),
        0x0C => data
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes(c.try_into().expect("4")) as f32)
            .collect(),
        0x0D => data
            .chunks_exact(4)
            .map(|c| f32::from_be_bytes(c.try_into().expect("4")))
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|c| f64::from_be_bytes(c.try_into().expect("8")) as f32)
            .collect(),
    };
    Ok(Array2::from_shape_vec((rows, cols), values).expect("rows * cols values"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_round_trip_and_truncation() {
        let mut bytes = vec![0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        bytes.extend([1, 2, 3, 4, 5, 6]);
        let m = parse_idx(&bytes, Path::new("x.idx")).expect("valid");
        assert_eq!(m.dim(), (2, 3));
        assert_eq!(m[[1, 2]], 6.0);
        let err = parse_idx(&bytes[..15], Path::new("x.idx")).expect_err("truncated");
        assert!(err.message.contains("truncated"), "{}", err.message);
        let err = parse_idx(&[1, 2, 3, 4], Path::new("x.idx")).expect_err("magic");
        assert!(err.message.contains("magic"), "{}", err.message);
    }
}
