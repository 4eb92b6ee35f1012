//! netc: a compiler for neural networks described as text.
//!
//! The pipeline, one module per stage, data flowing one way:
//! [`syntax`] (text to tree) -> [`ir`] (tree to typed program) -> [`check`] (legality and lints).
//! [`diag`] renders every stage's problems; [`fmt`] prints the canonical layout. See
//! `ARCHITECTURE.md` for the code map and the invariants.

pub mod back;
pub mod check;
pub mod data;
pub mod diag;
pub mod error;
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
    diagnostics.sort_by_key(|d| (d.span.file != file, d.span.file, d.span.start, d.severity));
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    Compiled {
        checked: if failed { None } else { checked },
        diagnostics,
    }
}
/// Reads a spec file, applies `--set KEY=VALUE` overrides and checks it. On success returns the
/// run and the warnings; on failure the diagnostics (or an unreadable-file error).
pub fn load_spec(
    path: &std::path::Path,
    sets: &[String],
    sources: &mut SourceMap,
) -> Result<(run::train::Run, Vec<Diagnostic>), LoadError> {
    let text = read_spec(path)?;
    let file = sources.add(path.display().to_string(), text.clone());
    let mut overrides = Vec::new();
    let mut problems = Vec::new();
    for set in sets {
        let Some((key, value)) = set.split_once('=') else {
            return Err(LoadError::User(
                error::UserError::new(format!("`--set {set}` has no `=`"))
                    .hint("write --set KEY=VALUE, e.g. --set train.optimizer.lr=0.01"),
            ));
        };
        let id = sources.add(format!("--set {key}"), value.to_string());
        match front::lower::parse_override(key.trim(), id, value.trim()) {
            Ok(o) => overrides.push(o),
            Err(d) => problems.push(*d),
        }
    }
    if !problems.is_empty() {
        return Err(LoadError::Diagnostics(problems));
    }
    let compiled = compile(sources, file, &overrides, &check::Limits::of_this_machine());
    match compiled.checked {
        Some(checked) => Ok((
            run::train::Run {
                spec_text: text,
                overrides: sets.to_vec(),
                checked,
            },
            compiled.diagnostics,
        )),
        None => Err(LoadError::Diagnostics(compiled.diagnostics)),
    }
}

/// Why a spec could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    User(error::UserError),
    /// The spec (or an override) has errors.
    Diagnostics(Vec<Diagnostic>),
}

/// Reads a spec file as UTF-8 text, with errors that name the file.
pub fn read_spec(path: &std::path::Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| {
        LoadError::User(error::UserError::new(format!("cannot read `{}`: {e}", path.display())).hint("check the path"))
    })?;
    String::from_utf8(bytes).map_err(|e| {
        LoadError::User(
            error::UserError::new(format!(
                "`{}` is not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ))
            .hint("save the spec as UTF-8"),
        )
    })
}
