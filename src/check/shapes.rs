//! Shape inference (once per layer) and the errors of shapes that do not exist: a window that
//! does not fit (E0027), inputs that must agree and do not (E0028), an image layer reading flat
//! values (E0029). Each error shows the arithmetic or both shapes, and the fix.

use super::LayerShapes;
use crate::diag::{Code, Diagnostic};
use crate::ir::{
    Handle, Layer, LayerKind, Program, Shape, ShapeError, Source, Spans, describe_sample, image, projection_stride,
};

/// A layer whose shape could not be inferred, and why.
pub(super) struct Failure {
    /// The layer.
    pub layer: Handle<Layer>,
    /// Why.
    pub error: ShapeError,
    /// Its inputs' shapes.
    pub inputs: Vec<Shape>,
}

/// Every layer's input and output shapes and parameter layout, walking the layers in order
/// (each reads earlier layers only), and the layers whose shapes do not exist. A failed layer
/// passes its first input's shape on, and the layers after it that read it report nothing (one
/// mistake, one error).
pub(super) fn infer(program: &Program) -> (Vec<LayerShapes>, Vec<Failure>) {
    let model = &program.model;
    let mut shapes: Vec<LayerShapes> = Vec::with_capacity(model.layers.len());
    let mut failed: Vec<bool> = Vec::with_capacity(model.layers.len());
    let mut failures = Vec::new();
    for (h, layer) in model.layers.iter() {
        let inputs: Vec<Shape> = layer
            .inputs
            .iter()
            .map(|s| match s {
                Source::Layer(from) => shapes[from.index()].output,
                Source::Input => model.input_shape(),
            })
            .collect();
        let poisoned = layer
            .inputs
            .iter()
            .any(|s| matches!(s, Source::Layer(from) if failed[from.index()]));
        let result = if poisoned {
            None
        } else {
            match layer.output_shape(&inputs) {
                Ok(output) => Some(output),
                Err(error) => {
                    failures.push(Failure {
                        layer: h,
                        error,
                        inputs: inputs.clone(),
                    });
                    None
                }
            }
        };
        failed.push(result.is_none());
        shapes.push(match result {
            Some(output) => LayerShapes {
                input: inputs[0],
                output,
                params: layer.parameters(&inputs),
                inputs,
            },
            None => LayerShapes {
                input: inputs[0],
                output: inputs[0],
                params: Vec::new(),
                inputs,
            },
        });
    }
    (shapes, failures)
}

/// The name of what a layer reads, for messages: `the input` or `` `c1` ``.
fn source_name(program: &Program, source: Source) -> String {
    match source {
        Source::Input => "the input".to_string(),
        Source::Layer(h) => format!("`{}`", program.model.layers[h].name),
    }
}

/// The diagnostics of the layers whose shapes do not exist.
pub(super) fn report(program: &Program, spans: &Spans, failures: &[Failure], out: &mut Vec<Diagnostic>) {
    for failure in failures {
        let h = failure.layer;
        let layer = &program.model.layers[h];
        let s = spans.layer(h);
        let kind = layer.kind_name();
        let reads = source_name(program, layer.inputs[0]);
        out.push(match &failure.error {
            ShapeError::NeedsImage { input } => {
                let hint = if layer.inputs[0] == Source::Input {
                    let n = input.cols();
                    let side = (1..=n).find(|s| s * s >= n).unwrap_or(1);
                    match program.train.data.source {
                        crate::ir::DataSource::Named(data) => {
                            let [c, h, w] = data.sample_shape();
                            format!("declare the input as an image, channels first: `input {c} {h} {w}`")
                        }
                        _ if side * side == n => {
                            format!("declare the input as an image, channels first: `input 1 {side} {side}`")
                        }
                        _ => format!("declare the input as an image, channels first: `input C H W` with C x H x W = {n}"),
                    }
                } else {
                    format!("put `{kind}` before the layers that flatten the image (dense, maxout, global_avgpool, flatten)")
                };
                Diagnostic::error(
                    Code::NeedsImage,
                    s.statement,
                    format!(
                        "`{kind}` needs an image (channels x height x width), but {reads} gives {} values per sample",
                        input.cols()
                    ),
                )
                .with_label("reads a flat tensor")
                .with_hint(hint)
            }
            ShapeError::Empty { axis, arithmetic } => {
                let (slot, window_word) = match layer.kind {
                    LayerKind::Conv { .. } => ("kernel", "kernel"),
                    _ => ("window", "window"),
                };
                let dimension = if *axis == 0 { "height" } else { "width" };
                let input = failure.inputs[0];
                let size = arithmetic.size;
                let k = arithmetic.kernel;
                let mut hint = format!(
                    "use `pad same` (the output keeps ceil({size} / {}) = {}), or a {window_word} of at most {size}",
                    arithmetic.stride,
                    size.div_ceil(arithmetic.stride.max(1))
                );
                if matches!(layer.kind, LayerKind::Pool { .. }) {
                    hint = format!("use a {window_word} of at most {size}, `pad same`, or remove this pooling");
                }
                Diagnostic::error(
                    Code::EmptyWindow,
                    s.get(slot),
                    format!(
                        "`{}`'s {k}x{k} {window_word} does not fit its {} input: the output {dimension} would be {}",
                        layer.name,
                        describe_sample(input),
                        arithmetic.signed_output()
                    ),
                )
                .with_label(format!("{dimension}: {}", arithmetic.arithmetic()))
                .with_note(format!(
                    "output = (input - {window_word} + padding before and after) / stride + 1, rounded down; {reads} is {}",
                    describe_sample(input)
                ))
                .with_hint(hint)
            }
            ShapeError::Mismatch { shapes } => {
                let listing: Vec<String> = layer
                    .inputs
                    .iter()
                    .zip(shapes)
                    .map(|(&src, &shape)| format!("{} is {}", source_name(program, src), describe_sample(shape)))
                    .collect();
                let (body, from) = (shapes[0], shapes[shapes.len() - 1]);
                let project = match (image(from), image(body)) {
                    (Some((_, h, w)), Some((_, oh, ow))) => projection_stride((h, w), (oh, ow)).map(|stride| {
                        format!(
                            "a 1x1 convolution with stride {stride} and batchnorm, which maps {} to {}",
                            describe_sample(from),
                            describe_sample(body)
                        )
                    }),
                    (None, None) => Some(format!(
                        "a learned {} x {} matrix",
                        from.cols(),
                        body.cols()
                    )),
                    _ => None,
                };
                match layer.kind {
                    LayerKind::Residual { .. } => {
                        let d = Diagnostic::error(
                            Code::ShapeMismatch,
                            s.get("keyword"),
                            format!(
                                "residual block `{}` adds its input to its output, but they differ: {}",
                                layer.name,
                                listing.join(", ")
                            ),
                        )
                        .with_label(format!("{} + {}", describe_sample(body), describe_sample(from)))
                        .with_note("an identity shortcut needs the body to keep its input's shape");
                        match project {
                            Some(p) => d.with_suggestion(
                                s.get("keyword"),
                                "residual shortcut project",
                                format!("write `residual shortcut project`: the shortcut becomes {p}"),
                            ),
                            None => d.with_hint("keep the input's shape in the block (`pad same`, stride 1, as many filters as input channels)"),
                        }
                    }
                    _ => Diagnostic::error(
                        Code::ShapeMismatch,
                        s.statement,
                        format!("`add` sums tensors of one shape, but {}", listing.join(", ")),
                    )
                    .with_label("shapes differ")
                    .with_secondary(s.get("from"), "the layer added")
                    .with_hint(match project {
                        Some(p) => format!(
                            "put the layers between them in a `residual shortcut project {{ ... }}` block (its shortcut is {p}), or give both the same shape"
                        ),
                        None => "give both the same shape (`pad same`, the same stride and number of filters)".to_string(),
                    }),
                }
            }
            ShapeError::NoProjection { from, to } => Diagnostic::error(
                Code::ShapeMismatch,
                s.get("keyword"),
                format!(
                    "no 1x1 projection maps block `{}`'s input {} to its output {}",
                    layer.name,
                    describe_sample(*from),
                    describe_sample(*to)
                ),
            )
            .with_label("shortcut project")
            .with_note("the projection is a 1x1 convolution with a whole stride s: it turns H x W into ceil(H / s) x ceil(W / s)")
            .with_hint("make the body's output ceil(H / s) high and wide for one stride s (`pad same` and `stride s` on one conv)"),
            ShapeError::TooLarge { dims } => Diagnostic::error(
                Code::TooLarge,
                s.statement,
                format!(
                    "`{}` would give {} values per sample, more than 2^40",
                    layer.name,
                    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x ")
                ),
            )
            .with_label("too large")
            .with_hint("use fewer filters or units, or pool the image smaller first"),
            ShapeError::Concat { shapes } => {
                let listing: Vec<String> = layer
                    .inputs
                    .iter()
                    .zip(shapes)
                    .map(|(&src, &shape)| format!("{} is {}", source_name(program, src), describe_sample(shape)))
                    .collect();
                Diagnostic::error(
                    Code::ShapeMismatch,
                    s.statement,
                    format!(
                        "`concat` joins tensors along channels, so their heights and widths must agree, but {}",
                        listing.join(", ")
                    ),
                )
                .with_label("sizes differ")
                .with_secondary(s.get("from"), "joined here")
                .with_hint("give both branches the same height and width (the same strides and pooling, `pad same`), or flatten both first")
            }
        });
    }
}
