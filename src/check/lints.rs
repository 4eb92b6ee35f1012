//! The lecture's advice as warnings, one block per code.

use super::{PLAIN_DEPTH_LIMIT, SATURATING_DEPTH_LIMIT};
use crate::diag::{Code, Diagnostic};
use crate::ir::{Activation, Handle, Layer, LayerKind, Program, Regularization, Spans};

/// The lecture's warnings (W0001-W0005) and E0021 (early stopping without validation data).
pub(super) fn lint(program: &Program, spans: &Spans, out: &mut Vec<Diagnostic>) {
    let layers: Vec<(Handle<Layer>, &Layer)> = program.model.layers.iter().collect();
    deep_saturating_stack(program, spans, &layers, out);
    hidden_softmax(spans, &layers, out);
    dropout_before_output(spans, &layers, out);
    no_validation(program, spans, &layers, out);
    regularization_extremes(program, spans, &layers, out);
    deep_plain_stack(program, spans, &layers, out);
    dropout_before_batchnorm(program, spans, &layers, out);
    bias_before_batchnorm(program, spans, &layers, out);
}

/// W0007: a deep stack of weighted layers without residual connections: the lecture's
/// opening figure (a 56-layer network worse than a 20-layer one on its own training data; He
/// et al.'s plain networks had batchnorm, so it does not prevent this).
fn deep_plain_stack(program: &Program, spans: &Spans, layers: &[(Handle<Layer>, &Layer)], out: &mut Vec<Diagnostic>) {
    let weighted: Vec<Handle<Layer>> = layers
        .iter()
        .filter(|(_, l)| l.has_weights())
        .map(|(h, _)| *h)
        .collect();
    let skips = layers.iter().any(|(_, l)| {
        matches!(
            l.kind,
            LayerKind::Residual { .. } | LayerKind::Add { .. } | LayerKind::Concat
        )
    });
    if weighted.len() <= PLAIN_DEPTH_LIMIT || skips {
        return;
    }
    let first = spans.layer(weighted[0]).statement;
    out.push(
        Diagnostic::warning(
            Code::DeepPlainStack,
            first,
            format!(
                "{} layers with weights and no residual connection: deeper plain networks train worse",
                weighted.len()
            ),
        )
        .with_label("the first of them")
        .with_note(format!(
            "a plain stack deeper than about {PLAIN_DEPTH_LIMIT} layers is often worse than a shallower one on its own training data, batchnorm or not (He et al.'s 56- against 20-layer networks): an optimization problem, not overfitting; model `{}` has {}",
            program.model.name,
            weighted.len()
        ))
        .with_hint("wrap pairs of layers in `residual { ... }` blocks, so each pair learns a change to its input"),
    );
}

/// Each batchnorm layer with the layer it reads (batchnorms reading the input are skipped).
fn batchnorms<'a>(
    layers: &'a [(Handle<Layer>, &'a Layer)],
) -> impl Iterator<Item = (Handle<Layer>, &'a Layer, Handle<Layer>)> + 'a {
    layers
        .iter()
        .filter_map(|&(h, layer)| match (&layer.kind, layer.inputs.first()) {
            (LayerKind::BatchNorm { .. }, Some(crate::ir::Source::Layer(from))) => Some((h, layer, *from)),
            _ => None,
        })
}

/// W0008: dropout right before batch normalization.
fn dropout_before_batchnorm(
    program: &Program,
    spans: &Spans,
    layers: &[(Handle<Layer>, &Layer)],
    out: &mut Vec<Diagnostic>,
) {
    for (h, layer, from) in batchnorms(layers) {
        let before = &program.model.layers[from];
        if let LayerKind::Dropout { rate, .. } = before.kind
            && rate > 0.0
        {
            out.push(
                Diagnostic::warning(Code::DropoutBeforeBatchnorm, spans.layer(from).statement, format!("dropout `{}` right before batchnorm `{}`", before.name, layer.name))
                    .with_label("drops what batchnorm normalizes")
                    .with_secondary(spans.layer(h).statement, "batchnorm learns its running variance from dropped activations")
                    .with_note("while training, batchnorm sees the variance of dropped activations; at test time dropout is off and the variance differs, so the normalization is off too (the 'variance shift')")
                    .with_hint("put the dropout after the last batchnorm (before the dense layers), or remove it: batchnorm regularizes by itself"),
            );
        }
    }
}

/// W0009: a convolution's bias that the batch normalization right after it cancels.
fn bias_before_batchnorm(
    program: &Program,
    spans: &Spans,
    layers: &[(Handle<Layer>, &Layer)],
    out: &mut Vec<Diagnostic>,
) {
    for (h, layer, from) in batchnorms(layers) {
        let conv = &program.model.layers[from];
        let readers = layers
            .iter()
            .filter(|(_, l)| l.inputs.contains(&crate::ir::Source::Layer(from)))
            .count();
        if let LayerKind::Conv {
            bias: Some(_),
            activation: Activation::Linear,
            ..
        } = conv.kind
            && readers == 1
        {
            out.push(
                Diagnostic::warning(
                    Code::BiasBeforeBatchnorm,
                    spans.layer(from).statement,
                    format!(
                        "the bias of `{}` has no effect: batchnorm `{}` subtracts each channel's mean",
                        conv.name, layer.name
                    ),
                )
                .with_label("a bias per filter")
                .with_secondary(spans.layer(h).statement, "the mean, bias included, is subtracted here")
                .with_note("batchnorm's learned shift does the bias's job; the bias only costs parameters and time")
                .with_hint(format!("write `no_bias` on `{}`", conv.name)),
            );
        }
    }
}

/// W0001: deep stacks of saturating activations.
fn deep_saturating_stack(
    program: &Program,
    spans: &Spans,
    layers: &[(Handle<Layer>, &Layer)],
    out: &mut Vec<Diagnostic>,
) {
    let model = &program.model;
    let last = layers.len().saturating_sub(1);
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
}

/// W0005: softmax on a hidden layer.
fn hidden_softmax(spans: &Spans, layers: &[(Handle<Layer>, &Layer)], out: &mut Vec<Diagnostic>) {
    // The output layer: the last layer with weights.
    let output = layers
        .iter()
        .rposition(|(_, l)| !matches!(l.kind, LayerKind::Dropout { .. }))
        .unwrap_or(layers.len().saturating_sub(1));
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
}

/// W0002: dropout right before the output layer.
fn dropout_before_output(spans: &Spans, layers: &[(Handle<Layer>, &Layer)], out: &mut Vec<Diagnostic>) {
    let last = layers.len().saturating_sub(1);
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
}

/// W0003: dropout or regularization that needs validation data to be judged; E0021: early
/// stopping with nothing to watch.
fn no_validation(program: &Program, spans: &Spans, layers: &[(Handle<Layer>, &Layer)], out: &mut Vec<Diagnostic>) {
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
}

/// W0004: regularization with no effect, or strong enough to wipe out the weights.
fn regularization_extremes(
    program: &Program,
    spans: &Spans,
    layers: &[(Handle<Layer>, &Layer)],
    out: &mut Vec<Diagnostic>,
) {
    let lr = program.train.optimizer.lr;
    // Each entry: the strengths, their spans, and the strengths a zero would switch off.
    let global = program.train.regularization;
    let mut regs: Vec<(Regularization, crate::ir::SlotSpans, Regularization)> = Vec::new();
    regs.push((global, spans.setting("regularize"), Regularization::default()));
    for (h, layer) in layers {
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
