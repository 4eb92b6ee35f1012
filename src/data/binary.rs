//! What IDX and NPY share: a header that says how many values of which type follow. The
//! header is read first and the expected size checked against the file's before the body is
//! read, so a damaged or foreign file costs a few bytes of reading, not its whole size.

use super::files::MAX_FILE_BYTES;
use crate::diag::{Code, Diagnostic};
use std::io::Read;
use std::path::Path;

/// Where the values of a binary matrix file are and what they are.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Layout {
    /// Bytes before the values.
    pub header: usize,
    /// Bytes of values.
    pub body: usize,
    /// Rows (the first dimension).
    pub rows: usize,
    /// Values per row (the other dimensions, flattened).
    pub cols: usize,
    /// The format's code of the element type (IDX's type byte, or an index into NPY's).
    pub element: u8,
    /// Bytes per value.
    pub size: usize,
    /// The element type's name, for messages.
    pub kind: &'static str,
}

impl Layout {
    /// The whole size the header promises.
    pub fn total(&self) -> u128 {
        self.header as u128 + self.body as u128
    }

    /// The error for a file of `have` bytes, shorter than the header promises.
    pub fn truncated(&self, have: u128, path: &Path) -> Box<Diagnostic> {
        Box::new(
            Diagnostic::general(
                Code::BadData,
                format!(
                    "`{}`, byte {have}: truncated: the header promises {} values of {} ({} bytes), the file has {have}",
                    path.display(),
                    self.rows as u128 * self.cols as u128,
                    self.kind,
                    self.total()
                ),
            )
            .in_file(path)
            .with_hint("the file was cut short (an interrupted copy or download); write it again"),
        )
    }

    /// The error for a file longer than the header promises (two files joined, or wrong
    /// dimensions): the values would be read with the wrong shape.
    pub fn too_long(&self, have: u128, path: &Path) -> Box<Diagnostic> {
        Box::new(
            Diagnostic::general(
                Code::BadData,
                format!(
                    "`{}`, byte {}: the file has more bytes than its header promises ({} values of {} in {} bytes, the file has {})",
                    path.display(),
                    self.total(),
                    self.rows as u128 * self.cols as u128,
                    self.kind,
                    self.total(),
                    if have == u128::MAX { "more".to_string() } else { have.to_string() }
                ),
            )
            .in_file(path)
            .with_hint("the header's dimensions do not describe the file; write it again with its real shape"),
        )
    }

    /// The body within a whole file's bytes, which must be exactly as long as the header says.
    pub fn body_of<'a>(&self, bytes: &'a [u8], path: &Path) -> Result<&'a [u8], Box<Diagnostic>> {
        let have = bytes.len() as u128;
        if have < self.total() {
            return Err(self.truncated(have, path));
        }
        if have > self.total() {
            return Err(self.too_long(have, path));
        }
        Ok(&bytes[self.header..])
    }

    /// Refuses NaN and infinite values (as the CSV reader does), naming the first one's offset.
    pub fn refuse_non_finite(&self, values: &[f32], path: &Path) -> Result<(), Box<Diagnostic>> {
        match values.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(i) => Err(Box::new(
                Diagnostic::general(
                    Code::BadData,
                    format!(
                        "`{}`, byte {}: value {i} (row {}, column {}) is NaN or infinite",
                        path.display(),
                        self.header + i * self.size,
                        i / self.cols.max(1) + 1,
                        i % self.cols.max(1) + 1
                    ),
                )
                .in_file(path)
                .with_hint("replace missing or infinite values with numbers"),
            )),
        }
    }
}

/// A format's header reader.
pub(super) type ReadHeader = fn(&mut dyn Read, &Path) -> Result<Layout, Box<Diagnostic>>;

/// A format's body decoder.
pub(super) type DecodeBody<T> = fn(&Layout, &[u8], &Path) -> Result<T, Box<Diagnostic>>;

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
pub(super) fn read_up_to(r: &mut dyn Read, buf: &mut [u8], path: &Path) -> Result<usize, Box<Diagnostic>> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(path, &e)),
        }
    }
    Ok(filled)
}

fn read_error(path: &Path, e: &std::io::Error) -> Box<Diagnostic> {
    let gzip = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("gz"));
    Box::new(if gzip {
        Diagnostic::general(
            Code::BadData,
            format!("`{}` is not a valid gzip file: {e}", path.display()),
        )
        .in_file(path)
        .with_hint("decompress it to check it, or give the uncompressed file")
    } else {
        Diagnostic::general(Code::FileUnreadable, format!("cannot read `{}`: {e}", path.display()))
            .in_file(path)
            .with_hint("check the file's permissions")
    })
}

/// Reads a binary matrix file (gunzipped when named `.gz`): its header with `header`, the size
/// check against the file's length (or, compressed, against what decompresses), then exactly
/// the body, decoded by `decode`.
pub(super) fn read<T>(path: &Path, header: ReadHeader, decode: DecodeBody<T>) -> Result<T, Box<Diagnostic>> {
    let length = super::files::checked_length(path)?;
    let file = std::fs::File::open(path).map_err(|e| {
        Diagnostic::general(Code::FileUnreadable, format!("cannot read `{}`: {e}", path.display()))
            .in_file(path)
            .with_hint("check the file's permissions")
    })?;
    let gzip = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let buffered = std::io::BufReader::new(file);
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let layout = header(reader.as_mut(), path)?;
    if layout.total() > MAX_FILE_BYTES as u128 {
        return Err(Box::new(
            Diagnostic::general(
                Code::BadData,
                format!(
                    "`{}`: the header promises {} bytes, more than netc reads ({MAX_FILE_BYTES})",
                    path.display(),
                    layout.total()
                ),
            )
            .in_file(path)
            .with_hint("split the data into smaller files"),
        ));
    }
    if !gzip && (length as u128) < layout.total() {
        return Err(layout.truncated(length as u128, path));
    }
    if !gzip && (length as u128) > layout.total() {
        return Err(layout.too_long(length as u128, path));
    }
    let mut body = Vec::new();
    body.try_reserve_exact(layout.body).map_err(|_| {
        Diagnostic::general(
            Code::BadData,
            format!(
                "`{}` needs {} bytes of memory, which this machine cannot give",
                path.display(),
                layout.body
            ),
        )
        .in_file(path)
        .with_hint("split the data into smaller files")
    })?;
    Read::take(reader.as_mut(), layout.body as u64)
        .read_to_end(&mut body)
        .map_err(|e| read_error(path, &e))?;
    if body.len() < layout.body {
        return Err(layout.truncated((layout.header + body.len()) as u128, path));
    }
    if gzip && read_up_to(reader.as_mut(), &mut [0u8; 1], path)? > 0 {
        return Err(layout.too_long(u128::MAX, path));
    }
    decode(&layout, &body, path)
}
