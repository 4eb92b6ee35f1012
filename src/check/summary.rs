//! `netc check --summary`: a table of layers, output widths and parameter counts.

use super::Checked;
use super::memory::{human_bytes, memory_estimate, total_parameters};
use crate::diag::shown::name_cell;
use crate::ir::{Source, describe_sample};

/// Longest layer name shown in the table, in characters.
const NAME_CHARS: usize = 40;

/// The `--summary` table: each layer with what it computes, its output shape per sample
/// (`16x14x14`), its parameter count and the memory of one training batch of its outputs, and
/// the totals.
pub fn summary(checked: &Checked) -> String {
    let program = checked.program();
    let shapes = checked.shapes();
    let model = &program.model;
    let batch = program.train.batch as u128;
    let input: Vec<String> = model.input.iter().map(|d| d.to_string()).collect();
    let mut rows: Vec<[String; 5]> = vec![[
        "input".to_string(),
        "input".to_string(),
        input.join("x"),
        "0".to_string(),
        human_bytes(model.input_width() as u128 * batch * 4),
    ]];
    for (h, layer) in model.layers.iter() {
        let shape = checked.layer(h);
        let params = shape.parameter_count();
        let mut kind = layer.describe();
        let reads: Vec<&str> = layer
            .inputs
            .iter()
            .skip(1)
            .map(|s| match s {
                Source::Input => "input",
                Source::Layer(from) => model.layers[*from].name.as_str(),
            })
            .collect();
        if !reads.is_empty() {
            kind.push_str(&format!(" (+ {})", reads.join(", ")));
        }
        rows.push([
            name_cell(&layer.name, NAME_CHARS),
            kind,
            describe_sample(shape.output),
            params.to_string(),
            human_bytes(shape.output.cols() as u128 * batch * 4),
        ]);
    }
    let header = ["layer", "kind", "output", "params", "memory"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        )
    };
    let rule = format!("{}\n", "-".repeat(widths.iter().sum::<usize>() + 8));
    let mut out = format!(
        "model {} ({} loss)\n",
        name_cell(&model.name, NAME_CHARS),
        model.loss.name()
    );
    out.push_str(&line(header));
    out.push_str(&rule);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    out.push_str(&rule);
    out.push_str(&format!(
        "total parameters: {}\nparameter memory: {} (fp32); training needs about {} (memory: one batch of {batch} of each layer's outputs)\n",
        total_parameters(shapes),
        human_bytes(total_parameters(shapes) * 4),
        human_bytes(memory_estimate(program, shapes))
    ));
    out
}
