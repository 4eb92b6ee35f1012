//! netc: a compiler for neural networks described as text.
//!
//! The pipeline, one module per stage, data flowing one way:
//! [`syntax`] (text to tree) -> [`ir`] (tree to typed program) -> [`check`] (legality and lints).
//! [`diag`] renders every stage's problems; [`fmt`] prints the canonical layout. See
//! `ARCHITECTURE.md` for the code map and the invariants.

pub mod back;
pub mod check;
pub mod console;
pub mod data;
pub mod diag;
pub mod front;
pub mod fsutil;
pub mod graph;
pub mod ir;
pub mod ops;
pub mod passes;
pub mod report;
pub mod rng;
pub mod run;

use diag::Diagnostic;
use diag::source::{FileId, SourceMap};
use front::lower::Override;

/// A spec run through the front end and the checker.
pub struct Compiled {
    /// The checked program, when the spec has no errors.
    pub checked: Option<check::Checked>,
    /// Every error and warning, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses, lowers and checks one spec file of `sources`. Overrides (`--set`) replace values of
/// the spec and are checked like the file itself.
pub fn compile(sources: &SourceMap, file: FileId, overrides: &[Override], limits: &check::Limits) -> Compiled {
    let (tree, syntax_errors) = front::syntax::parse(file, sources.text(file));
    if !syntax_errors.is_empty() {
        return Compiled {
            checked: None,
            diagnostics: syntax_errors,
        };
    }
    let (program, mut diagnostics) = front::lower::lower(&tree, overrides);
    let checked = program.and_then(|(program, spans)| {
        let (checked, found) = check::check(program, spans, limits);
        diagnostics.extend(found);
        checked
    });
    diagnostics.sort_by_key(|d| {
        let at = d.span.map(|s| (s.file, s.start));
        (at.is_none_or(|(f, _)| f != file), at, d.severity)
    });
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    Compiled {
        checked: if failed { None } else { checked },
        diagnostics,
    }
}
