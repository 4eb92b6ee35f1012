//! The model's ends: the output layer against the loss, the widths against a named data set, and
//! the images `augment` transforms.

use super::LayerShapes;
use crate::diag::{Code, Diagnostic};
use crate::ir::{Activation, DataSource, Layer, LayerKind, Loss, Program, Spans};

/// The output layer against the loss: not a dropout, the activation the loss needs, more than
/// one class for softmax.
pub(super) fn check_output(program: &Program, spans: &Spans, shapes: &[LayerShapes], out: &mut Vec<Diagnostic>) {
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
    let output = shapes[last_handle.index()].output;
    if let Some((c, h, w)) = crate::ir::image(output) {
        out.push(
            Diagnostic::error(
                Code::ImageOutput,
                last_span.statement,
                format!(
                    "the output layer `{}` gives a {c}x{h}x{w} image per sample, but a loss compares one value per class",
                    last.name
                ),
            )
            .with_label("an image")
            .with_secondary(loss_span, "the loss reads this layer's output")
            .with_hint(format!(
                "end with `global_avgpool` (or `flatten`) and a dense output layer, e.g. `dense 10 {}`",
                match loss {
                    Loss::BinaryCrossEntropy => "sigmoid",
                    Loss::Mse => "linear",
                    Loss::CrossEntropy => "softmax",
                }
            )),
        );
        return;
    }
    let output_activation = last.activation();
    let width = output.cols();
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

/// A named data set's features and classes against the input and output widths.
pub(super) fn check_data_shape(program: &Program, spans: &Spans, shapes: &[LayerShapes], out: &mut Vec<Diagnostic>) {
    let DataSource::Named(data) = program.train.data.source else {
        return;
    };
    let model = &program.model;
    let data_span = spans.setting("data").get("source");
    let sample = data.sample_shape();
    let flat = [data.features()];
    if model.input != flat && model.input != sample {
        let image: Vec<String> = sample.iter().map(|d| d.to_string()).collect();
        let written: Vec<String> = model.input.iter().map(|d| d.to_string()).collect();
        out.push(
            Diagnostic::error(
                Code::DataShape,
                spans.input.statement,
                format!(
                    "the {} data set's samples are {} ({} values), but the input is {}",
                    data.name(),
                    image.join("x"),
                    data.features(),
                    written.join("x"),
                ),
            )
            .with_label(format!(
                "expected `input {}` or `input {}`",
                image.join(" "),
                data.features()
            ))
            .with_secondary(data_span, "the data set")
            .with_hint(format!(
                "write `input {}` for convolutions (channels, height, width) or `input {}` for dense layers",
                image.join(" "),
                data.features()
            )),
        );
    }
    let Some((h, last)) = model.layers.iter().next_back() else {
        return;
    };
    if crate::ir::image(shapes[h.index()].output).is_some() {
        // E0030 says what is wrong with an image output.
        return;
    }
    let width = shapes[h.index()].output.cols();
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

/// `augment`: it moves and mirrors images, so the input must be one, and a shift must leave part
/// of the image in its frame.
pub(super) fn check_augment(program: &Program, spans: &Spans, out: &mut Vec<Diagnostic>) {
    let Some(augment) = program.train.augment else {
        return;
    };
    let s = spans.setting("augment");
    let input = &program.model.input;
    let [_, h, w] = input[..] else {
        let shown: Vec<String> = input.iter().map(|d| d.to_string()).collect();
        let mut d = Diagnostic::error(
            Code::NeedsImage,
            s.statement,
            format!(
                "`augment` moves and mirrors images, but the input gives {} values per sample",
                shown.join("x")
            ),
        )
        .with_label("needs an image input")
        .with_secondary(spans.input.statement, "a flat input");
        d = match program.train.data.source {
            DataSource::Named(data) => {
                let [c, h, w] = data.sample_shape();
                d.with_hint(format!(
                    "declare the input as an image, channels first: `input {c} {h} {w}`, or remove `augment`"
                ))
            }
            DataSource::Files(_) => {
                d.with_hint("declare the input as an image, channels first (e.g. `input 1 28 28`), or remove `augment`")
            }
        };
        out.push(d);
        return;
    };
    if augment.shift == 0 && !augment.flip {
        out.push(
            Diagnostic::error(Code::MissingValue, s.statement, "`augment` names no transformation")
                .with_label("changes nothing")
                .with_hint("write `augment shift 2` (random translations of up to 2 pixels), `augment flip` (random left-right mirroring), or both"),
        );
    }
    let side = h.min(w);
    if augment.shift >= side {
        out.push(
            Diagnostic::error(
                Code::OutOfRange,
                s.get("shift"),
                format!(
                    "a shift of {} pixels can move the {h}x{w} image entirely out of its frame",
                    augment.shift
                ),
            )
            .with_label(format!("must be below {side}"))
            .with_hint(format!(
                "shift by a few pixels, about a tenth of the side: `augment shift {}`",
                (side / 10).max(1)
            )),
        );
    }
}
