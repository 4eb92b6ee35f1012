//! Stage 1: text to syntax tree.
//!
//! The pest grammar (`grammar/net.pest`) gives a tree of statements with byte spans. Syntax
//! errors are recovered from line by line, so one run reports every malformed line, not just the
//! first. This stage knows nothing about keywords: that is the job of [`crate::ir`].

use crate::diag::source::{FileId, Span};
use crate::diag::{Code, Diagnostic};
use pest::Parser as _;
use pest::iterators::Pair;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/net.pest"]
struct NetParser;

/// How deeply blocks may nest. Deeper files are refused before parsing, so that neither the
/// parser nor any later stage can overflow its stack on hostile input.
pub const MAX_NESTING: usize = 32;

/// How many syntax errors one run reports before giving up on a file.
const MAX_SYNTAX_ERRORS: usize = 50;

/// A parsed file: its lines in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceFile {
    /// Top-level lines.
    pub lines: Vec<Line>,
}

/// One line-level item of a file or block.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// An empty line.
    Blank,
    /// A line holding only a comment.
    Comment(Comment),
    /// A statement, possibly with a trailing comment.
    Statement(Statement),
}

/// A `#` comment, text included.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The text, starting with `#`, without the line end.
    pub text: String,
    /// Where it is.
    pub span: Span,
}

/// A statement: `let` binding or command.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// What it says.
    pub kind: StatementKind,
    /// A comment at the end of its line.
    pub comment: Option<Comment>,
    /// The whole statement, comment excluded.
    pub span: Span,
}

/// The two forms of statement.
#[derive(Debug, Clone, PartialEq)]
pub enum StatementKind {
    /// `let NAME = VALUE`
    Let(LetBinding),
    /// `HEAD ARGS... { BLOCK }`
    Command(Command),
}

/// `let NAME = VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct LetBinding {
    /// The constant's name.
    pub name: Ident,
    /// Its value.
    pub value: Value,
}

/// A head word (or call) followed by labels and values and an optional block.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The first word (`dense`, `optimizer`, ...) or a block call (`hidden(256, relu)`).
    pub head: Value,
    /// Everything between the head and the block.
    pub args: Vec<Arg>,
    /// A `{ ... }` block, if any.
    pub block: Option<Block>,
}

/// An argument of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `name:` (a layer name).
    Label(Ident),
    /// Anything else.
    Value(Value),
}

/// A `{ ... }` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Its lines.
    pub lines: Vec<Line>,
    /// From `{` to `}` inclusive.
    pub span: Span,
    /// Opened and closed on one line (`repeat 3 { dense 64 relu }`); `fmt` keeps it that way.
    pub inline: bool,
}

/// A name with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is.
    pub span: Span,
}

/// A value with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// What it is.
    pub kind: ValueKind,
    /// Where it is.
    pub span: Span,
}

/// The kinds of value.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// `256`, `1e-3`, `10%`.
    Number(Number),
    /// A bare name: a keyword, a constant or a choice like `relu`.
    Word(String),
    /// A double-quoted string (file paths).
    Str(String),
    /// `name(args)`, e.g. `leaky_relu(0.1)`.
    Call(Ident, Vec<Value>),
}

/// A number as written and as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// The text as written (kept by `fmt`).
    pub text: String,
    /// Its value; a percentage is already divided by 100.
    pub value: f64,
    /// Written with `%`.
    pub percent: bool,
    /// Written without a decimal point, exponent or `%`.
    pub integer: bool,
}

impl Value {
    /// The word, if this is a bare word.
    pub fn as_word(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::Word(w) => Some(w),
            _ => None,
        }
    }

    /// A short description for messages: "the number `3`", "the name `relu`".
    pub fn describe(&self) -> String {
        match &self.kind {
            ValueKind::Number(n) => format!("the number `{}`", n.text),
            ValueKind::Word(w) => format!("the name `{w}`"),
            ValueKind::Str(s) => format!("the string \"{s}\""),
            ValueKind::Call(name, _) => format!("the call `{}(...)`", name.name),
        }
    }
}

/// Parses a file. Always returns a tree (empty or partial when the text has syntax errors) and
/// the syntax errors found; when there are errors, later stages should not run.
pub fn parse(file: FileId, text: &str) -> (SourceFile, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut work: Vec<u8> = text.as_bytes().to_vec();

    if let Some(d) = check_nesting(file, text) {
        return (SourceFile::default(), vec![d]);
    }
    check_braces(file, text, &mut work, &mut diagnostics);

    loop {
        // Blanking only ever replaces bytes of a line with spaces, so `work` stays valid UTF-8
        // (a multi-byte character is blanked whole) and every offset still matches `text`.
        let current = String::from_utf8(work.clone()).expect("blanking keeps UTF-8 valid");
        match NetParser::parse(Rule::file, &current) {
            Ok(mut pairs) => {
                let file_pair = pairs.next().expect("the file rule always yields one pair");
                let tree = build_file(file, file_pair);
                return (tree, diagnostics);
            }
            Err(error) => {
                let position = match error.location {
                    pest::error::InputLocation::Pos(p) => p,
                    pest::error::InputLocation::Span((s, _)) => s,
                };
                diagnostics.push(syntax_error(file, text, &current, position, &error));
                if diagnostics.len() >= MAX_SYNTAX_ERRORS || !blank_line(&mut work, position) {
                    return (SourceFile::default(), diagnostics);
                }
            }
        }
    }
}

/// Parses a single value (the right-hand side of `--set KEY=VALUE`), held in its own file.
pub fn parse_value(file: FileId, text: &str) -> Result<Value, Box<Diagnostic>> {
    if text.len() > 4096 || check_nesting(file, text).is_some() {
        return Err(Box::new(Diagnostic::error(
            Code::BadOverride,
            Span::new(file, 0, text.len().min(1)),
            "this value is too long or too deeply nested",
        )));
    }
    let parsed = NetParser::parse(Rule::lone_value, text);
    if let Err(error) = &parsed {
        let position = match error.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((s, _)) => s,
        };
        if let Some(mut d) = character_error(file, text, position) {
            d.code = Code::BadOverride;
            return Err(Box::new(d));
        }
    }
    match parsed {
        Ok(mut pairs) => {
            let pair = pairs.next().expect("lone_value always yields one pair");
            let value = pair
                .into_inner()
                .find(|p| p.as_rule() != Rule::EOI)
                .expect("lone_value holds a value");
            Ok(build_value(file, value))
        }
        Err(_) => Err(Box::new(Diagnostic::error(
            Code::BadOverride,
            Span::new(file, 0, text.len()),
            format!("`{text}` is not a value"),
        )
        .with_label("not a number, name, quoted string or call")
        .with_hint(
            "write a number (`0.01`), a name (`relu`), a call (`leaky_relu(0.1)`) or a quoted path (`\"data.csv\"`)",
        ))),
    }
}

/// Refuses files nested deeper than [`MAX_NESTING`] (counting `{` and `(`).
fn check_nesting(file: FileId, text: &str) -> Option<Diagnostic> {
    let mut depth = 0usize;
    for (offset, c) in code_chars(text) {
        match c {
            '{' | '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Diagnostic::error(
                            Code::NestingTooDeep,
                            Span::new(file, offset, offset + 1),
                            format!("blocks are nested more than {MAX_NESTING} levels deep"),
                        )
                        .with_label("too deep here")
                        .with_hint("flatten the nesting: use `repeat N { ... }` or a named block instead of nesting"),
                    );
                }
            }
            '}' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The characters of `text` outside comments and strings, with their byte offsets.
fn code_chars(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut in_comment = false;
    let mut in_string = false;
    let mut escaped = false;
    text.char_indices().filter(move |&(_, c)| {
        if c == '\n' {
            in_comment = false;
            in_string = false;
            return true;
        }
        if in_comment {
            return false;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            return false;
        }
        match c {
            '#' => {
                in_comment = true;
                false
            }
            '"' => {
                in_string = true;
                false
            }
            _ => true,
        }
    })
}

/// Reports unmatched braces (far better than the parser's "expected `}`" at the end of the file)
/// and blanks them in `work` so that parsing can go on. At most [`MAX_SYNTAX_ERRORS`] are
/// reported; the last one counts the rest (a file of stray braces costs linear time and memory).
fn check_braces(file: FileId, text: &str, work: &mut [u8], diagnostics: &mut Vec<Diagnostic>) {
    let mut open: Vec<usize> = Vec::new();
    let mut stray: Vec<usize> = Vec::new();
    for (offset, c) in code_chars(text) {
        match c {
            '{' => open.push(offset),
            // The guard pops the matching `{` when there is one; only a `}` with none is reported.
            '}' if open.pop().is_none() => stray.push(offset),
            _ => {}
        }
    }
    let total = stray.len() + open.len();
    for &offset in stray.iter().chain(&open) {
        work[offset] = b' ';
    }
    let reported = stray.iter().map(|&o| (o, true)).chain(open.iter().map(|&o| (o, false)));
    for (offset, closing) in reported.take(MAX_SYNTAX_ERRORS) {
        let span = Span::new(file, offset, offset + 1);
        diagnostics.push(if closing {
            Diagnostic::error(Code::UnbalancedBrace, span, "this `}` closes nothing")
                .with_label("no `{` before it is still open")
                .with_hint("remove this `}`, or add the `{` it was meant to close")
        } else {
            Diagnostic::error(Code::UnbalancedBrace, span, "this `{` is never closed")
                .with_label("opened here")
                .with_hint("add a `}` at the end of the block")
        });
    }
    if total > MAX_SYNTAX_ERRORS
        && let Some(last) = diagnostics.last_mut()
    {
        last.notes.push(format!(
            "{} more unbalanced braces are not reported",
            total - MAX_SYNTAX_ERRORS
        ));
    }
}

/// Replaces the line holding `position` with spaces, braces excepted. Returns false when there
/// was nothing left to blank (recovery would loop).
fn blank_line(work: &mut [u8], position: usize) -> bool {
    let position = position.min(work.len());
    let start = work[..position].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let end = work[position..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(work.len(), |i| position + i);
    let mut changed = false;
    for b in &mut work[start..end] {
        if !matches!(*b, b' ' | b'{' | b'}' | b'\t' | b'\r') {
            *b = b' ';
            changed = true;
        }
    }
    changed
}

/// What is at `position`, for "found ..." in messages, and its length in bytes.
fn found_at(text: &str, position: usize) -> (String, usize) {
    let rest = &text[position.min(text.len())..];
    let Some(first) = rest.chars().next() else {
        return ("the end of the file".to_string(), 0);
    };
    if first == '\n' || first == '\r' {
        return ("the end of the line".to_string(), 0);
    }
    if first.is_alphanumeric() || first == '_' || first == '.' {
        let len: usize = rest
            .char_indices()
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '%'))
            .map_or(rest.len(), |(i, _)| i);
        return (format!("`{}`", &rest[..len]), len);
    }
    (format!("`{first}`"), first.len_utf8())
}

fn rule_words(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "the end of the file",
        Rule::statement | Rule::command | Rule::head | Rule::lines | Rule::let_binding => "a statement",
        Rule::block => "`{`",
        Rule::label => "a layer name like `h1:`",
        Rule::word | Rule::name => "a name",
        Rule::number => "a number",
        Rule::string | Rule::string_text => "a quoted string",
        Rule::call => "a call like `normal(0.01)`",
        Rule::arguments => "a value",
        _ => return None,
    })
}

fn syntax_error(
    file: FileId,
    original: &str,
    current: &str,
    position: usize,
    error: &pest::error::Error<Rule>,
) -> Diagnostic {
    let (found, len) = found_at(current, position);
    let mut expected: Vec<&str> = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().filter_map(|&r| rule_words(r)).collect()
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    // "End of file" inside a statement means its end: a line end, `;` or `}` would do too.
    if position < current.trim_end().len() {
        for e in &mut expected {
            if *e == "the end of the file" {
                *e = "the end of the line";
            }
        }
    }
    expected.sort_unstable();
    expected.dedup();
    let next_char = current[position.min(current.len())..].chars().next();
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let line_text = {
        let start = original[..position.min(original.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let end = original[start..].find('\n').map_or(original.len(), |i| start + i);
        &original[start..end]
    };
    let hint = match next_char {
        Some(':') => {
            Some("a layer name is written right before its colon, with no space: `dense h1: 256 relu`".to_string())
        }
        Some('=') => Some("constants are declared as `let NAME = VALUE`, on a line of their own".to_string()),
        Some('(') => Some("write a call with no space before `(`: `leaky_relu(0.1)`".to_string()),
        Some(')') | Some(',') => Some("call arguments are values separated by commas: `step(10, 0.5)`".to_string()),
        Some('"') => Some("close the string with `\"` on the same line".to_string()),
        Some('.') | Some('/') => Some("file paths go in double quotes: `data \"data/train.csv\"`".to_string()),
        _ if line_text.trim_start().starts_with("let") => {
            Some("a constant is declared as `let NAME = VALUE`, e.g. `let width = 256`".to_string())
        }
        _ => Some("each statement is a keyword followed by values, e.g. `dense h1: 256 relu`".to_string()),
    };
    if let Some(d) = character_error(file, current, position) {
        return d;
    }
    let mut d = Diagnostic::error(Code::Syntax, Span::new(file, position, position + len), message)
        .with_label(format!("unexpected {found}"));
    d.hint = hint;
    d
}

/// A syntax error that one character explains better than the grammar's expectations: a
/// letter outside ASCII in a name, an invisible or control character, or a string whose
/// backslash starts no escape (`"data\train.csv"`, a Windows path).
fn character_error(file: FileId, text: &str, position: usize) -> Option<Diagnostic> {
    let c = text[position.min(text.len())..].chars().next()?;
    let at = Span::new(file, position, position + c.len_utf8());
    if crate::diag::shown::is_unprintable(c) {
        return Some(
            Diagnostic::error(
                Code::Syntax,
                at,
                format!("unexpected invisible or control character `{c}`"),
            )
            .with_label("this character")
            .with_hint("delete it: editors often show it as nothing at all"),
        );
    }
    if !c.is_ascii() && c.is_alphanumeric() {
        return Some(
            Diagnostic::error(
                Code::Syntax,
                at,
                format!("names are ASCII letters, digits and `_`; found `{c}`"),
            )
            .with_label("not an ASCII letter")
            .with_hint("spell the name with ASCII letters, digits and `_`, e.g. `hidden_1`"),
        );
    }
    if c != '"' {
        return None;
    }
    // The first backslash of the string that escapes neither `"` nor `\`.
    let rest = &text[position + 1..];
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\n' => return None,
            '\\' => match chars.next() {
                Some((_, '"' | '\\')) => {}
                Some((j, e)) if e != '\n' => {
                    let start = position + 1 + i;
                    let end = position + 1 + j + e.len_utf8();
                    return Some(
                        Diagnostic::error(
                            Code::Syntax,
                            Span::new(file, start, end),
                            format!("`\\{e}` is not an escape: a backslash in a string escapes only `\"` and `\\`"),
                        )
                        .with_label("invalid escape")
                        .with_hint("write paths with `/` (\"data/train.csv\" works on Windows too), or double the backslash: `\\\\`"),
                    );
                }
                _ => return None,
            },
            _ => {}
        }
    }
    None
}

/// "a, b or c".
pub fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn span_of(file: FileId, pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(file, s.start(), s.end())
}

fn build_file(file: FileId, pair: Pair<Rule>) -> SourceFile {
    let lines_pair = pair
        .into_inner()
        .find(|p| p.as_rule() == Rule::lines)
        .expect("the file rule always contains lines");
    SourceFile {
        lines: build_lines(file, lines_pair),
    }
}

fn build_lines(file: FileId, pair: Pair<Rule>) -> Vec<Line> {
    pair.into_inner()
        .map(|p| match p.as_rule() {
            Rule::blank => Line::Blank,
            Rule::comment_line => {
                let c = p.into_inner().next().expect("comment_line holds a comment");
                Line::Comment(build_comment(file, c))
            }
            Rule::statement => Line::Statement(build_statement(file, p)),
            other => unreachable!("lines hold only blank, comment_line and statement, found {other:?}"),
        })
        .collect()
}

fn build_comment(file: FileId, pair: Pair<Rule>) -> Comment {
    Comment {
        text: pair.as_str().trim_end().to_string(),
        span: span_of(file, &pair),
    }
}

fn build_statement(file: FileId, pair: Pair<Rule>) -> Statement {
    let mut kind = None;
    let mut comment = None;
    let mut span = span_of(file, &pair);
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::let_binding => {
                span = span_of(file, &p);
                let mut inner = p.into_inner();
                let name = build_ident(file, inner.next().expect("let has a name"));
                let value = build_value(file, inner.next().expect("let has a value"));
                kind = Some(StatementKind::Let(LetBinding { name, value }));
            }
            Rule::command => {
                span = span_of(file, &p);
                kind = Some(StatementKind::Command(build_command(file, p)));
            }
            Rule::comment => comment = Some(build_comment(file, p)),
            other => unreachable!("statement holds only let, command and comment, found {other:?}"),
        }
    }
    Statement {
        kind: kind.expect("a statement is a let or a command"),
        comment,
        span,
    }
}

fn build_command(file: FileId, pair: Pair<Rule>) -> Command {
    let mut inner = pair.into_inner();
    let head_pair = inner.next().expect("a command starts with its head");
    let head = build_value(file, head_pair.into_inner().next().expect("a head is a call or a word"));
    let mut args = Vec::new();
    let mut block = None;
    for p in inner {
        match p.as_rule() {
            Rule::label => {
                let name = p.into_inner().next().expect("a label holds a name");
                args.push(Arg::Label(build_ident(file, name)));
            }
            Rule::block => {
                let span = span_of(file, &p);
                let inline = !p.as_str().contains('\n');
                let lines_pair = p.into_inner().next().expect("a block holds lines");
                block = Some(Block {
                    lines: build_lines(file, lines_pair),
                    span,
                    inline,
                });
            }
            _ => args.push(Arg::Value(build_value(file, p))),
        }
    }
    Command { head, args, block }
}

fn build_ident(file: FileId, pair: Pair<Rule>) -> Ident {
    Ident {
        name: pair.as_str().to_string(),
        span: span_of(file, &pair),
    }
}

fn build_value(file: FileId, pair: Pair<Rule>) -> Value {
    let span = span_of(file, &pair);
    let kind = match pair.as_rule() {
        Rule::number => {
            let text = pair.as_str().to_string();
            let percent = text.ends_with('%');
            let digits = text.trim_end_matches('%');
            // The grammar only admits well-formed decimal numbers, which f64 always parses
            // (huge ones become infinity, which the checker's range checks reject).
            let parsed: f64 = digits.parse().unwrap_or(f64::NAN);
            let integer = !percent && !digits.contains(['.', 'e', 'E']);
            ValueKind::Number(Number {
                value: if percent { parsed / 100.0 } else { parsed },
                percent,
                integer,
                text,
            })
        }
        Rule::word => ValueKind::Word(pair.as_str().to_string()),
        Rule::string => {
            let raw = pair.into_inner().next().map_or("", |p| p.as_str());
            ValueKind::Str(raw.replace("\\\"", "\"").replace("\\\\", "\\"))
        }
        Rule::call => {
            let mut inner = pair.into_inner();
            let name = build_ident(file, inner.next().expect("a call has a name"));
            let args = inner
                .next()
                .map(|a| a.into_inner().map(|v| build_value(file, v)).collect())
                .unwrap_or_default();
            ValueKind::Call(name, args)
        }
        other => unreachable!("a value is a number, word, string or call, found {other:?}"),
    };
    Value { kind, span }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> SourceFile {
        let (tree, diagnostics) = parse(0, text);
        assert!(diagnostics.is_empty(), "unexpected errors: {diagnostics:?}");
        tree
    }

    #[test]
    fn parses_statements_labels_calls_and_blocks() {
        let tree =
            parse_ok("model m {\n  dense h1: 256 leaky_relu(0.1) init normal(0.01)\n  repeat 3 { dense 8 relu }\n}\n");
        let Line::Statement(model) = &tree.lines[0] else {
            panic!("expected a statement")
        };
        let StatementKind::Command(cmd) = &model.kind else {
            panic!("expected a command")
        };
        assert_eq!(cmd.head.as_word(), Some("model"));
        let block = cmd.block.as_ref().expect("model has a block");
        assert!(!block.inline);
        let statements: Vec<_> = block
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Statement(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(statements.len(), 2);
        let StatementKind::Command(dense) = &statements[0].kind else {
            panic!()
        };
        assert!(matches!(&dense.args[0], Arg::Label(i) if i.name == "h1"));
        assert!(
            matches!(&dense.args[2], Arg::Value(Value { kind: ValueKind::Call(n, a), .. }) if n.name == "leaky_relu" && a.len() == 1)
        );
        let StatementKind::Command(repeat) = &statements[1].kind else {
            panic!()
        };
        assert!(repeat.block.as_ref().is_some_and(|b| b.inline));
    }

    #[test]
    fn numbers_keep_text_and_read_percentages() {
        let tree = parse_ok("a 1e-3 10% 256 .5\n");
        let Line::Statement(s) = &tree.lines[0] else { panic!() };
        let StatementKind::Command(c) = &s.kind else { panic!() };
        let numbers: Vec<_> = c
            .args
            .iter()
            .map(|a| match a {
                Arg::Value(Value {
                    kind: ValueKind::Number(n),
                    ..
                }) => (n.value, n.integer),
                _ => panic!(),
            })
            .collect();
        assert_eq!(numbers, vec![(1e-3, false), (0.1, false), (256.0, true), (0.5, false)]);
    }

    #[test]
    fn reports_every_bad_line_in_one_run() {
        let (_, diagnostics) = parse(0, "model m {\n  dense h1 : 3\n  input = 4\n  dense 3 relu\n}\n");
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
        assert!(diagnostics.iter().all(|d| d.code == Code::Syntax));
        assert!(diagnostics[0].hint.as_deref().unwrap_or("").contains("no space"));
    }

    #[test]
    fn unbalanced_braces_point_at_the_brace() {
        let (_, diagnostics) = parse(0, "model m {\n  input 3\n");
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].code, Code::UnbalancedBrace);
        assert_eq!(diagnostics[0].span, Some(Span::new(0, 8, 9)));
        let (_, diagnostics) = parse(0, "input 3 }\n");
        assert_eq!(diagnostics[0].code, Code::UnbalancedBrace);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let text = "a {".repeat(100_000);
        let (_, diagnostics) = parse(0, &text);
        assert_eq!(diagnostics[0].code, Code::NestingTooDeep);
    }
}
