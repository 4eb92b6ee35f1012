//! `netc check`: every file's errors and warnings in one run, files that cannot be read
//! included (as file-level diagnostics), and optionally each program's layer table.

use crate::check::Limits;
use crate::diag::source::SourceMap;
use crate::diag::{self, Diagnostic};
use std::path::PathBuf;

/// What checking a list of files found.
pub struct CheckReport {
    /// The files' text, which the diagnostics point into.
    pub sources: SourceMap,
    /// Every error and warning of every file, file by file.
    pub diagnostics: Vec<Diagnostic>,
    /// With `--summary`: the layer table of each file that has no errors.
    pub summaries: Vec<String>,
    /// How many files were given.
    pub files: usize,
}

/// Checks `files` (`-` is standard input) against `limits`; with `summary`, also tabulates each
/// clean program's layers.
pub fn check_files(files: &[PathBuf], limits: &Limits, summary: bool) -> CheckReport {
    let mut report = CheckReport {
        sources: SourceMap::new(),
        diagnostics: Vec::new(),
        summaries: Vec::new(),
        files: files.len(),
    };
    for path in files {
        let text = match crate::run::spec::read_source(path) {
            Ok(text) => text,
            Err(d) => {
                report.diagnostics.push(*d);
                continue;
            }
        };
        let id = report.sources.add(path.display().to_string(), text);
        let compiled = crate::compile(&report.sources, id, &[], limits);
        if summary && let Some(checked) = &compiled.checked {
            report.summaries.push(crate::check::summary(checked));
        }
        report.diagnostics.extend(compiled.diagnostics);
    }
    report
}

impl CheckReport {
    /// True when the check fails: any error, or any warning under `--deny-warnings`.
    pub fn failed(&self, deny_warnings: bool) -> bool {
        let (errors, warnings) = diag::count(&self.diagnostics);
        errors > 0 || (deny_warnings && warnings > 0)
    }

    /// The closing line of the human form, `checked 2 files: 1 error, 0 warnings`, when there
    /// is anything to count.
    pub fn totals(&self) -> Option<String> {
        let (errors, warnings) = diag::count(&self.diagnostics);
        if errors + warnings == 0 {
            return None;
        }
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        Some(format!(
            "checked {}: {}, {}",
            plural(self.files, "file"),
            plural(errors, "error"),
            plural(warnings, "warning")
        ))
    }
}
