//! IDX files (as MNIST's): a magic number with the element type, big-endian dimensions, then
//! the values. The header is read and checked first, so a wrong or huge file is refused before
//! its body is read. Errors name the byte offset.

use super::binary::{Layout, read_up_to};
use crate::diag::{Code, Diagnostic};
use ndarray::Array2;
use std::io::Read;
use std::path::Path;

fn bad(path: &Path, offset: usize, what: String) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::general(Code::BadData, format!("`{}`, byte {offset}: {what}", path.display()))
            .in_file(path)
            .with_hint("check that this is an IDX file (as MNIST's), not truncated"),
    )
}

/// Reads and checks an IDX header from `r`: the layout of the values that follow.
pub(super) fn read_header(r: &mut dyn Read, path: &Path) -> Result<Layout, Box<Diagnostic>> {
    let mut head = [0u8; 4];
    let got = read_up_to(r, &mut head, path)?;
    if got < 4 || head[0] != 0 || head[1] != 0 {
        return Err(bad(
            path,
            0,
            "wrong magic number: an IDX file starts with two zero bytes".to_string(),
        ));
    }
    let (size, kind) = match head[2] {
        0x08 => (1, "u8"),
        0x09 => (1, "i8"),
        0x0B => (2, "i16"),
        0x0C => (4, "i32"),
        0x0D => (4, "f32"),
        0x0E => (8, "f64"),
        other => return Err(bad(path, 2, format!("unknown element type 0x{other:02x}"))),
    };
    let ndims = head[3] as usize;
    if ndims == 0 || ndims > 8 {
        return Err(bad(path, 3, format!("{ndims} dimensions; netc reads 1 to 8")));
    }
    let mut raw = vec![0u8; 4 * ndims];
    let got = read_up_to(r, &mut raw, path)?;
    if got < raw.len() {
        return Err(bad(path, 4 + got, "the file ends inside its header".to_string()));
    }
    let dims: Vec<usize> = raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize)
        .collect();
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        return Err(Box::new(
            Diagnostic::general(
                Code::BadData,
                format!(
                    "`{}`, byte {}: dimension {} of {dims:?} is 0, so the file holds no values",
                    path.display(),
                    4 + 4 * i,
                    i + 1
                ),
            )
            .in_file(path)
            .with_hint("give a file with at least one row of at least one value"),
        ));
    }
    let overflow = || bad(path, 4, "dimensions overflow".to_string());
    let cols = dims[1..]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(overflow)?;
    let body = dims[0]
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(size))
        .ok_or_else(overflow)?;
    Ok(Layout {
        header: 4 + 4 * ndims,
        body,
        rows: dims[0],
        cols,
        element: head[2],
        size,
        kind,
    })
}

/// Decodes the body of an IDX file laid out as `layout`: exactly `layout.body` bytes.
pub(super) fn decode_body(layout: &Layout, data: &[u8], path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    let values: Vec<f32> = match layout.element {
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
    layout.refuse_non_finite(&values, path)?;
    Ok(Array2::from_shape_vec((layout.rows, layout.cols), values).expect("rows * cols values"))
}

/// Parses a whole IDX file in memory: the first dimension is rows, the others are flattened.
pub(super) fn parse_idx(bytes: &[u8], path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    let layout = read_header(&mut &bytes[..], path)?;
    let body = layout.body_of(bytes, path)?;
    decode_body(&layout, body, path)
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
        let err = parse_idx(&[0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 0], Path::new("x.idx")).expect_err("zero");
        assert!(err.message.contains("dimension 2 of [2, 0] is 0"), "{}", err.message);
        let mut floats = vec![0, 0, 0x0D, 1, 0, 0, 0, 1];
        floats.extend(f32::NAN.to_be_bytes());
        let err = parse_idx(&floats, Path::new("x.idx")).expect_err("nan");
        assert!(err.message.contains("NaN or infinite"), "{}", err.message);
    }
}
