//! The commands' library side: reading specs, checking, formatting, training, evaluation,
//! prediction, sweeps, benchmarks, diagnosis, `netc build`, and the files a run leaves behind.

pub mod artifacts;
pub mod bench;
pub mod build;
pub mod check;
pub mod checkpoint;
pub mod diagnose;
pub mod eval;
pub mod format;
pub mod limits;
pub mod outputs;
pub mod predict;
pub mod provenance;
pub mod sanity;
pub mod spec;
pub mod sweep;
pub mod train;
pub mod weights;

use crate::diag::{Code, Diagnostic};
use std::path::Path;

/// Writes `bytes` to `path` atomically; a failure names the file, and `hint` says what to
/// check.
pub fn write_file(path: &Path, bytes: &[u8], hint: &str) -> Result<(), Box<Diagnostic>> {
    write_file_with(path, hint, |out| out.write_all(bytes))
}

/// [`write_file`] of what `write` streams out.
pub fn write_file_with(
    path: &Path,
    hint: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), Box<Diagnostic>> {
    crate::fsutil::write_atomic_with(path, write).map_err(|e| {
        Box::new(
            Diagnostic::general(Code::FileUnwritable, format!("cannot write `{}`: {e}", path.display()))
                .in_file(path)
                .with_hint(hint),
        )
    })
}
