//! Diagnostics: the one place where problems become text.
//!
//! Every stage reports problems as [`Diagnostic`] values: a stable [`Code`], a message that says
//! what is wrong, a primary span, optional secondary spans, and a hint that says what to write
//! instead. [`render`] turns a list of them into the human (codespan-reporting), JSON or GitHub
//! Actions form. Nothing else in netc formats a diagnostic.

pub mod source;

use crate::diag::source::{SourceMap, Span};
use codespan_reporting::diagnostic::{self as cs, LabelStyle};
use codespan_reporting::term;
use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The spec cannot be used.
    Error,
    /// The spec works but goes against the lecture's advice.
    Warning,
}

macro_rules! codes {
    ($($variant:ident = $code:literal: $title:literal,)*) => {
        /// Stable diagnostic codes; each is documented in `docs/errors.md`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed, e.g. `E0001`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// A one-line title for the documentation.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }
        }
    };
}

codes! {
    Syntax = "E0001": "syntax error",
    UnbalancedBrace = "E0002": "unbalanced braces",
    UnknownStatement = "E0003": "unknown statement",
    UnknownOption = "E0004": "unknown option",
    MissingValue = "E0005": "missing value",
    WrongType = "E0006": "value of the wrong type",
    OutOfRange = "E0007": "value out of range",
    UnknownChoice = "E0008": "unknown activation, initializer, optimizer, loss or other named choice",
    UnknownName = "E0009": "unknown constant, block or layer name",
    DuplicateLayer = "E0010": "duplicate layer name",
    Duplicate = "E0011": "defined or set twice",
    MaxoutDivisibility = "E0012": "maxout width not divisible by its pieces",
    LossMismatch = "E0013": "loss does not match the output activation",
    MissingInput = "E0014": "missing or misplaced input",
    MissingLoss = "E0015": "missing or misplaced loss",
    MissingSection = "E0016": "missing model or train section",
    TooLarge = "E0017": "model too large for memory",
    Arity = "E0018": "wrong number of arguments",
    Expansion = "E0019": "repeat or block expansion too large or recursive",
    Misplaced = "E0020": "statement not allowed here",
    DataSplit = "E0021": "inconsistent data settings",
    NoLayers = "E0022": "model has no layer with weights",
    NestingTooDeep = "E0023": "blocks nested too deeply",
    BadOverride = "E0024": "invalid --set override",
    DataShape = "E0025": "model does not fit the data set's shape",
    FixedZeroOnePiece = "E0026": "maxout `fixed_zero` with a single piece",
    DeepSaturatingStack = "W0001": "deep sigmoid or tanh stack (vanishing gradients)",
    DropoutBeforeOutput = "W0002": "dropout right before the output layer",
    NoValidation = "W0003": "dropout, regularization or early stopping without validation data",
    RegularizationExtreme = "W0004": "regularization strength that has no effect or drives weights to zero",
    HiddenSoftmax = "W0005": "softmax on a hidden layer",
    Unused = "W0006": "unused constant or block",
}

/// A secondary location with its own short message.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What is there.
    pub message: String,
}

/// One problem found in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code.
    pub code: Code,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The exact text at fault.
    pub span: Span,
    /// A short note shown under the primary span.
    pub label: String,
    /// Other places that explain the problem.
    pub secondary: Vec<Label>,
    /// Extra explanation (the lecture's reason behind a warning).
    pub notes: Vec<String>,
    /// What to write instead.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: String::new(),
            secondary: Vec::new(),
            notes: Vec::new(),
            hint: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Sets the note under the primary span.
    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    /// Adds a secondary span.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Adds an explanatory note.
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Sets the fix.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The closest candidate to a misspelt word, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word_lower, c), c))
        .filter(|&(distance, c)| {
            distance <= (c.len().max(word.len()) / 3).max(1) || c.starts_with(&word_lower) && word.len() >= 3
        })
        .min_by_key(|&(distance, c)| (distance, c.len()))
        .map(|(_, c)| c)
}

/// The forms `netc check --format` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// codespan-reporting's rustc-like text.
    Human,
    /// One JSON array of objects.
    Json,
    /// GitHub Actions workflow commands (`::error file=...`).
    Github,
}

/// A diagnostic in the JSON form of `netc check --format json`.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    /// Path of the file as given on the command line.
    pub file: String,
    /// 1-based line of the start.
    pub line: usize,
    /// 1-based column (in characters) of the start.
    pub column: usize,
    /// Line and column one past the end.
    pub end: JsonPosition,
    /// `error` or `warning`.
    pub severity: Severity,
    /// Stable code, e.g. `E0007`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to write instead, if known.
    pub hint: Option<String>,
}

/// A line and column.
#[derive(Debug, Serialize)]
pub struct JsonPosition {
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
}

/// Converts diagnostics to their JSON form.
pub fn to_json(sources: &SourceMap, diagnostics: &[Diagnostic]) -> Vec<JsonDiagnostic> {
    diagnostics
        .iter()
        .map(|d| {
            let (line, column) = sources.line_column(d.span.file, d.span.start);
            let (end_line, end_column) = sources.line_column(d.span.file, d.span.end);
            JsonDiagnostic {
                file: sources.name(d.span.file).to_string(),
                line,
                column,
                end: JsonPosition {
                    line: end_line,
                    column: end_column,
                },
                severity: d.severity,
                code: d.code.as_str(),
                message: d.message.clone(),
                hint: d.hint.clone(),
            }
        })
        .collect()
}

fn to_codespan(d: &Diagnostic) -> cs::Diagnostic<usize> {
    let severity = match d.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
    };
    let mut labels =
        vec![cs::Label::new(LabelStyle::Primary, d.span.file, d.span.start..d.span.end).with_message(&d.label)];
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
    for d in diagnostics {
        term::emit_to_string(&mut out, &config, sources.files(), &to_codespan(d))
            .expect("diagnostic spans always point into files of the same SourceMap");
    }
    out
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
    for d in diagnostics {
        // A broken stderr pipe is no reason to fail the check itself.
        let _ = term::emit_to_write_style(&mut writer, &config, sources.files(), &to_codespan(d));
    }
}

/// Renders diagnostics as GitHub Actions annotation lines.
pub fn render_github(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for j in to_json(sources, diagnostics) {
        let kind = match j.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut message = j.message.clone();
        if let Some(hint) = &j.hint {
            message.push_str(&format!(" (help: {hint})"));
        }
        out.push_str(&format!(
            "::{kind} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
            escape_property(&j.file),
            j.line,
            j.column,
            j.end.line,
            j.end.column,
            j.code,
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

/// Counts errors and warnings.
pub fn count(diagnostics: &[Diagnostic]) -> (usize, usize) {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    (errors, diagnostics.len() - errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_close_words_only() {
        let acts = [
            "relu",
            "sigmoid",
            "tanh",
            "leaky_relu",
            "prelu",
            "elu",
            "softmax",
            "linear",
        ];
        assert_eq!(did_you_mean("rleu", acts), Some("relu"));
        assert_eq!(did_you_mean("sigmod", acts), Some("sigmoid"));
        assert_eq!(did_you_mean("Softmax", acts), Some("softmax"));
        assert_eq!(did_you_mean("convolution", acts), None);
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert_eq!(s.len(), 5);
            assert!(s.starts_with('E') || s.starts_with('W'));
        }
    }

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
}
