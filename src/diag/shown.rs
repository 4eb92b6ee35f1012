//! What the renderer shows of a list of diagnostics, whatever the form: at most
//! [`MAX_PER_FILE`] per file (then one note says how many more there are), messages with the
//! source text they quote made safe (control and invisible characters escaped, long quotes
//! shortened), and source lines cut to a window around the span when they are long or hold such
//! characters. Output thus grows with the number of files, never with the square of a line's
//! length, and spec text can never send escape sequences to a terminal.

use crate::diag::Diagnostic;
use crate::diag::source::{FileId, SourceMap};
use codespan_reporting::files::{self, Files, SimpleFiles};
use std::collections::HashMap;

/// Most diagnostics shown for one file (or for no file); the rest are counted in a note.
pub const MAX_PER_FILE: usize = 50;

/// Longest source line a snippet shows whole, in characters; longer ones show a window.
pub const MAX_LINE_CHARS: usize = 120;

/// Characters of context kept before a span in a windowed line.
const CONTEXT_CHARS: usize = 40;

/// Longest quote of source text in a message (between backticks), in characters.
const MAX_QUOTE_CHARS: usize = 100;

/// Characters shown escaped (`\u{1b}`) instead of raw: controls (which a terminal may obey) and
/// the invisible ones (a byte-order mark, zero-width and bidirectional marks).
pub fn is_unprintable(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n')
        || matches!(c, '\u{feff}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}')
}

/// `c` as shown in a message or snippet: itself, or escaped like `\u{1b}`.
pub fn printable(c: char, out: &mut String) {
    if is_unprintable(c) {
        out.push_str(&format!("\\u{{{:x}}}", c as u32));
    } else {
        out.push(c);
    }
}

/// `text` with unprintable characters escaped (a file name, a closing line).
pub fn printable_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    text.chars().for_each(|c| printable(c, &mut out));
    out
}

/// A name as a table cell or a heading: unprintable characters escaped, and a name longer than
/// `max` characters shortened to its start and end around `…` (a 100,000-character layer name
/// must not make a 100,000-column table, nor overflow a format width).
pub fn name_cell(name: &str, max: usize) -> String {
    let count = name.chars().count();
    if count <= max {
        return printable_text(name);
    }
    let tail = max / 3;
    let head = max.saturating_sub(tail + 1);
    let mut out = String::new();
    name.chars().take(head).for_each(|c| printable(c, &mut out));
    out.push('…');
    name.chars().skip(count - tail).for_each(|c| printable(c, &mut out));
    out
}

/// A message with unprintable characters escaped and every backtick quote longer than
/// [`MAX_QUOTE_CHARS`] shortened to its start and end around `…`.
pub fn safe_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4096));
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        let quoted = i % 2 == 1;
        let count = part.chars().count();
        if quoted && count > MAX_QUOTE_CHARS {
            let head = MAX_QUOTE_CHARS - 30;
            part.chars().take(head).for_each(|c| printable(c, &mut out));
            out.push('…');
            part.chars().skip(count - 20).for_each(|c| printable(c, &mut out));
        } else {
            part.chars().for_each(|c| printable(c, &mut out));
        }
    }
    out
}

/// The diagnostics as shown: at most [`MAX_PER_FILE`] per file, the last shown one of a file
/// with more carrying a note that counts the rest, and every message made safe.
pub fn shown(sources: &SourceMap, diagnostics: &[Diagnostic]) -> Vec<Diagnostic> {
    let key = |d: &Diagnostic| match (d.span, &d.path) {
        (Some(span), _) => Some(sources.name(span.file).to_string()),
        (None, Some(path)) => Some(path.display().to_string()),
        (None, None) => None,
    };
    let mut kept: HashMap<Option<String>, (usize, usize, usize)> = HashMap::new();
    let mut out: Vec<Diagnostic> = Vec::new();
    for d in diagnostics {
        let entry = kept.entry(key(d)).or_insert((0, 0, 0));
        if entry.0 < MAX_PER_FILE {
            entry.0 += 1;
            out.push(safe(d));
        } else if d.is_error() {
            entry.1 += 1;
        } else {
            entry.2 += 1;
        }
    }
    for (file, (_, errors, warnings)) in kept {
        if errors + warnings == 0 {
            continue;
        }
        let last = out
            .iter_mut()
            .rev()
            .find(|d| key(d) == file)
            .expect("a file with omissions shows some");
        let plural = |n: usize, word: &str| format!("{n} more {word}{}", if n == 1 { "" } else { "s" });
        let counts = match (errors, warnings) {
            (e, 0) => plural(e, "error"),
            (0, w) => plural(w, "warning"),
            (e, w) => format!("{} and {}", plural(e, "error"), plural(w, "warning")),
        };
        let place = file.map_or_else(String::new, |f| format!(" in `{}`", safe_message(&f)));
        last.notes.push(format!(
            "{counts}{place} not shown (at most {MAX_PER_FILE} per file); fix these first"
        ));
    }
    out
}

fn safe(d: &Diagnostic) -> Diagnostic {
    let mut d = d.clone();
    d.message = safe_message(&d.message);
    d.label = safe_message(&d.label);
    d.notes = d.notes.iter().map(|n| safe_message(n)).collect();
    d.hint = d.hint.as_deref().map(safe_message);
    for l in &mut d.secondary {
        l.message = safe_message(&l.message);
    }
    d
}

/// True when some line of `text` would not be shown whole: too long, or holding an
/// unprintable character.
pub fn needs_window(text: &str) -> bool {
    text.split('\n').any(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        line.len() > MAX_LINE_CHARS && line.chars().count() > MAX_LINE_CHARS || line.chars().any(is_unprintable)
    })
}

/// The files a snippet reads: the sources themselves, or windowed copies of them that still
/// report each span's original column.
pub enum ShownFiles<'s> {
    /// The sources as they are.
    Direct(&'s SimpleFiles<String, String>),
    /// Windowed copies, and the original column of each offset a span of the diagnostic has
    /// in them.
    Windowed(SimpleFiles<String, String>, HashMap<(FileId, usize), usize>),
}

impl<'a> Files<'a> for ShownFiles<'_> {
    type FileId = FileId;
    type Name = String;
    type Source = &'a str;

    fn name(&'a self, id: FileId) -> Result<String, files::Error> {
        self.files().get(id).map(|f| printable_text(f.name()))
    }

    fn source(&'a self, id: FileId) -> Result<&'a str, files::Error> {
        self.files().get(id).map(|f| f.source().as_str())
    }

    fn line_index(&'a self, id: FileId, byte_index: usize) -> Result<usize, files::Error> {
        self.files().line_index(id, byte_index)
    }

    fn line_range(&'a self, id: FileId, line_index: usize) -> Result<std::ops::Range<usize>, files::Error> {
        self.files().line_range(id, line_index)
    }

    fn column_number(&'a self, id: FileId, line_index: usize, byte_index: usize) -> Result<usize, files::Error> {
        if let ShownFiles::Windowed(_, columns) = self
            && let Some(&column) = columns.get(&(id, byte_index))
        {
            return Ok(column);
        }
        self.files().column_number(id, line_index, byte_index)
    }
}

impl ShownFiles<'_> {
    fn files(&self) -> &SimpleFiles<String, String> {
        match self {
            ShownFiles::Direct(files) => files,
            ShownFiles::Windowed(files, _) => files,
        }
    }
}

/// The files of `sources` as a snippet of `d` shows them: the files it points into rewritten
/// so that every line is short and printable (a window around the offsets of interest, with
/// `…` where text was cut, unprintable characters escaped), and `d`'s spans moved to match.
pub fn windowed<'s>(sources: &SourceMap, d: &Diagnostic) -> (ShownFiles<'s>, Diagnostic) {
    let mut files = SimpleFiles::new();
    let mut d = d.clone();
    let mut mapped: HashMap<FileId, HashMap<usize, usize>> = HashMap::new();
    let mut columns = HashMap::new();
    for id in 0..sources.len() {
        let text = sources.text(id);
        let offsets: Vec<usize> = d
            .span
            .iter()
            .chain(d.secondary.iter().map(|l| &l.span))
            .filter(|s| s.file == id)
            .flat_map(|s| [s.start, s.end])
            .collect();
        if offsets.is_empty() {
            files.add(sources.name(id).to_string(), String::new());
            continue;
        }
        let (shown, map) = window_text(text, &offsets);
        for (&original, &at) in &map {
            columns.insert((id, at), sources.line_column(id, original).1);
        }
        files.add(sources.name(id).to_string(), shown);
        mapped.insert(id, map);
    }
    // Where the header's `file:line:column` comes from wins any tie of clamped offsets.
    if let Some(span) = d.span
        && let Some(&at) = mapped.get(&span.file).and_then(|m| m.get(&span.start))
    {
        columns.insert((span.file, at), sources.line_column(span.file, span.start).1);
    }
    let remap = |span: &mut crate::diag::source::Span| {
        if let Some(map) = mapped.get(&span.file) {
            let end_of_text = map.values().copied().max().unwrap_or(0);
            span.start = map.get(&span.start).copied().unwrap_or(end_of_text);
            span.end = map.get(&span.end).copied().unwrap_or(end_of_text).max(span.start);
        }
    };
    if let Some(span) = &mut d.span {
        remap(span);
    }
    for l in &mut d.secondary {
        remap(&mut l.span);
    }
    (ShownFiles::Windowed(files, columns), d)
}

/// `text` with each line that needs it cut to a window and escaped, and where each of
/// `offsets` lands in the result. Lines outside the offsets' range are left empty (a snippet
/// never shows them; keeping their line ends keeps the line numbers). The cost is the length
/// of the lines in that range, plus a window per long line: never a line's length per offset.
fn window_text(text: &str, offsets: &[usize]) -> (String, HashMap<usize, usize>) {
    let mut out = String::new();
    let mut map = HashMap::new();
    let lowest = offsets.iter().copied().min().unwrap_or(0);
    let highest = offsets.iter().copied().max().unwrap_or(0);
    let mut line_start = 0;
    for raw in text.split_inclusive('\n') {
        let line_end = line_start + raw.len();
        let at_end = line_end == text.len();
        if line_end <= lowest && !(at_end && lowest == line_end) || line_start > highest {
            if raw.ends_with('\n') {
                out.push('\n');
            }
            line_start = line_end;
            continue;
        }
        let body = raw.strip_suffix('\n').unwrap_or(raw);
        let body = body.strip_suffix('\r').unwrap_or(body);
        let here: Vec<usize> = offsets
            .iter()
            .copied()
            .filter(|&o| o >= line_start && (o < line_end || at_end && o == line_end))
            .collect();
        let plain = body.len() <= MAX_LINE_CHARS && !body.chars().any(is_unprintable);
        if plain {
            for &o in &here {
                map.insert(o, out.len() + (o - line_start));
            }
            out.push_str(raw);
        } else {
            window_line(body, line_start, &here, &mut out, &mut map);
            out.push_str(&raw[body.len()..]);
        }
        line_start = line_end;
    }
    if text.is_empty() || offsets.contains(&text.len()) {
        map.entry(text.len()).or_insert(out.len());
    }
    (out, map)
}

/// Appends the window of one line (`body`, starting at byte `line_start` of the text) around
/// the first of `here`: [`CONTEXT_CHARS`] before it, [`MAX_LINE_CHARS`] in all, `…` where
/// text was cut, unprintable characters escaped; records where each of `here` lands.
fn window_line(body: &str, line_start: usize, here: &[usize], out: &mut String, map: &mut HashMap<usize, usize>) {
    let first = here.iter().map(|&o| o - line_start).min().unwrap_or(0).min(body.len());
    let mut first = first;
    while !body.is_char_boundary(first) {
        first -= 1;
    }
    let lo = body[..first]
        .char_indices()
        .rev()
        .nth(CONTEXT_CHARS - 1)
        .map_or(0, |(i, _)| i);
    let hi = body[lo..]
        .char_indices()
        .nth(MAX_LINE_CHARS)
        .map_or(body.len(), |(i, _)| lo + i);
    if lo > 0 {
        out.push('…');
    }
    // Where each byte of the window starts in `out`, and where the window ends.
    let mut starts: Vec<(usize, usize)> = Vec::with_capacity(MAX_LINE_CHARS + 1);
    for (i, c) in body[lo..hi].char_indices() {
        starts.push((lo + i, out.len()));
        printable(c, out);
    }
    let window_end = out.len();
    if hi < body.len() {
        out.push('…');
    }
    let window_start = starts.first().map_or(window_end, |&(_, at)| at);
    for &o in here {
        let o = o - line_start;
        let at = if o <= lo {
            window_start
        } else if o >= hi {
            window_end
        } else {
            starts.iter().find(|&&(b, _)| b >= o).map_or(window_end, |&(_, at)| at)
        };
        map.insert(o + line_start, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Code;
    use crate::diag::source::Span;

    #[test]
    fn long_lines_show_a_window_with_the_span() {
        let text = format!("{}bad{}\n", "x".repeat(5000), "y".repeat(5000));
        let (shown, map) = window_text(&text, &[5000, 5003]);
        assert!(shown.chars().count() < MAX_LINE_CHARS + 10, "{shown}");
        assert_eq!(&shown[map[&5000]..map[&5003]], "bad");
        assert!(shown.starts_with('…') && shown.ends_with("…\n"));
    }

    #[test]
    fn unprintable_characters_are_escaped() {
        assert_eq!(safe_message("found `\u{1b}[31m`"), "found `\\u{1b}[31m`");
        let (shown, map) = window_text("a\u{1b}b\n", &[1, 2]);
        assert_eq!(shown, "a\\u{1b}b\n");
        assert_eq!(&shown[map[&1]..map[&2]], "\\u{1b}");
    }

    #[test]
    fn at_most_so_many_per_file_then_a_note() {
        let mut sources = SourceMap::new();
        let f = sources.add("a.net", "}".repeat(200));
        let all: Vec<Diagnostic> = (0..200)
            .map(|i| Diagnostic::error(Code::UnbalancedBrace, Span::new(f, i, i + 1), "x"))
            .collect();
        let shown = shown(&sources, &all);
        assert_eq!(shown.len(), MAX_PER_FILE);
        assert!(shown[MAX_PER_FILE - 1].notes[0].starts_with("150 more errors in `a.net` not shown"));
    }
}
