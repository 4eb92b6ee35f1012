//! Memory: what training needs against what the machine has (E0017).

use super::{LayerShapes, Limits};
use crate::diag::{Code, Diagnostic};
use crate::ir::{DataSource, Handle, Layer, LayerKind, Program, Spans};

/// Bytes training needs: parameters with their gradients and optimizer state, and the
/// activations, masks and gradients of one batch.
pub fn memory_estimate(program: &Program, shapes: &[LayerShapes]) -> u128 {
    training_bytes(program, shapes, program.train.batch as u128)
}

/// Copies of every parameter alive at the peak of training, besides the optimizer's state:
/// the values and their gradients in the engine, and the snapshot a checkpoint writes (values
/// and state again, streamed to the file from there).
const PARAMETER_COPIES: u128 = 3;

/// Copies of one batch's activations alive at the peak: each layer's output, its
/// pre-activation, their gradients and the masks, in the engine's buffers for the training
/// batch and for evaluation; 6 is what the JIT (the larger of the two backends) measures.
const ACTIVATION_COPIES: u128 = 6;

/// Bytes of the process itself: netc's code, the JIT's kernels, the threads' stacks and the
/// allocator's slack (a tiny model's peak on either backend stays below it).
const PROCESS_BYTES: u128 = 32 << 20;

/// Bytes training needs with batches of `batch` rows (the spec's, or a flag's): the peak
/// resident memory as measured on both backends (see `docs/results.md`), plus a named data set
/// (the size of a data file is known only when it is read).
pub fn training_bytes(program: &Program, shapes: &[LayerShapes], batch: u128) -> u128 {
    let model = &program.model;
    let state = program.train.optimizer.kind.state_slots() as u128;
    let best = u128::from(program.train.early_stop.is_some_and(|e| e.restore_best));
    let parameters = total_parameters(shapes);
    let mut activations: u128 = model.input_width() as u128;
    for (layer, shape) in model.layers.values().zip(shapes) {
        activations += match layer.kind {
            LayerKind::Maxout { .. } => layer.learned_units() as u128,
            _ => shape.output.cols() as u128,
        };
    }
    let data = match program.train.data.source {
        DataSource::Named(n) => n.samples() as u128 * (n.features() as u128 + 1),
        DataSource::Files(_) => 0,
    };
    let copies = PARAMETER_COPIES + 2 * state + best;
    let values =
        parameters.saturating_mul(copies) + activations.saturating_mul(batch).saturating_mul(ACTIVATION_COPIES);
    PROCESS_BYTES + 4 * (values + data)
}

/// E0017: training would not fit in memory.
pub(super) fn check_memory(
    program: &Program,
    spans: &Spans,
    shapes: &[LayerShapes],
    limits: &Limits,
    out: &mut Vec<Diagnostic>,
) {
    let need = memory_estimate(program, shapes);
    if need <= limits.memory_bytes as u128 {
        return;
    }
    let model = &program.model;
    let mut biggest: Option<(Handle<Layer>, u128)> = None;
    for ((h, _), shape) in model.layers.iter().zip(shapes) {
        let p = shape.parameter_count();
        if biggest.is_none_or(|(_, b)| p > b) {
            biggest = Some((h, p));
        }
    }
    let mut d = Diagnostic::error(
        Code::TooLarge,
        spans.model,
        format!(
            "training model `{}` needs about {} of memory, more than the {} available",
            model.name,
            human_bytes(need),
            human_bytes(limits.memory_bytes as u128)
        ),
    )
    .with_label("too large")
    .with_note(format!(
        "estimate: {} parameters, each with a gradient, {} optimizer value(s) and a checkpoint's copy, plus activations for a batch of {} and the data",
        total_parameters(shapes),
        program.train.optimizer.kind.state_slots(),
        program.train.batch
    ))
    .with_hint("make the largest layers narrower, or use fewer of them");
    if let Some((h, p)) = biggest {
        d = d.with_secondary(spans.layer(h).statement, format!("the largest layer: {p} parameters"));
    }
    out.push(d);
}

/// Trainable scalars in the model.
pub fn total_parameters(shapes: &[LayerShapes]) -> u128 {
    shapes.iter().map(LayerShapes::parameter_count).sum()
}

/// "1.5 GiB".
pub fn human_bytes(bytes: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}
