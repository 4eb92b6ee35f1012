//! Source files and byte spans.
//!
//! Every stage points back at the text that caused it through a [`Span`]: a file id and a byte
//! range. The files themselves live in one [`SourceMap`], which is what diagnostics render from.

use codespan_reporting::files::SimpleFiles;

/// Identifies one file in a [`SourceMap`].
pub type FileId = usize;

/// A byte range `start..end` in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// The file the range is in.
    pub file: FileId,
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

impl Span {
    /// A span over `start..end` of `file`.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start, end }
    }

    /// The smallest span covering both `self` and `other` (which must be in the same file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// All source text a run has seen: spec files, and the synthetic files that hold `--set` values.
#[derive(Default)]
pub struct SourceMap {
    files: SimpleFiles<String, String>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file and returns its id. A leading UTF-8 byte-order mark (Windows editors write
    /// one) is dropped, so that spans, lines and columns count from the first real character.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        self.files.add(name.into(), text)
    }

    /// The text of a file.
    pub fn text(&self, file: FileId) -> &str {
        self.files
            .get(file)
            .map(|f| f.source().as_str())
            .expect("file ids are only made by SourceMap::add")
    }

    /// The name of a file, as given to [`SourceMap::add`].
    pub fn name(&self, file: FileId) -> &str {
        self.files
            .get(file)
            .map(|f| f.name().as_str())
            .expect("file ids are only made by SourceMap::add")
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        &self.text(span.file)[span.start..span.end]
    }

    /// How many files the map holds (their ids are `0..len`).
    pub fn len(&self) -> usize {
        (0..).take_while(|&id| self.files.get(id).is_ok()).count()
    }

    /// True when the map holds no file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// 1-based line and column (in characters) of a byte offset. The line is found by binary
    /// search in the file's line starts, so this costs the length of that line, not of the
    /// text before it (thousands of diagnostics in one big file stay linear).
    pub fn line_column(&self, file: FileId, offset: usize) -> (usize, usize) {
        use codespan_reporting::files::Files as _;
        let text = self.text(file);
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.files.line_index(file, offset).unwrap_or(0);
        let line_start = self.files.line_range(file, line).map_or(0, |r| r.start);
        let column = text[line_start..offset].chars().count() + 1;
        (line + 1, column)
    }

    /// The underlying codespan file database.
    pub fn files(&self) -> &SimpleFiles<String, String> {
        &self.files
    }
}
