//! Reading specs: the file (or standard input) as UTF-8 text, `--set KEY=VALUE` overrides, and
//! the front end and checker over both. Every failure is a diagnostic.

use crate::check::Limits;
use crate::diag::source::SourceMap;
use crate::diag::{Code, Diagnostic, Failure};
use crate::front::lower::parse_override;
use crate::run::train::Run;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A spec that passed the checker.
pub struct Loaded {
    /// The checked program and the text it came from.
    pub run: Run,
    /// The spec's (and overrides') text, which the warnings point into.
    pub sources: SourceMap,
    /// The checker's warnings.
    pub warnings: Vec<Diagnostic>,
    /// Milliseconds from reading the file to the checked program.
    pub load_ms: f64,
}

/// Reads a spec file, applies `--set KEY=VALUE` overrides and checks it against this machine's
/// limits. A failure holds the diagnostics (or the unreadable-file error) and, for the human
/// form, says that nothing was run.
pub fn load_spec(path: &Path, sets: &[String]) -> Result<Loaded, Failure> {
    let started = Instant::now();
    let text = read_spec(path)?;
    let mut loaded = compile_spec(
        &path.display().to_string(),
        text,
        sets,
        &crate::run::limits::of_this_machine(),
    )?;
    loaded.load_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(loaded)
}

/// [`load_spec`] on text already read: `name` is what diagnostics call the file.
pub fn compile_spec(name: &str, text: String, sets: &[String], limits: &Limits) -> Result<Loaded, Failure> {
    let started = Instant::now();
    let mut sources = SourceMap::new();
    let file = sources.add(name, text.clone());
    let mut overrides = Vec::new();
    let mut problems = Vec::new();
    for set in sets {
        let Some((key, value)) = set.split_once('=') else {
            return Err(Diagnostic::general(Code::BadFlag, format!("`--set {set}` has no `=`"))
                .with_hint("write --set KEY=VALUE, e.g. --set train.optimizer.lr=0.01")
                .into());
        };
        let id = sources.add(format!("--set {key}"), value.to_string());
        match parse_override(key.trim(), id, value.trim()) {
            Ok(o) => overrides.push(o),
            Err(d) => problems.push(*d),
        }
    }
    if !problems.is_empty() {
        return Err(nothing_was_run(name, sources, problems));
    }
    let compiled = crate::compile(&sources, file, &overrides, limits);
    match compiled.checked {
        Some(checked) => Ok(Loaded {
            run: Run {
                spec_text: text,
                overrides: sets.to_vec(),
                checked,
            },
            sources,
            warnings: compiled.diagnostics,
            load_ms: started.elapsed().as_secs_f64() * 1e3,
        }),
        None => Err(nothing_was_run(name, sources, compiled.diagnostics)),
    }
}

fn nothing_was_run(name: &str, sources: SourceMap, diagnostics: Vec<Diagnostic>) -> Failure {
    let (errors, warnings) = crate::diag::count(&diagnostics);
    Failure::of(sources, diagnostics).concluding(format!(
        "`{name}` has {errors} error(s) and {warnings} warning(s); nothing was run"
    ))
}

/// The largest spec netc reads: far above any real spec (the examples are a few hundred bytes),
/// small enough that a stray multi-gigabyte file or an endless stream is refused at once.
pub const MAX_SPEC_BYTES: u64 = 4 << 20;

/// Like [`read_spec`], but `-` reads standard input (`netc check -`, `netc fmt -`).
pub fn read_source(path: &Path) -> Result<String, Box<Diagnostic>> {
    if path.as_os_str() != "-" {
        return read_spec(path);
    }
    let stdin = std::io::stdin();
    spec_text(stdin.lock(), "standard input", None)
}

/// Reads a spec file as UTF-8 text, with errors that name the file. Every command reads its
/// spec here: files over [`MAX_SPEC_BYTES`] (by their size, before reading, and by what a pipe
/// or a growing file actually yields) and binary files are refused, and a leading UTF-8
/// byte-order mark is dropped (spans then count from the first character after it).
pub fn read_spec(path: &Path) -> Result<String, Box<Diagnostic>> {
    let unreadable = |e: std::io::Error| {
        Box::new(
            Diagnostic::general(Code::FileUnreadable, format!("cannot read `{}`: {e}", path.display()))
                .in_file(path)
                .with_hint("check the path"),
        )
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if metadata.is_dir() {
        return Err(unreadable(std::io::Error::other("it is a directory")));
    }
    let name = format!("`{}`", path.display());
    spec_text(file, &name, Some(metadata.len())).map_err(|d| Box::new(d.in_file(path)))
}

/// The text of a spec read from `reader` (`name` says what it is in messages; `size` is its
/// length when known up front): at most [`MAX_SPEC_BYTES`], no NUL byte, UTF-8, without a
/// leading byte-order mark.
fn spec_text(reader: impl std::io::Read, name: &str, size: Option<u64>) -> Result<String, Box<Diagnostic>> {
    let too_large = |what: String| {
        let d = Diagnostic::general(
            Code::FileUnreadable,
            format!(
                "{name} is too large for a spec ({what}; a spec is at most {} MiB)",
                MAX_SPEC_BYTES >> 20
            ),
        )
        .with_hint("pass the `.net` spec itself: data sets go in the spec's `data` statement, not on the command line");
        Box::new(d)
    };
    if let Some(size) = size.filter(|&s| s > MAX_SPEC_BYTES) {
        return Err(too_large(format!("{size} bytes")));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(reader, MAX_SPEC_BYTES + 1), &mut bytes).map_err(|e| {
        Box::new(
            Diagnostic::general(Code::FileUnreadable, format!("cannot read {name}: {e}"))
                .with_hint("check the path, or pipe UTF-8 text into netc, e.g. `netc fmt - < spec.net`"),
        )
    })?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_large(format!("more than {MAX_SPEC_BYTES} bytes")));
    }
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(Box::new(
            Diagnostic::general(
                Code::NotUtf8,
                format!("{name} is a binary file, not a spec (it holds a NUL byte at offset {offset})"),
            )
            .with_hint("pass the `.net` spec, a text file"),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let d = Diagnostic::general(
            Code::NotUtf8,
            format!(
                "{name} is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
        .with_hint("save the spec as UTF-8");
        Box::new(d)
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The spec's directory, where its relative data paths start.
pub fn spec_dir(spec: &Path) -> PathBuf {
    spec.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
