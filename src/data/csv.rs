//! CSV: numbers separated by commas, one sample per line; errors name the row and column.

use crate::data::{Dataset, label_of};
use crate::diag::{Code, Diagnostic};
use crate::ir::LabelColumn;
use ndarray::Array2;

/// The text of CSV bytes: UTF-8, without a leading byte-order mark (spreadsheets write one).
pub fn csv_text<'a>(bytes: &'a [u8], name: &str) -> Result<&'a str, Box<Diagnostic>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Diagnostic::general(
            Code::NotUtf8,
            format!("`{name}` is not UTF-8 text (bad byte at offset {})", e.valid_up_to()),
        )
        .in_file(name)
        .with_hint("save the CSV file as UTF-8")
    })?;
    if let Some(at) = text.bytes().position(|b| b == 0) {
        return Err(Diagnostic::general(
            Code::BadData,
            format!("`{name}` is a binary file, not CSV text (a NUL byte at offset {at})"),
        )
        .in_file(name)
        .with_hint("pass a CSV file, or an IDX (`.idx`, `-ubyte`) or NPY (`.npy`) file by its usual name")
        .into());
    }
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The error for a row whose number of columns differs from the rows before: a trailing
/// comma (one more column, and the last one empty) is named as such.
fn ragged(name: &str, row: usize, cells: &[&str], width: usize) -> Box<Diagnostic> {
    if cells.len() == width + 1 && cells.last().is_some_and(|c| c.is_empty()) {
        return Box::new(
            Diagnostic::general(
                Code::BadData,
                format!(
                    "`{name}`, row {row}, column {} is empty: the row ends with a comma",
                    cells.len()
                ),
            )
            .with_hint("remove the trailing comma from every row"),
        );
    }
    Box::new(
        Diagnostic::general(
            Code::BadData,
            format!(
                "`{name}`, row {row}: {} columns, but the rows before have {width}",
                cells.len()
            ),
        )
        .with_hint("every row needs the same number of columns"),
    )
}

/// The cells of a line, trimmed.
fn cells_of(line: &str) -> Vec<&str> {
    line.split(',').map(str::trim).collect()
}

/// The error for a row whose columns are separated by `;` or tabs, if `line` looks like one.
fn other_separator(name: &str, row: usize, line: &str) -> Option<Box<Diagnostic>> {
    let separator = [(';', "`;`"), ('\t', "tabs")]
        .into_iter()
        .find(|(c, _)| line.contains(*c))?;
    Some(Box::new(
        Diagnostic::general(
            Code::BadData,
            format!(
                "`{name}`, row {row}: the columns are separated by {}, but netc reads comma-separated values",
                separator.1
            ),
        )
        .with_hint(format!(
            "convert the file to commas (with decimal points, not decimal commas), e.g. `tr '{}' ',' < in > out.csv`",
            if separator.0 == ';' { ";" } else { "\\t" }
        )),
    ))
}

/// The error for a cell that is not a finite number, with the likely cause: an empty last
/// column (a trailing comma), another separator, a header row, a class name as a label.
/// How a header row is fixed: in a data statement, or (rows for `netc predict`) by removing it.
const HEADER_IN_DATA: &str = "if the first row is a header, add `header` to the data statement";
const HEADER_IN_ROWS: &str = "if the first row is a header, remove it: give numbers only";

fn cell_error(
    name: &str,
    row: usize,
    first_row: Option<&str>,
    cells: &[&str],
    column: usize,
    label: bool,
) -> Box<Diagnostic> {
    let cell = cells[column];
    let place = format!("`{name}`, row {row}, column {}", column + 1);
    if cell.is_empty() {
        let last = column + 1 == cells.len();
        return Box::new(
            Diagnostic::general(
                Code::BadData,
                if last {
                    format!("{place} is empty: the row ends with a comma")
                } else {
                    format!("{place} is empty")
                },
            )
            .with_hint(if last {
                "remove the trailing comma from every row"
            } else {
                "fill in the missing value"
            }),
        );
    }
    if let Some(e) = other_separator(name, row, cell) {
        return e;
    }
    let shown = crate::diag::shown(cell);
    let numbers = cells.iter().filter(|c| c.parse::<f64>().is_ok()).count();
    let hint = if let Some(header) = first_row.filter(|_| numbers == 0) {
        header
    } else if label {
        "labels are class numbers 0, 1, 2, ...: replace each class name by its number"
    } else if cell.parse::<f64>().is_ok() {
        "replace missing or infinite values with numbers"
    } else {
        "every cell must be a number"
    };
    let message = match (label, cell.parse::<f64>().is_ok()) {
        (_, true) => format!("{place}: `{shown}` is not finite"),
        (true, false) => format!("{place}: the label `{shown}` is not a number"),
        (false, false) => format!("{place}: `{shown}` is not a number"),
    };
    Box::new(Diagnostic::general(Code::BadData, message).with_hint(hint))
}

/// Parses CSV bytes: numbers separated by commas, one sample per line, the label in one column.
pub fn read_csv_bytes(bytes: &[u8], name: &str, label: LabelColumn, header: bool) -> Result<Dataset, Box<Diagnostic>> {
    let text = csv_text(bytes, name)?;
    let mut width = None;
    let mut values: Vec<f32> = Vec::new();
    let mut labels = Vec::new();
    for (line_index, line) in text.lines().enumerate() {
        let row = line_index + 1;
        if (header && line_index == 0) || line.trim().is_empty() {
            continue;
        }
        let cells = cells_of(line);
        match width {
            None => width = Some(cells.len()),
            Some(w) if w != cells.len() => return Err(ragged(name, row, &cells, w)),
            _ => {}
        }
        let label_at = match label {
            LabelColumn::First => 0,
            LabelColumn::Last => cells.len() - 1,
            LabelColumn::Index(i) => i,
        };
        if label_at >= cells.len() || cells.len() < 2 {
            if cells.len() == 1
                && let Some(e) = other_separator(name, row, line)
            {
                return Err(e);
            }
            if cells.len() < 2 {
                return Err(Diagnostic::general(
                    Code::BadData,
                    format!("`{name}`, row {row} has one column: a row needs its features and a label"),
                )
                .with_hint("separate the columns with commas, e.g. `0.5,0.25,3` (two features, label 3)")
                .into());
            }
            return Err(Diagnostic::general(
                Code::BadData,
                format!(
                    "`{name}`, row {row}: no column {label_at} for the label (the rows have {} columns, 0 to {})",
                    cells.len(),
                    cells.len() - 1
                ),
            )
            .with_hint("set `label first`, `label last` or a column number that exists")
            .into());
        }
        let first_row = labels.is_empty();
        for (column, cell) in cells.iter().enumerate() {
            let parsed = cell.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                cell_error(
                    name,
                    row,
                    first_row.then_some(HEADER_IN_DATA),
                    &cells,
                    column,
                    column == label_at,
                )
            })?;
            if column == label_at {
                labels.push(label_of(parsed, || {
                    format!("`{name}`, row {row}, column {}", column + 1)
                })?);
            } else {
                values.push(parsed as f32);
            }
        }
    }
    let Some(width) = width else {
        return Err(Diagnostic::general(Code::BadData, format!("`{name}` has no rows"))
            .with_hint("give a CSV file with one sample per line")
            .into());
    };
    let features = Array2::from_shape_vec((labels.len(), width - 1), values).expect("every row added width-1 values");
    Ok(Dataset { features, labels })
}

/// Parses CSV bytes of numbers only (no label column), for `netc predict`.
pub fn parse_csv_matrix_bytes(bytes: &[u8], name: &str) -> Result<Array2<f32>, Box<Diagnostic>> {
    parse_csv_matrix(csv_text(bytes, name)?, name)
}

/// Parses a CSV of numbers only (no label column), for `netc predict`.
pub fn parse_csv_matrix(text: &str, name: &str) -> Result<Array2<f32>, Box<Diagnostic>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut width = None;
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cells = cells_of(line);
        let w = *width.get_or_insert(cells.len());
        if w != cells.len() {
            return Err(ragged(name, i + 1, &cells, w));
        }
        for (j, cell) in cells.iter().enumerate() {
            let v: f32 = cell
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| cell_error(name, i + 1, (rows == 0).then_some(HEADER_IN_ROWS), &cells, j, false))?;
            values.push(v);
        }
        rows += 1;
    }
    let width = width.ok_or_else(|| {
        Diagnostic::general(Code::BadData, format!("`{name}` has no rows")).with_hint("give one sample per line")
    })?;
    Ok(Array2::from_shape_vec((rows, width), values).expect("rows * width values"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_name_row_and_column() {
        let err = read_csv_bytes(b"1,2,0\n3,x,1\n", "t.csv", LabelColumn::Last, false).expect_err("bad cell");
        assert!(err.message.contains("row 2, column 2"), "{}", err.message);
        let err = read_csv_bytes(b"1,2,0\n3,1\n", "t.csv", LabelColumn::Last, false).expect_err("ragged");
        assert!(err.message.contains("row 2"), "{}", err.message);
        let err = read_csv_bytes(b"1,2,0.5\n", "t.csv", LabelColumn::Last, false).expect_err("fractional label");
        assert!(err.message.contains("not a class number"), "{}", err.message);
        let ok = read_csv_bytes(b"a,b,label\n1,2,0\n3,4,1\n", "t.csv", LabelColumn::Last, true).expect("header");
        assert_eq!(ok.labels, vec![0, 1]);
        let bom = read_csv_bytes(b"\xef\xbb\xbf1,2,0\n", "t.csv", LabelColumn::Last, false).expect("BOM");
        assert_eq!(bom.features[[0, 0]], 1.0);
        let hint = |bytes: &[u8]| {
            let e = read_csv_bytes(bytes, "t.csv", LabelColumn::Last, false).expect_err("bad");
            format!("{} / {}", e.message, e.hint.unwrap_or_default())
        };
        assert!(hint(b"1,2,0,\n").contains("trailing comma"));
        assert!(hint(b"1,2,cat\n").contains("class name"));
        assert!(hint(b"1;2;0\n").contains("separated by `;`"));
        assert!(hint(b"1\t2\t0\n").contains("separated by tabs"));
        assert!(hint(b"a,b,c\n1,2,0\n").contains("header"));
    }
}
