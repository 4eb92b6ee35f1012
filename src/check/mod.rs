//! Stage 3: the checker. The only place that decides whether a lowered program may be trained.
//!
//! Lowering has already type- and range-checked every single value; the checker looks at the
//! program as a whole: shapes across layers, the loss against the output, the data against the
//! input and output widths, memory, and the lecture's advice as warnings.

use crate::diag::{Code, Diagnostic};
use crate::ir::{Activation, DataSource, Handle, Layer, LayerKind, Loss, Program, Regularization, Spans};

/// Machine limits the checker measures against (measured by `run::limits`: the checker reads
/// no files and no environment).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of memory training may use.
    pub memory_bytes: u64,
}

/// Consecutive sigmoid/tanh layers above which W0001 warns.
pub const SATURATING_DEPTH_LIMIT: usize = 4;

/// Checks a lowered program; returns errors and warnings in source order.
pub fn check(program: &Program, spans: &Spans, limits: &Limits) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let model = &program.model;
    let layers: Vec<(Handle<Layer>, &Layer)> = model.layers.iter().collect();

    for &(h, layer) in &layers {
        if let LayerKind::Maxout {
            pieces: 1,
            fixed_zero: true,
            ..
        } = layer.kind
        {
            let s = spans.layer(h);
            out.push(
                Diagnostic::error(
                    Code::FixedZeroOnePiece,
                    s.get("fixed_zero"),
                    format!("maxout `{}` fixes its only piece at zero", layer.name),
                )
                .with_label("this would leave no piece with weights")
                .with_secondary(s.get("pieces"), "one piece per group")
                .with_note(
                    "`fixed_zero` makes the last piece of each group the constant 0; the other pieces are learned",
                )
                .with_hint("use `pieces 2 fixed_zero` (exactly relu) or more pieces"),
            );
        }
    }
    // Shapes: maxout grouping.
    for &(h, layer) in &layers {
        if let LayerKind::Maxout { units, pieces, .. } = layer.kind
            && units % pieces != 0
        {
            let s = spans.layer(h);
            let lower = (units / pieces).max(1) * pieces;
            let upper = (units / pieces + 1) * pieces;
            out.push(
                Diagnostic::error(
                    Code::MaxoutDivisibility,
                    s.get("units"),
                    format!("maxout `{}` has {units} units, which do not split into groups of {pieces}", layer.name),
                )
                .with_label(format!("{units} is not a multiple of {pieces}"))
                .with_secondary(s.get("pieces"), "pieces per group")
                .with_note("maxout outputs the largest of each group of `pieces` linear units, so the units must divide evenly")
                .with_hint(format!("use {lower} or {upper} units, or a number of pieces that divides {units}")),
            );
        }
    }

    // A model needs something to learn.
    let weighted = layers
        .iter()
        .filter(|(_, l)| !matches!(l.kind, LayerKind::Dropout { .. }))
        .count();
    if weighted == 0 {
        out.push(
            Diagnostic::error(
                Code::NoLayers,
                spans.model,
                format!("model `{}` has no dense or maxout layer", model.name),
            )
            .with_label("nothing to train")
            .with_hint("add an output layer before the loss, e.g. `dense 10 softmax`"),
        );
    }

    if weighted > 0 {
        check_output(program, spans, &mut out);
    }
    check_data_shape(program, spans, &mut out);
    check_memory(program, spans, limits, &mut out);
    lint(program, spans, &mut out);

    out.sort_by_key(|d| (d.span.map(|s| (s.file, s.start)), d.severity));
    out
}

fn check_output(program: &Program, spans: &Spans, out: &mut Vec<Diagnostic>) {
    let model = &program.model;
    let loss = model.loss;
    let loss_span = spans.loss.get("kind");
    let Some((last_handle, last)) = model.layers.iter().next_back() else {
        return;
    };
    let last_span = spans.layer(last_handle);
    if let LayerKind::Dropout { .. } = last.kind {
        out.push(
            Diagnostic::error(
                Code::LossMismatch,
                last_span.statement,
                "dropout cannot be the output layer",
            )
            .with_label("last layer before the loss")
            .with_secondary(loss_span, "the loss reads this layer's output")
            .with_hint("end the model with a dense layer, e.g. `dense 10 softmax`, and put dropout before it"),
        );
        return;
    }
    let output_activation = last.activation();
    let width = last.output_width(0);
    let (required, name) = match loss {
        Loss::CrossEntropy => (Activation::Softmax, "softmax"),
        Loss::BinaryCrossEntropy => (Activation::Sigmoid, "sigmoid"),
        Loss::Mse => {
            return;
        }
    };
    if output_activation != Some(required) {
        let found = match output_activation {
            Some(a) => format!("`{}`", a.name()),
            None => format!("a {} layer", last.kind_name()),
        };
        let fix = match last.kind {
            LayerKind::Dense { width, .. } => {
                format!("write `dense {}{width} {name}` as the output layer", label_prefix(last))
            }
            _ => format!("add `dense N {name}` after `{}` as the output layer", last.name),
        };
        out.push(
            Diagnostic::error(
                Code::LossMismatch,
                last_span.get("activation"),
                format!(
                    "`{}` needs a {name} output, but the output layer `{}` has {found}",
                    loss.name(),
                    last.name
                ),
            )
            .with_label(format!("expected {name} here"))
            .with_secondary(loss_span, "this loss")
            .with_note(match loss {
                Loss::CrossEntropy => "cross-entropy compares class probabilities, which softmax produces",
                _ => "binary cross-entropy compares independent probabilities, which sigmoid produces",
            })
            .with_hint(fix),
        );
        return;
    }
    if loss == Loss::CrossEntropy && width == 1 {
        out.push(
            Diagnostic::error(
                Code::LossMismatch,
                last_span.get("width"),
                "softmax over a single output is always 1, so cross-entropy cannot learn",
            )
            .with_label("one output")
            .with_hint("for two classes use `dense 1 sigmoid` with `loss binary_cross_entropy`, or `dense 2 softmax`"),
        );
    }
}

fn label_prefix(layer: &Layer) -> String {
    let auto = layer.name.trim_end_matches(|c: char| c.is_ascii_digit()) == layer.kind_name();
    if auto {
        String::new()
    } else {
        format!("{}: ", layer.name)
    }
}

fn check_data_shape(program: &Program, spans: &Spans, out: &mut Vec<Diagnostic>) {
    let DataSource::Named(data) = program.train.data.source else {
        return;
    };
    let model = &program.model;
    let data_span = spans.setting("data").get("source");
    if model.input_width != data.features() {
        out.push(
            Diagnostic::error(
                Code::DataShape,
                spans.input.get("width"),
                format!(
                    "the {} data set has {} features per sample, but the input is {} wide",
                    data.name(),
                    data.features(),
                    model.input_width
                ),
            )
            .with_label(format!("expected {}", data.features()))
            .with_secondary(data_span, "the data set")
            .with_hint(format!("write `input {}`", data.features())),
        );
    }
    let Some((h, last)) = model.layers.iter().next_back() else {
        return;
    };
    let mut width = model.input_width;
    for l in model.layers.values() {
        width = l.output_width(width);
    }
    let classes = data.classes();
    let fits = match model.loss {
        Loss::BinaryCrossEntropy => width == classes || (classes == 2 && width == 1),
        _ => width == classes,
    };
    if !fits && !matches!(last.kind, LayerKind::Dropout { .. }) {
        let slot = if matches!(last.kind, LayerKind::Maxout { .. }) {
            "units"
        } else {
            "width"
        };
        out.push(
            Diagnostic::error(
                Code::DataShape,
                spans.layer(h).get(slot),
                format!(
                    "the {} data set has {classes} classes, but the output layer `{}` has {width} outputs",
                    data.name(),
                    last.name
                ),
            )
            .with_label(format!("expected {classes}"))
            .with_secondary(data_span, "the data set")
            .with_hint(format!("give the output layer {classes} units")),
        );
    }
}

/// Bytes training needs: parameters with their gradients and optimizer state, and the
/// activations, masks and gradients of one batch.
pub fn memory_estimate(program: &Program) -> u128 {
    let model = &program.model;
    let state = program.train.optimizer.kind.state_slots() as u128;
    let mut width = model.input_width;
    let mut parameters: u128 = 0;
    let mut activations: u128 = width as u128;
    for layer in model.layers.values() {
        parameters += layer.parameter_count(width);
        activations += match layer.kind {
            LayerKind::Maxout { .. } => layer.learned_units() as u128,
            _ => layer.output_width(width) as u128,
        };
        width = layer.output_width(width);
    }
    let batch = program.train.batch as u128;
    4 * (parameters * (2 + state) + activations * batch * 3)
}

fn check_memory(program: &Program, spans: &Spans, limits: &Limits, out: &mut Vec<Diagnostic>) {
    let need = memory_estimate(program);
    if need <= limits.memory_bytes as u128 {
        return;
    }
    let model = &program.model;
    let mut width = model.input_width;
    let mut biggest: Option<(Handle<Layer>, u128)> = None;
    for (h, layer) in model.layers.iter() {
        let p = layer.parameter_count(width);
        if biggest.is_none_or(|(_, b)| p > b) {
            biggest = Some((h, p));
        }
        width = layer.output_width(width);
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
        "estimate: {} parameters, each with a gradient and {} optimizer value(s), plus activations for a batch of {}",
        total_parameters(program),
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
pub fn total_parameters(program: &Program) -> u128 {
    let mut width = program.model.input_width;
    let mut total = 0;
    for layer in program.model.layers.values() {
        total += layer.parameter_count(width);
        width = layer.output_width(width);
    }
    total
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

fn lint(program: &Program, spans: &Spans, out: &mut Vec<Diagnostic>) {
    let model = &program.model;
    let layers: Vec<(Handle<Layer>, &Layer)> = model.layers.iter().collect();
    let last = layers.len().saturating_sub(1);
    // The output layer: the last layer with weights.
    let output = layers
        .iter()
        .rposition(|(_, l)| !matches!(l.kind, LayerKind::Dropout { .. }))
        .unwrap_or(last);

    // W0001: deep stacks of saturating activations.
    let mut run: Vec<Handle<Layer>> = Vec::new();
    let flush = |run: &mut Vec<Handle<Layer>>, out: &mut Vec<Diagnostic>| {
        if run.len() > SATURATING_DEPTH_LIMIT {
            let first = spans.layer(run[0]);
            let end = spans.layer(*run.last().expect("run is not empty"));
            let act = model.layers[run[0]].activation().map_or("sigmoid", |a| a.name());
            out.push(
                Diagnostic::warning(
                    Code::DeepSaturatingStack,
                    first.statement,
                    format!("{} stacked {act} layers: gradients will vanish near the input", run.len()),
                )
                .with_label(if first.statement == end.statement { "repeated here" } else { "first of the stack" })
                .with_note(format!(
                    "sigmoid and tanh squash large changes into small ones; through {} layers the gradient reaching the first layers is tiny, so they barely learn while the last ones have already converged",
                    run.len()
                ))
                .with_hint("use relu (or leaky_relu, elu, maxout) for hidden layers, with `init he`"),
            );
            if first.statement != end.statement {
                let d = out.last_mut().expect("just pushed");
                d.secondary.push(crate::diag::Label {
                    span: end.statement,
                    message: "last of the stack".to_string(),
                });
            }
        }
        run.clear();
    };
    for (i, &(h, layer)) in layers.iter().enumerate() {
        match layer.kind {
            LayerKind::Dropout { .. } => {}
            LayerKind::Dense { activation, .. } if activation.saturates() && i != last => run.push(h),
            _ => flush(&mut run, out),
        }
    }
    flush(&mut run, out);

    // W0005: softmax on a hidden layer.
    for (i, &(h, layer)) in layers.iter().enumerate() {
        if i < output && layer.activation() == Some(Activation::Softmax) {
            out.push(
                Diagnostic::warning(Code::HiddenSoftmax, spans.layer(h).get("activation"), format!("softmax on hidden layer `{}`", layer.name))
                    .with_label("hidden layer")
                    .with_note("softmax makes its outputs compete to sum to 1, which throws away most of a hidden layer's information and slows learning")
                    .with_hint("use relu for hidden layers; softmax belongs on the output layer"),
            );
        }
    }

    // W0002: dropout right before the output layer.
    if last >= 1
        && let (h, LayerKind::Dropout { .. }) = (layers[last - 1].0, &layers[last - 1].1.kind)
    {
        out.push(
            Diagnostic::warning(Code::DropoutBeforeOutput, spans.layer(h).statement, "dropout right before the output layer")
                .with_label("drops the inputs of the output layer")
                .with_note("every unit the output layer sees can vanish from one step to the next, which adds noise straight to the predictions; dropout works best between hidden layers")
                .with_hint("move the dropout between hidden layers, or lower its rate"),
        );
    }

    // W0003: things that need validation data to be judged.
    let data = &program.train.data;
    if !data.validation.is_some() {
        let data_span = spans.setting("data").statement;
        let dropout = layers
            .iter()
            .find(|(_, l)| matches!(l.kind, LayerKind::Dropout { rate, .. } if rate > 0.0));
        let global = program.train.regularization;
        let regularized = layers
            .iter()
            .any(|(_, l)| l.regularization.resolve(global) != Regularization::default());
        let mut what = Vec::new();
        let mut at = None;
        if let Some((h, _)) = dropout {
            what.push("dropout");
            at = Some(spans.layer(*h).statement);
        }
        if regularized {
            what.push("regularization");
            at = at.or(Some(spans.setting("regularize").statement));
        }
        if let Some(at) = at {
            out.push(
                Diagnostic::warning(
                    Code::NoValidation,
                    at,
                    format!("{} without validation data to judge {}", what.join(" and "), if what.len() > 1 { "them" } else { "it" }),
                )
                    .with_label("added against overfitting")
                    .with_secondary(data_span, "no validation split here")
                    .with_note("dropout and regularization fight overfitting, which shows as a gap between training and validation results; without validation data that gap cannot be seen")
                    .with_hint("add a validation split to `data`, e.g. `validation 10%`"),
            );
        }
        if let Some(early) = program.train.early_stop {
            let s = spans.setting("early_stop");
            out.push(
                Diagnostic::error(
                    Code::DataSplit,
                    s.statement,
                    format!(
                        "early stopping watches {}, but there is no validation data",
                        early.metric.name()
                    ),
                )
                .with_label("nothing to watch")
                .with_secondary(data_span, "no validation split here")
                .with_hint("add a validation split to `data`, e.g. `validation 10%`"),
            );
        }
    }

    // W0004: regularization with no effect, or strong enough to wipe out the weights.
    let lr = program.train.optimizer.lr;
    // Each entry: the strengths, their spans, and the strengths a zero would switch off.
    let global = program.train.regularization;
    let mut regs: Vec<(Regularization, crate::ir::SlotSpans, Regularization)> = Vec::new();
    regs.push((global, spans.setting("regularize"), Regularization::default()));
    for (h, layer) in &layers {
        regs.push((layer.regularization.resolve(global), spans.layer(*h).clone(), global));
    }
    for (r, s, replaced) in regs {
        for (name, strength, replaced) in [("l1", r.l1, replaced.l1), ("l2", r.l2, replaced.l2)] {
            if !s.has(name) {
                continue;
            }
            if strength == 0.0 && replaced == 0.0 {
                out.push(
                    Diagnostic::warning(
                        Code::RegularizationExtreme,
                        s.get(name),
                        format!("`{name} 0` has no effect"),
                    )
                    .with_label("zero strength")
                    .with_hint(format!("remove `{name} 0`, or give it a strength such as 1e-4")),
                );
            } else if strength >= 1.0 || strength * lr >= 0.5 {
                out.push(
                    Diagnostic::warning(Code::RegularizationExtreme, s.get(name), format!("`{name} {strength}` will drive the weights to zero"))
                        .with_label("very strong")
                        .with_note(if strength * lr >= 0.5 {
                            format!(
                                "with learning rate {lr}, each step shrinks every weight by {:.0}% of its size before the data can move it",
                                (strength * lr * 100.0).min(100.0)
                            )
                        } else {
                            format!("a penalty of {strength} per unit of weight outweighs what the data loss gains from any weight, so training pushes the weights toward zero")
                        })
                        .with_hint("typical strengths are 1e-5 to 1e-3"),
                );
            }
        }
    }
}

/// The `--summary` table: layers with output width and parameter count, and the totals.
pub fn summary(program: &Program) -> String {
    let model = &program.model;
    let mut rows: Vec<[String; 4]> = vec![[
        "input".to_string(),
        "input".to_string(),
        model.input_width.to_string(),
        "0".to_string(),
    ]];
    let mut width = model.input_width;
    for layer in model.layers.values() {
        let params = layer.parameter_count(width);
        width = layer.output_width(width);
        let kind = match &layer.kind {
            LayerKind::Dense { activation, .. } => format!("dense {}", activation.name()),
            LayerKind::Maxout { pieces, fixed_zero, .. } => {
                format!("maxout x{pieces}{}", if *fixed_zero { " (one fixed at 0)" } else { "" })
            }
            LayerKind::Dropout { rate, .. } => format!("dropout {rate}"),
        };
        rows.push([layer.name.clone(), kind, width.to_string(), params.to_string()]);
    }
    let header = ["layer", "kind", "output", "params"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
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
    let mut out = format!("model {} ({} loss)\n", model.name, model.loss.name());
    out.push_str(&line(header));
    out.push_str(&rule);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
    }
    out.push_str(&rule);
    out.push_str(&format!(
        "total parameters: {}\nparameter memory: {} (fp32); training needs about {}\n",
        total_parameters(program),
        human_bytes(total_parameters(program) * 4),
        human_bytes(memory_estimate(program))
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
