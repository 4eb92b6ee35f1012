//! netc: a compiler for neural networks described as text.
//!
//! The pipeline, one module per stage, data flowing one way:
//! [`syntax`] (text to tree) -> [`ir`] (tree to typed program) -> [`check`] (legality and lints).
//! [`diag`] renders every stage's problems; [`fmt`] prints the canonical layout. See
//! `ARCHITECTURE.md` for the code map and the invariants.

pub mod check;
pub mod diag;
pub mod fmt;
pub mod fsutil;
pub mod ir;
pub mod source;
pub mod syntax;

use diag::Diagnostic;
use ir::{Override, Program, Spans};
use source::{FileId, SourceMap};

/// A spec run through the front end.
pub struct Compiled {
    /// The program, when the spec has no errors.
    pub program: Option<(Program, Spans)>,
    /// Every error and warning, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses, lowers and checks one spec file of `sources`. Overrides (`--set`) replace values of
/// the spec and are checked like the file itself.
pub fn compile(sources: &SourceMap, file: FileId, overrides: &[Override], limits: &check::Limits) -> Compiled {
    let (tree, syntax_errors) = syntax::parse(file, sources.text(file));
    if !syntax_errors.is_empty() {
        return Compiled {
            program: None,
            diagnostics: syntax_errors,
        };
    }
    let (program, mut diagnostics) = ir::lower(&tree, overrides);
    if let Some((program, spans)) = &program {
        diagnostics.extend(check::check(program, spans, limits));
    }
    diagnostics.sort_by_key(|d| (d.span.file != file, d.span.file, d.span.start, d.severity));
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    Compiled {
        program: if failed { None } else { program },
        diagnostics,
    }
}
