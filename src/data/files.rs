//! Reading data files: bounded in size, gunzipped when named `.gz`.

use crate::diag::{Code, Diagnostic};
use std::io::Read;
use std::path::Path;

/// Largest file netc will read into memory (4 GiB), so a bad path cannot exhaust memory.
pub(super) const MAX_FILE_BYTES: u64 = 4 << 30;

/// The length of a data file that exists and is not over the size limit.
pub(super) fn checked_length(path: &Path) -> Result<u64, Box<Diagnostic>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Diagnostic::general(Code::FileUnreadable, format!("cannot read `{}`: {e}", path.display()))
            .in_file(path)
            .with_hint("check the path in the spec (relative paths start at the spec's directory)")
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::general(
            Code::BadData,
            format!(
                "`{}` is {} bytes, more than netc reads ({MAX_FILE_BYTES})",
                path.display(),
                meta.len()
            ),
        )
        .in_file(path)
        .with_hint("split the data into smaller files")
        .into());
    }
    Ok(meta.len())
}

/// Reads a text data file (CSV) whole (decompressed, for `.gz`), with errors that name it.
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, Box<Diagnostic>> {
    checked_length(path)?;
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostic::general(Code::FileUnreadable, format!("cannot read `{}`: {e}", path.display()))
            .in_file(path)
            .with_hint("check the file's permissions")
    })?;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
        gunzip(&bytes, path)
    } else {
        Ok(bytes)
    }
}

/// Decompresses gzip bytes read from `path`.
pub(super) fn gunzip(bytes: &[u8], path: &Path) -> Result<Vec<u8>, Box<Diagnostic>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| {
            Diagnostic::general(
                Code::BadData,
                format!("`{}` is not a valid gzip file: {e}", path.display()),
            )
            .in_file(path)
            .with_hint("decompress it to check it, or give the uncompressed file")
        })?;
    Ok(out)
}
