//! `netc fmt`: the one canonical layout of a spec.
//!
//! Rules: two-space indentation per block; one statement per line, its words separated by one
//! space; calls as `name(a, b)`; numbers and strings kept as written; comments kept, a trailing
//! comment two spaces after its statement; runs of blank lines collapsed to one, none at the
//! start or end of a block; a block written on one line stays on one line (`{ a; b }`).
//! Formatting never changes what a spec means (a property test checks that).

use crate::front::syntax::{
    Arg, Block, Command, Comment, Line, SourceFile, Statement, StatementKind, Value, ValueKind,
};

/// Formats a parsed file. `text` is the source it was parsed from (to place comments).
pub fn format_file(tree: &SourceFile, text: &str) -> String {
    let mut out = String::new();
    write_lines(&mut out, &tree.lines, 0, text);
    out
}

fn write_lines(out: &mut String, lines: &[Line], depth: usize, text: &str) {
    let indent = "  ".repeat(depth);
    let mut pending_blank = false;
    let mut wrote_any = false;
    for line in lines {
        match line {
            Line::Blank => {
                pending_blank = wrote_any;
                continue;
            }
            Line::Comment(c) => {
                if pending_blank {
                    out.push('\n');
                }
                out.push_str(&indent);
                out.push_str(&c.text);
                out.push('\n');
            }
            Line::Statement(s) => {
                if pending_blank {
                    out.push('\n');
                }
                out.push_str(&indent);
                write_statement(out, s, depth, text);
                out.push('\n');
            }
        }
        pending_blank = false;
        wrote_any = true;
    }
}

fn write_statement(out: &mut String, statement: &Statement, depth: usize, text: &str) {
    match &statement.kind {
        StatementKind::Let(binding) => {
            out.push_str("let ");
            out.push_str(&binding.name.name);
            out.push_str(" = ");
            write_value(out, &binding.value);
        }
        StatementKind::Command(command) => write_command(out, command, depth, text),
    }
    if let Some(comment) = &statement.comment {
        out.push_str("  ");
        out.push_str(&comment.text);
    }
}

fn write_command(out: &mut String, command: &Command, depth: usize, text: &str) {
    write_value(out, &command.head);
    for arg in &command.args {
        out.push(' ');
        match arg {
            Arg::Label(ident) => {
                out.push_str(&ident.name);
                out.push(':');
            }
            Arg::Value(v) => write_value(out, v),
        }
    }
    if let Some(block) = &command.block {
        out.push(' ');
        write_block(out, block, depth, text);
    }
}

fn write_block(out: &mut String, block: &Block, depth: usize, text: &str) {
    let statements_only = block
        .lines
        .iter()
        .all(|l| matches!(l, Line::Statement(s) if s.comment.is_none()));
    if block.inline && statements_only {
        let parts: Vec<String> = block
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Statement(s) => {
                    let mut part = String::new();
                    write_statement(&mut part, s, depth + 1, text);
                    Some(part)
                }
                _ => None,
            })
            .collect();
        if parts.is_empty() {
            out.push_str("{ }");
        } else {
            out.push_str("{ ");
            out.push_str(&parts.join("; "));
            out.push_str(" }");
        }
        return;
    }
    out.push('{');
    let mut lines: &[Line] = &block.lines;
    // A comment on the `{` line stays there.
    if let Some(Line::Comment(c)) = lines.first()
        && on_same_line(text, block.span.start, c)
    {
        out.push_str("  ");
        out.push_str(&c.text);
        lines = &lines[1..];
    } else if let Some(Line::Blank) = lines.first() {
        // The line end right after `{` parses as a blank line; it is not a real one.
        lines = &lines[1..];
    }
    out.push('\n');
    write_lines(out, lines, depth + 1, text);
    out.push_str(&"  ".repeat(depth));
    out.push('}');
}

fn on_same_line(text: &str, brace: usize, comment: &Comment) -> bool {
    text.get(brace..comment.span.start)
        .is_some_and(|between| !between.contains('\n'))
}

fn write_value(out: &mut String, value: &Value) {
    match &value.kind {
        ValueKind::Number(n) => out.push_str(&n.text),
        ValueKind::Word(w) => out.push_str(w),
        ValueKind::Str(s) => {
            out.push('"');
            out.push_str(&s.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
        }
        ValueKind::Call(name, args) => {
            out.push_str(&name.name);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, a);
            }
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::syntax::parse;

    fn fmt(text: &str) -> String {
        let (tree, diagnostics) = parse(0, text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        format_file(&tree, text)
    }

    #[test]
    fn normalizes_spacing_and_keeps_comments() {
        let input = "\n\n# top\nmodel   m {   # about m\n  input  784\n\n\n  dense h1:  256   relu   # hidden\n  repeat 2 {dense 3 relu;dropout 0.5}\n}\ntrain{\n batch 128  epochs 30\n}\n\n";
        let expected = "# top\nmodel m {  # about m\n  input 784\n\n  dense h1: 256 relu  # hidden\n  repeat 2 { dense 3 relu; dropout 0.5 }\n}\ntrain {\n  batch 128 epochs 30\n}\n";
        assert_eq!(fmt(input), expected);
        assert_eq!(fmt(expected), expected);
    }

    #[test]
    fn calls_and_strings_are_canonical() {
        assert_eq!(
            fmt("a leaky_relu( 0.1 ,) \"x\\\"y\"\n"),
            "a leaky_relu(0.1) \"x\\\"y\"\n"
        );
    }
}
