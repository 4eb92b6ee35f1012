//! Diagnostics: the one place where problems become text.
//!
//! Every failure netc reports is a [`Diagnostic`] value: a stable [`Code`], a message that says
//! what is wrong, where (a span in a source file, a whole file, or nowhere: a flag, the
//! machine), a hint that says what to do instead, and, for misspellings, a [`Fix`] a tool can
//! apply. [`render`] turns a list of them into the human (codespan-reporting), JSON or GitHub
//! Actions form. Nothing else in netc formats a diagnostic.

pub mod codes;
pub mod render;
pub mod shown;
pub mod source;

pub use codes::Code;
pub use render::{Format, JsonDiagnostic, JsonFix, JsonPosition, emit, emit_failure, emit_human, render_github};
pub use render::{render_plain, to_json};

use crate::diag::source::{SourceMap, Span};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The spec cannot be used.
    Error,
    /// The spec works but goes against the lecture's advice.
    Warning,
}

/// A secondary location with its own short message.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What is there.
    pub message: String,
}

/// A change to the source that resolves a diagnostic: replace the text at `span` with
/// `replacement` (a language server offers it as a quick fix).
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// The text to replace.
    pub span: Span,
    /// What to write there instead.
    pub replacement: String,
    /// What the change does, in a few words (`replace with `relu``).
    pub message: String,
}

/// One problem: in a spec, in a file, or with the command as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code.
    pub code: Code,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The exact text at fault, when the problem is in a source file.
    pub span: Option<Span>,
    /// The file the problem is about, when it has no span (a missing file, a malformed data
    /// file).
    pub path: Option<PathBuf>,
    /// A short note shown under the primary span.
    pub label: String,
    /// Other places that explain the problem.
    pub secondary: Vec<Label>,
    /// Extra explanation (the lecture's reason behind a warning).
    pub notes: Vec<String>,
    /// What to write or do instead.
    pub hint: Option<String>,
    /// Source changes that resolve the problem (a misspelt word replaced by the suggestion).
    pub fixes: Vec<Fix>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            span: Some(span),
            ..Diagnostic::general(code, message)
        }
    }

    /// A warning at `span`.
    pub fn warning(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// An error with no place in a source file: a flag, training, the machine. Add the file it
    /// is about with [`Diagnostic::in_file`].
    pub fn general(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: None,
            path: None,
            label: String::new(),
            secondary: Vec::new(),
            notes: Vec::new(),
            hint: None,
            fixes: Vec::new(),
        }
    }

    /// A warning with no place in a source file (weights from a different spec): printed as
    /// `warning[W01xx]`; it does not change the exit code.
    pub fn general_warning(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::general(code, message)
        }
    }

    /// An error that is netc's fault, not the user's (e.g. Cranelift rejecting generated code).
    /// A note says so.
    pub fn internal(message: impl Into<String>) -> Diagnostic {
        Diagnostic::general(Code::Internal, message)
            .with_note("this is a bug in netc, not a problem with your spec, data or flags; please report it")
    }

    /// Names the file a location-less diagnostic is about.
    pub fn in_file(mut self, path: impl AsRef<Path>) -> Diagnostic {
        self.path = Some(path.as_ref().to_path_buf());
        self
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

    /// Sets the fix, as text.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// A "did you mean": sets the hint and adds the [`Fix`] that replaces the text at `span`
    /// (the misspelt word) with `suggestion`.
    pub fn with_suggestion(mut self, span: Span, suggestion: &str, hint: impl Into<String>) -> Diagnostic {
        self.fixes.push(Fix {
            span,
            replacement: suggestion.to_string(),
            message: format!("replace with `{suggestion}`"),
        });
        self.with_hint(hint)
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The diagnostic without its source locations, in the human form (`error[E0101]: ...` and
/// its notes): for contexts without the sources, such as a test's failure message.
impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unlocated = Diagnostic {
            span: None,
            secondary: Vec::new(),
            ..self.clone()
        };
        f.write_str(render_plain(&SourceMap::new(), &[unlocated]).trim_end())
    }
}

impl std::error::Error for Diagnostic {}

/// Text read from a user's file (a CSV cell, a tensor name), made safe to echo in a message:
/// control characters become escapes (`\u{1b}`), so binary input cannot drive the terminal,
/// and anything past 40 characters is cut off with `...`.
pub fn shown(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", escape_controls(&text[..cut])),
        None => escape_controls(text),
    }
}

/// `text` with its control characters as escapes (`\u{1b}`, `\n`), for messages of libraries
/// that quote a file's content (a safetensors header's JSON).
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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

/// Everything a failed command has to say: its diagnostics (the errors, and any warnings found
/// with them), the sources their spans point into, and a closing line for the human form.
#[derive(Default)]
pub struct Failure {
    /// The text the diagnostics' spans point into (empty when none has a span).
    pub sources: SourceMap,
    /// What went wrong.
    pub diagnostics: Vec<Diagnostic>,
    /// Printed after the diagnostics in the human form (`error: ...`), e.g. "`a.net` has 2
    /// error(s) and 0 warning(s); nothing was run". The JSON and GitHub forms leave it out:
    /// the diagnostics say it all.
    pub conclusion: Option<String>,
}

impl Failure {
    /// A failure with diagnostics whose spans point into `sources`.
    pub fn of(sources: SourceMap, diagnostics: Vec<Diagnostic>) -> Failure {
        Failure {
            sources,
            diagnostics,
            conclusion: None,
        }
    }

    /// Sets the closing line of the human form.
    pub fn concluding(mut self, conclusion: impl Into<String>) -> Failure {
        self.conclusion = Some(conclusion.into());
        self
    }
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Failure {
        Failure::of(SourceMap::new(), vec![d])
    }
}

impl From<Box<Diagnostic>> for Failure {
    fn from(d: Box<Diagnostic>) -> Failure {
        Failure::from(*d)
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&render_plain(&self.sources, &self.diagnostics))
    }
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
    fn codes_are_unique_well_formed_and_grouped() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert_eq!(s.len(), 5);
            assert!(s.starts_with('E') || s.starts_with('W'));
            // Spec codes are E00xx/W00xx, command codes E01xx.
            assert_eq!(code.is_spec(), &s[1..3] == "00", "{s} is in the wrong group");
        }
        assert_eq!(Code::SPEC.len() + Code::COMMAND.len(), Code::ALL.len());
    }

    #[test]
    fn suggestions_are_hints_and_fixes() {
        let d = Diagnostic::error(Code::UnknownChoice, Span::new(0, 4, 8), "unknown activation `rleu`")
            .with_suggestion(Span::new(0, 4, 8), "relu", "did you mean `relu`?");
        assert_eq!(d.hint.as_deref(), Some("did you mean `relu`?"));
        assert_eq!(d.fixes[0].replacement, "relu");
        assert_eq!(d.fixes[0].span, Span::new(0, 4, 8));
    }

    #[test]
    fn internal_errors_say_whose_bug_it_is() {
        let d = Diagnostic::internal("code generation failed");
        assert_eq!(d.code, Code::Internal);
        assert!(d.notes.iter().any(|n| n.contains("bug in netc")), "{:?}", d.notes);
        let rendered = render_plain(&SourceMap::new(), &[d]);
        assert!(
            rendered.starts_with("error[E0199]: code generation failed\n"),
            "{rendered}"
        );
        assert!(rendered.contains("bug in netc"), "{rendered}");
    }
}
