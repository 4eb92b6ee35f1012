//! CSV: numbers separated by commas, one sample per line; errors name the row and column.

use crate::data::{Dataset, label_of};
use crate::diag::{Code, Diagnostic};
use crate::ir::LabelColumn;
use ndarray::Array2;

/// Parses CSV text: numbers separated by commas, one sample per line, the label in one column.
pub fn read_csv_bytes(bytes: &[u8], name: &str, label: LabelColumn, header: bool) -> Result<Dataset, Box<Diagnostic>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Diagnostic::general(
            Code::NotUtf8,
            format!("`{name}` is not UTF-8 text (bad byte at offset {})", e.valid_up_to()),
        )
        .in_file(name)
        .with_hint("save the CSV file as UTF-8")
    })?;
    let mut width = None;
    let mut values: Vec<f32> = Vec::new();
    let mut labels = Vec::new();
    for (line_index, line) in text.lines().enumerate() {
        let row = line_index + 1;
        if (header && line_index == 0) || line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        match width {
            None => width = Some(cells.len()),
            Some(w) if w != cells.len() => {
                return Err(Diagnostic::general(
                    Code::BadData,
                    format!(
                        "`{name}`, row {row}: {} columns, but the rows before have {w}",
                        cells.len()
                    ),
                )
                .with_hint("every row needs the same number of columns")
                .into());
            }
            _ => {}
        }
        let label_at = match label {
            LabelColumn::First => 0,
            LabelColumn::Last => cells.len() - 1,
            LabelColumn::Index(i) => i,
        };
        if label_at >= cells.len() || cells.len() < 2 {
            return Err(Diagnostic::general(
                Code::BadData,
                format!(
                    "`{name}`, row {row}: no column {label_at} for the label ({} columns)",
                    cells.len()
                ),
            )
            .with_hint("set `label first`, `label last` or a column number that exists")
            .into());
        }
        for (column, cell) in cells.iter().enumerate() {
            let parsed: f64 = cell.parse().map_err(|_| {
                Diagnostic::general(
                    Code::BadData,
                    format!("`{name}`, row {row}, column {}: `{cell}` is not a number", column + 1),
                )
                .with_hint(if row == 1 {
                    "if the first row is a header, add `header` to the data statement".to_string()
                } else {
                    "every cell must be a number".to_string()
                })
            })?;
            if !parsed.is_finite() {
                return Err(Diagnostic::general(
                    Code::BadData,
                    format!("`{name}`, row {row}, column {}: `{cell}` is not finite", column + 1),
                )
                .with_hint("replace missing or infinite values with numbers")
                .into());
            }
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

/// Parses a CSV of numbers only (no label column), for `netc predict`.
pub fn parse_csv_matrix(text: &str, name: &str) -> Result<Array2<f32>, Box<Diagnostic>> {
    let mut width = None;
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if *width.get_or_insert(cells.len()) != cells.len() {
            return Err(Diagnostic::general(
                Code::BadData,
                format!(
                    "`{name}`, row {}: {} columns, but the rows before have {}",
                    i + 1,
                    cells.len(),
                    width.unwrap_or(0)
                ),
            )
            .with_hint("every row needs the same number of columns")
            .into());
        }
        for (j, cell) in cells.iter().enumerate() {
            let v: f32 = cell.parse().ok().filter(|v: &f32| v.is_finite()).ok_or_else(|| {
                Diagnostic::general(
                    Code::BadData,
                    format!("`{name}`, row {}, column {}: `{cell}` is not a number", i + 1, j + 1),
                )
                .with_hint("every cell must be a finite number")
            })?;
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
    }
}
