//! Stage 3: the checker. The only place that decides whether a lowered program may be trained.
//!
//! Lowering has already type- and range-checked every single value; the checker looks at the
//! program as a whole: shapes across layers, the loss against the output, the data against the
//! input and output widths, memory, and the lecture's advice as warnings. A program it accepts
//! becomes a [`Checked`]: the program with every layer's inferred shapes and parameter layout,
//! the only thing later stages take (shape inference runs once, here).

mod lints;
mod memory;
mod output;
mod shapes;
mod summary;

pub use memory::{human_bytes, memory_estimate, total_parameters, training_bytes};
pub use summary::summary;

use crate::diag::{Code, Diagnostic};
#[cfg(test)]
use crate::ir::ParamKind;
use crate::ir::{Handle, Layer, LayerKind, ParamShape, Program, Shape, Spans};

/// Machine limits the checker measures against (measured by `run::limits`: the checker reads
/// no files and no environment).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of memory training may use.
    pub memory_bytes: u64,
}

/// Consecutive sigmoid/tanh layers above which W0001 warns.
pub const SATURATING_DEPTH_LIMIT: usize = 4;

/// Layers with weights above which a network without residual connections gets W0007 (the
/// residual paper's plain networks degrade from about 20 layers on).
pub const PLAIN_DEPTH_LIMIT: usize = 20;

/// What the checker knows about one layer's tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerShapes {
    /// The shape of what it reads first (the layer before it).
    pub input: Shape,
    /// The shapes of everything it reads, in [`Layer::inputs`] order.
    pub inputs: Vec<Shape>,
    /// The shape of what it produces.
    pub output: Shape,
    /// Its parameter tensors, in creation order.
    pub params: Vec<ParamShape>,
}

impl LayerShapes {
    /// Trainable scalars of the layer.
    pub fn parameter_count(&self) -> u128 {
        self.params
            .iter()
            .filter(|p| p.kind.is_trainable())
            .map(|p| p.rows as u128 * p.cols as u128)
            .sum()
    }
}

/// A program the checker accepted, with the shapes it inferred. [`check`] is its only
/// constructor, so holding one means the program has no errors: later stages rely on that
/// (an output layer exists and is not a dropout, maxout units divide into their pieces, the
/// loss matches the output).
#[derive(Debug, Clone)]
pub struct Checked {
    program: Program,
    spans: Spans,
    shapes: Vec<LayerShapes>,
}

impl Checked {
    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Its source spans.
    pub fn spans(&self) -> &Spans {
        &self.spans
    }

    /// Every layer's shapes, indexed like the model's layers.
    pub fn shapes(&self) -> &[LayerShapes] {
        &self.shapes
    }

    /// One layer's shapes.
    pub fn layer(&self, h: Handle<Layer>) -> &LayerShapes {
        &self.shapes[h.index()]
    }

    /// The output layer.
    pub fn output(&self) -> Handle<Layer> {
        self.program.model.output.expect("a checked model has an output layer")
    }

    /// The shape of the model's prediction.
    pub fn output_shape(&self) -> Shape {
        self.layer(self.output()).output
    }

    /// Trainable scalars in the model.
    pub fn parameter_count(&self) -> u128 {
        total_parameters(&self.shapes)
    }
}

/// Every layer's input and output shapes and parameter layout, walking the layers in order
/// (each reads earlier layers only). Total on any lowered program (a layer whose shape does not
/// exist passes its input's shape on; [`check`] reports it), so it runs before the checks that
/// use it.
pub fn infer_shapes(program: &Program) -> Vec<LayerShapes> {
    shapes::infer(program).0
}

/// Checks a lowered program. Returns the checked program when there are no errors, and every
/// error and warning in source order either way.
pub fn check(program: Program, spans: Spans, limits: &Limits) -> (Option<Checked>, Vec<Diagnostic>) {
    let (shapes, failures) = shapes::infer(&program);
    let mut out = Vec::new();
    shapes::report(&program, &spans, &failures, &mut out);
    if failures.is_empty() {
        out.extend(diagnose(&program, &spans, &shapes, limits));
    } else {
        // Checks that read shapes would only repeat the failure; the rest still run.
        out.extend(diagnose(&program, &spans, &shapes, limits).into_iter().filter(|d| {
            !d.is_error()
                || !matches!(
                    d.code,
                    Code::DataShape | Code::LossMismatch | Code::TooLarge | Code::ImageOutput
                )
        }));
    }
    out.sort_by_key(|d| (d.span.map(|s| (s.file, s.start)), d.severity));
    let checked = (!out.iter().any(Diagnostic::is_error)).then_some(Checked { program, spans, shapes });
    (checked, out)
}

fn diagnose(program: &Program, spans: &Spans, shapes: &[LayerShapes], limits: &Limits) -> Vec<Diagnostic> {
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
    let weighted = layers.iter().filter(|(_, l)| l.has_weights()).count();
    if weighted == 0 {
        out.push(
            Diagnostic::error(
                Code::NoLayers,
                spans.model,
                format!("model `{}` has no dense, conv or maxout layer", model.name),
            )
            .with_label("nothing to train")
            .with_hint("add an output layer before the loss, e.g. `dense 10 softmax`"),
        );
    }

    if weighted > 0 {
        output::check_output(program, spans, shapes, &mut out);
    }
    output::check_data_shape(program, spans, shapes, &mut out);
    output::check_augment(program, spans, &mut out);
    memory::check_memory(program, spans, shapes, limits, &mut out);
    lints::lint(program, spans, &mut out);

    out.sort_by_key(|d| (d.span.map(|s| (s.file, s.start)), d.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::memory::human_bytes;
    use super::*;

    fn check_model(model: &str) -> (Option<Checked>, Vec<Diagnostic>) {
        let text = format!("model m {{\n{model}\n}}\ntrain {{\n  data \"x.csv\"\n}}\n");
        let (tree, errors) = crate::front::syntax::parse(0, &text);
        assert!(errors.is_empty());
        let (program, _) = crate::front::lower::lower(&tree, &[]);
        let (program, spans) = program.expect("lowers");
        check(program, spans, &Limits { memory_bytes: 1 << 30 })
    }

    #[test]
    fn shapes_are_inferred_once_per_layer() {
        let (checked, diagnostics) =
            check_model("  input 6\n  dense a: 8 prelu\n  dropout 0.1\n  maxout 10 pieces 2\n  loss mse");
        assert!(!diagnostics.iter().any(Diagnostic::is_error), "{diagnostics:?}");
        let checked = checked.expect("no errors");
        let shapes = checked.shapes();
        assert_eq!(format!("{:?}", shapes[0].input), "[batch, 6]");
        assert_eq!(format!("{:?}", shapes[0].output), "[batch, 8]");
        // prelu: weight, bias and one slope per unit.
        let kinds: Vec<ParamKind> = shapes[0].params.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [ParamKind::Weight, ParamKind::Bias, ParamKind::Slope]);
        assert_eq!(shapes[1].output, shapes[0].output);
        assert!(shapes[1].params.is_empty());
        assert_eq!(format!("{:?}", shapes[2].output), "[batch, 5]");
        assert_eq!((shapes[2].params[0].rows, shapes[2].params[0].cols), (8, 10));
        assert_eq!(checked.output_shape().cols(), 5);
        assert_eq!(checked.parameter_count(), 6 * 8 + 8 + 8 + 8 * 10 + 10);
    }

    #[test]
    fn a_program_with_errors_is_not_checked() {
        let (checked, diagnostics) = check_model("  input 6\n  maxout 10 pieces 3\n  loss mse");
        assert!(checked.is_none());
        assert!(diagnostics.iter().any(|d| d.code == Code::MaxoutDivisibility));
        let (without_output, _) = check_model("  input 6\n  dropout 0.5\n  loss mse");
        assert!(
            without_output.is_none(),
            "a model whose output is a dropout has no output layer"
        );
    }

    #[test]
    fn human_bytes_picks_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
