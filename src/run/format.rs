//! `netc fmt`: rewrites specs in the canonical layout, or with `--check` names the files that
//! would change. Files with syntax errors are never touched.

use crate::diag::source::SourceMap;
use crate::diag::{Code, Diagnostic, Failure};
use std::path::{Path, PathBuf};

/// What formatting a list of files did.
#[derive(Default, Debug)]
pub struct FormatReport {
    /// The formatted text of standard input (`-`), to print on stdout.
    pub stdout: String,
    /// With `--check`: the files whose layout would change.
    pub would_change: Vec<String>,
    /// Files that could not be read, parsed or written.
    pub failures: Vec<Failure>,
}

impl FormatReport {
    /// True when `netc fmt` exits 1: a file failed, or (with `--check`) would change.
    pub fn failed(&self) -> bool {
        !self.failures.is_empty() || !self.would_change.is_empty()
    }
}

/// Formats `files` (`-` formats standard input to [`FormatReport::stdout`]); with `check`,
/// changes nothing.
pub fn format_files(files: &[PathBuf], check: bool) -> FormatReport {
    let mut report = FormatReport::default();
    for path in files {
        match format_one(path, check) {
            Ok(Formatted::Stdout(text)) => report.stdout.push_str(&text),
            Ok(Formatted::WouldChange) => report.would_change.push(path.display().to_string()),
            Ok(Formatted::Unchanged | Formatted::Rewritten) => {}
            Err(failure) => report.failures.push(failure),
        }
    }
    report
}

enum Formatted {
    Stdout(String),
    Unchanged,
    WouldChange,
    Rewritten,
}

fn format_one(path: &Path, check: bool) -> Result<Formatted, Failure> {
    let text = crate::run::spec::read_source(path)?;
    let mut sources = SourceMap::new();
    let id = sources.add(path.display().to_string(), text.clone());
    let (tree, errors) = crate::front::syntax::parse(id, &text);
    if !errors.is_empty() {
        return Err(Failure::of(sources, errors).concluding(format!(
            "`{}` has syntax errors; fix them before formatting",
            path.display()
        )));
    }
    let formatted = crate::front::fmt::format_file(&tree, &text);
    if path.as_os_str() == "-" {
        return Ok(Formatted::Stdout(formatted));
    }
    if formatted == text {
        return Ok(Formatted::Unchanged);
    }
    if check {
        return Ok(Formatted::WouldChange);
    }
    crate::fsutil::write_atomic(path, formatted.as_bytes()).map_err(|e| {
        Diagnostic::general(Code::FileUnwritable, format!("cannot write `{}`: {e}", path.display()))
            .in_file(path)
            .with_hint("check that the file is writable")
    })?;
    Ok(Formatted::Rewritten)
}
