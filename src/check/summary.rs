//! `netc check --summary`: a table of layers, output widths and parameter counts.

use super::Checked;
use super::memory::{human_bytes, memory_estimate, total_parameters};
use crate::diag::shown::name_cell;
use crate::ir::LayerKind;

/// Longest layer name shown in the table, in characters.
const NAME_CHARS: usize = 40;

/// The `--summary` table: layers with output width and parameter count, and the totals.
pub fn summary(checked: &Checked) -> String {
    let program = checked.program();
    let shapes = checked.shapes();
    let model = &program.model;
    let mut rows: Vec<[String; 4]> = vec![[
        "input".to_string(),
        "input".to_string(),
        model.input_width.to_string(),
        "0".to_string(),
    ]];
    for (layer, shape) in model.layers.values().zip(shapes) {
        let params = shape.parameter_count();
        let width = shape.output.cols();
        let kind = match &layer.kind {
            LayerKind::Dense { activation, .. } => format!("dense {}", activation.name()),
            LayerKind::Maxout { pieces, fixed_zero, .. } => {
                format!("maxout x{pieces}{}", if *fixed_zero { " (one fixed at 0)" } else { "" })
            }
            LayerKind::Dropout { rate, .. } => format!("dropout {rate}"),
        };
        rows.push([
            name_cell(&layer.name, NAME_CHARS),
            kind,
            width.to_string(),
            params.to_string(),
        ]);
    }
    let header = ["layer", "kind", "output", "params"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
    };
    let rule = format!("{}\n", "-".repeat(widths.iter().sum::<usize>() + 6));
    let mut out = format!(
        "model {} ({} loss)\n",
        name_cell(&model.name, NAME_CHARS),
        model.loss.name()
    );
    out.push_str(&line(header));
    out.push_str(&rule);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
    }
    out.push_str(&rule);
    out.push_str(&format!(
        "total parameters: {}\nparameter memory: {} (fp32); training needs about {}\n",
        total_parameters(shapes),
        human_bytes(total_parameters(shapes) * 4),
        human_bytes(memory_estimate(program, shapes))
    ));
    out
}
