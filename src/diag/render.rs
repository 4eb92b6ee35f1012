//! The one renderer: diagnostics as human text (codespan-reporting), JSON, or GitHub Actions
//! workflow commands. A diagnostic without a span renders as its header (`error[E0101]: ...`)
//! and its notes; in JSON its `line` and `column` are null and `file` names the file it is
//! about, when there is one. Every form shows the same diagnostics, as [`shown`] limits them:
//! at most [`shown::MAX_PER_FILE`] per file, long lines windowed, unprintable characters
//! escaped.

use crate::diag::shown::{self, shown};
use crate::diag::source::SourceMap;
use crate::diag::{Diagnostic, Failure, Severity};
use codespan_reporting::diagnostic::{self as cs, LabelStyle};
use codespan_reporting::term;
use serde::Serialize;

/// The forms `--format` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// codespan-reporting's rustc-like text, on stderr.
    Human,
    /// One JSON array of objects, on stdout.
    Json,
    /// GitHub Actions workflow commands (`::error file=...`), on stdout.
    Github,
}

/// A diagnostic in the JSON form of `--format json`.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    /// Path of the file as given on the command line; null when the problem is in no file.
    pub file: Option<String>,
    /// 1-based line of the start; null without a span.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the start; null without a span.
    pub column: Option<usize>,
    /// Line and column one past the end; null without a span.
    pub end: Option<JsonPosition>,
    /// `error` or `warning`.
    pub severity: Severity,
    /// Stable code, e.g. `E0007`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to write instead, if known.
    pub hint: Option<String>,
    /// Further explanation (the lecture's reason behind a warning; how many diagnostics of a
    /// file were left out).
    pub notes: Vec<String>,
    /// Source changes that resolve the problem.
    pub fixes: Vec<JsonFix>,
}

/// A line and column.
#[derive(Debug, Serialize)]
pub struct JsonPosition {
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
}

/// A [`crate::diag::Fix`] in the JSON form: replace `file` from `start` to `end` with
/// `replacement`.
#[derive(Debug, Serialize)]
pub struct JsonFix {
    /// The file to change.
    pub file: String,
    /// Where the text to replace starts.
    pub start: JsonPosition,
    /// One past its end.
    pub end: JsonPosition,
    /// The new text.
    pub replacement: String,
    /// What the change does.
    pub message: String,
}

fn position(sources: &SourceMap, file: usize, offset: usize) -> JsonPosition {
    let (line, column) = sources.line_column(file, offset);
    JsonPosition { line, column }
}

/// Converts diagnostics to their JSON form.
pub fn to_json(sources: &SourceMap, diagnostics: &[Diagnostic]) -> Vec<JsonDiagnostic> {
    shown(sources, diagnostics)
        .iter()
        .map(|d| {
            let file = match (d.span, &d.path) {
                (Some(span), _) => Some(sources.name(span.file).to_string()),
                (None, Some(path)) => Some(path.display().to_string()),
                (None, None) => None,
            };
            let start = d.span.map(|s| position(sources, s.file, s.start));
            JsonDiagnostic {
                file,
                line: start.as_ref().map(|p| p.line),
                column: start.as_ref().map(|p| p.column),
                end: d.span.map(|s| position(sources, s.file, s.end)),
                severity: d.severity,
                code: d.code.as_str(),
                message: d.message.clone(),
                hint: d.hint.clone(),
                notes: d.notes.clone(),
                fixes: d
                    .fixes
                    .iter()
                    .map(|f| JsonFix {
                        file: sources.name(f.span.file).to_string(),
                        start: position(sources, f.span.file, f.span.start),
                        end: position(sources, f.span.file, f.span.end),
                        replacement: f.replacement.clone(),
                        message: f.message.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn to_codespan(d: &Diagnostic) -> cs::Diagnostic<usize> {
    let severity = match d.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
    };
    let mut labels = Vec::new();
    if let Some(span) = d.span {
        labels.push(cs::Label::new(LabelStyle::Primary, span.file, span.start..span.end).with_message(&d.label));
    }
    labels.extend(d.secondary.iter().map(|l| {
        cs::Label::new(LabelStyle::Secondary, l.span.file, l.span.start..l.span.end).with_message(&l.message)
    }));
    let mut notes = d.notes.clone();
    if let Some(hint) = &d.hint {
        notes.push(format!("help: {hint}"));
    }
    cs::Diagnostic::new(severity)
        .with_code(d.code.as_str())
        .with_message(&d.message)
        .with_labels(labels)
        .with_notes(notes)
}

/// Renders diagnostics as plain text (no colour), the form pinned by the golden tests.
pub fn render_plain(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    let config = term::Config::default();
    let mut out = String::new();
    for_each_shown(sources, diagnostics, |files, d| {
        term::emit_to_string(&mut out, &config, files, &to_codespan(d))
            .expect("diagnostic spans always point into files of the same SourceMap");
    });
    out
}

/// Calls `emit` with each shown diagnostic and the files its snippet reads: the sources
/// themselves, or (when a file it points into has long or unprintable lines) their windowed
/// copies.
fn for_each_shown(
    sources: &SourceMap,
    diagnostics: &[Diagnostic],
    mut emit: impl FnMut(&shown::ShownFiles, &Diagnostic),
) {
    let mut needs_window: Vec<Option<bool>> = vec![None; sources.len()];
    for d in shown(sources, diagnostics) {
        let windowed = d
            .span
            .iter()
            .chain(d.secondary.iter().map(|l| &l.span))
            .any(|s| *needs_window[s.file].get_or_insert_with(|| shown::needs_window(sources.text(s.file))));
        if windowed {
            let (files, d) = shown::windowed(sources, &d);
            emit(&files, &d);
        } else {
            emit(&shown::ShownFiles::Direct(sources.files()), &d);
        }
    }
}

/// Writes diagnostics to stderr in the human form, coloured when stderr is a terminal.
pub fn emit_human(sources: &SourceMap, diagnostics: &[Diagnostic]) {
    use term::termcolor::{ColorChoice, StandardStream};
    let choice = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    };
    let stream = StandardStream::stderr(choice);
    let mut lock = stream.lock();
    let styles = term::Styles::default();
    let mut writer = term::StylesWriter::new(&mut lock, &styles);
    let config = term::Config::default();
    for_each_shown(sources, diagnostics, |files, d| {
        // A broken stderr pipe is no reason to fail the command itself.
        let _ = term::emit_to_write_style(&mut writer, &config, files, &to_codespan(d));
    });
}

/// Renders diagnostics as GitHub Actions annotation lines: with `file=...,line=...` when the
/// diagnostic has a span, `file=...` alone when it is about a whole file, neither otherwise.
pub fn render_github(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for j in to_json(sources, diagnostics) {
        let kind = match j.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut message = j.message.clone();
        for note in &j.notes {
            message.push_str(&format!(" ({note})"));
        }
        if let Some(hint) = &j.hint {
            message.push_str(&format!(" (help: {hint})"));
        }
        let mut properties = Vec::new();
        if let Some(file) = &j.file {
            properties.push(format!("file={}", escape_property(&shown::printable_text(file))));
        }
        if let (Some(line), Some(column), Some(end)) = (j.line, j.column, &j.end) {
            properties.push(format!(
                "line={line},col={column},endLine={},endColumn={}",
                end.line, end.column
            ));
        }
        properties.push(format!("title={}", j.code));
        out.push_str(&format!(
            "::{kind} {}::{}\n",
            properties.join(","),
            escape_data(&message)
        ));
    }
    out
}

// GitHub's workflow-command escaping rules.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Prints diagnostics in `format`: the human form on stderr, JSON and GitHub on stdout.
pub fn emit(format: Format, sources: &SourceMap, diagnostics: &[Diagnostic]) {
    match format {
        Format::Human => emit_human(sources, diagnostics),
        Format::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&to_json(sources, diagnostics)).expect("diagnostics always serialize")
        ),
        Format::Github => crate::outp!("{}", render_github(sources, diagnostics)),
    }
}

/// Prints a failure in `format`; the human form ends with the failure's conclusion.
pub fn emit_failure(format: Format, failure: &Failure) {
    emit(format, &failure.sources, &failure.diagnostics);
    if format == Format::Human
        && let Some(conclusion) = &failure.conclusion
    {
        crate::errln!("error: {}", shown::printable_text(conclusion));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Code;
    use crate::diag::source::Span;

    #[test]
    fn github_escapes_newlines_and_commas() {
        let mut sources = SourceMap::new();
        let f = sources.add("a,b.net", "input 3\n");
        let d = Diagnostic::error(Code::Syntax, Span::new(f, 0, 5), "bad\nthing 100%");
        let out = render_github(&sources, &[d]);
        assert_eq!(
            out,
            "::error file=a%2Cb.net,line=1,col=1,endLine=1,endColumn=6,title=E0001::bad%0Athing 100%25\n"
        );
    }

    #[test]
    fn diagnostics_without_a_span_render_in_every_form() {
        let sources = SourceMap::new();
        let about_a_file = Diagnostic::general(Code::FileUnreadable, "cannot read `x.net`: gone")
            .in_file("x.net")
            .with_hint("check the path");
        let about_nothing = Diagnostic::general(Code::BadFlag, "--batch must be at least 1");
        let both = [about_a_file, about_nothing];
        assert_eq!(
            render_plain(&sources, &both),
            "error[E0101]: cannot read `x.net`: gone\n = help: check the path\n\nerror[E0107]: --batch must be at least 1\n\n"
        );
        assert_eq!(
            render_github(&sources, &both),
            "::error file=x.net,title=E0101::cannot read `x.net`: gone (help: check the path)\n::error title=E0107::--batch must be at least 1\n"
        );
        let json = serde_json::to_value(to_json(&sources, &both)).expect("serializes");
        assert_eq!(json[0]["file"], "x.net");
        assert!(json[0]["line"].is_null() && json[0]["column"].is_null() && json[0]["end"].is_null());
        assert!(json[1]["file"].is_null());
        assert_eq!(json[1]["code"], "E0107");
    }

    #[test]
    fn fixes_appear_in_json() {
        let mut sources = SourceMap::new();
        let f = sources.add("a.net", "dense 3 rleu\n");
        let d = Diagnostic::error(Code::UnknownChoice, Span::new(f, 8, 12), "unknown activation `rleu`")
            .with_suggestion(Span::new(f, 8, 12), "relu", "did you mean `relu`?");
        let json = serde_json::to_value(to_json(&sources, &[d])).expect("serializes");
        let fix = &json[0]["fixes"][0];
        assert_eq!(fix["replacement"], "relu");
        assert_eq!(fix["start"]["column"], 9);
        assert_eq!(fix["end"]["column"], 13);
    }
}
