//! Stage 4: the tensor graph every backend executes.
//!
//! [`build`] lowers a checked [`Program`] to a flat graph of tensor ops over a batch: the
//! forward piece. [`autodiff`] then appends the backward piece (gradients) and the update piece
//! (one optimizer step per parameter), so the interpreter and the JIT run the same three lists
//! of nodes. The ops themselves (shape rules, reference math, derivatives) are [`crate::ops`].

pub mod autodiff;
pub mod init;

pub use crate::ops::{Node, NodeId, Op, Unary};

pub use crate::ir::ParamKind;

use crate::check::{Checked, LayerShapes};
use crate::ir::{
    Activation, Arena, Init, LayerKind, Loss, OptimizerKind, Padding, ParamShape, PoolKind, Regularization, Shape,
    Shortcut, Source, Window, image, projection_stride,
};
use crate::ops::{
    ActivationOp, ArithOp, ChannelOp, ConvOp, DropoutOp, LinearOp, LossOp, MaxoutOp, NormOp, PenaltyOp, PoolOp,
    RunningKind, ShapeCx, SoftmaxOp, activation, linear,
};

/// How a parameter starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamInit {
    /// Normal with mean 0.
    Normal(f64),
    /// Uniform in `[-limit, limit]`.
    Uniform(f64),
    /// Every element the same.
    Constant(f64),
}

/// A trainable tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// `layer.weight`, `layer.bias` or `layer.slope`.
    pub name: String,
    /// Rows (`[inputs]` for weights, 1 for rows).
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// What it is.
    pub kind: ParamKind,
    /// How it starts.
    pub init: ParamInit,
    /// The model layer it belongs to.
    pub layer: usize,
    /// Its regularization (zero for everything but weights and filters).
    pub regularization: Regularization,
    /// Its shape in weight files (PyTorch's layout).
    pub file_shape: Vec<usize>,
    /// For running statistics: the node whose value each training step moves it towards, and
    /// by how much (`p = (1 - momentum) p + momentum value`). `None` for trained parameters.
    pub follows: Option<(NodeId, f64)>,
}

/// Where a layer's nodes are, for per-layer reports.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// The layer's name.
    pub name: String,
    /// Its kind as written (`dense`, `maxout`, `dropout`).
    pub kind: &'static str,
    /// Output width.
    pub width: usize,
}

/// The three pieces: forward, backward and update. Structure only: the learning rate and its
/// schedule reach the kernels as arguments at each step, so two programs that differ only in
/// them have equal graphs (and share compiled kernels).
///
/// [`build`] makes training graphs (targets, a loss, all three pieces);
/// [`crate::passes::inference`] makes inference graphs from them (a forward piece that ends at
/// `output`: no targets, no loss, no backward or update piece).
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Every node.
    pub nodes: Arena<Node>,
    /// Trainable parameters, in layer order.
    pub params: Vec<Param>,
    /// The input node.
    pub input: NodeId,
    /// The targets node (none in an inference graph).
    pub targets: Option<NodeId>,
    /// The model's prediction: probabilities for softmax/sigmoid outputs.
    pub output: NodeId,
    /// The data loss (a scalar; none in an inference graph).
    pub loss: Option<NodeId>,
    /// The regularization penalty (a scalar), when any weight is regularized.
    pub penalty: Option<NodeId>,
    /// Forward nodes in execution order (ends with `output` and `loss`, if any).
    pub forward: Vec<NodeId>,
    /// Backward nodes in execution order.
    pub backward: Vec<NodeId>,
    /// The final gradient node of each parameter.
    pub grads: Vec<NodeId>,
    /// Update nodes, one per parameter.
    pub update: Vec<NodeId>,
    /// Model layers, indexed like `Node::layer`.
    pub layers: Vec<LayerInfo>,
    /// The optimizer rule the update nodes apply (with its coefficients; the learning rate is
    /// an argument of each step).
    pub optimizer: OptimizerKind,
    /// Input width.
    pub input_width: usize,
    /// Output width.
    pub output_width: usize,
}

/// Builds graphs node by node, computing each node's shape from its op.
pub struct Builder {
    nodes: Arena<Node>,
    params: Vec<Param>,
    input_shape: Shape,
    output_width: usize,
    layer: Option<usize>,
}

impl ShapeCx for Arena<Node> {
    fn of(&self, n: NodeId) -> Shape {
        self[n].shape
    }
}

impl Builder {
    /// Appends a node.
    pub fn add(&mut self, op: Op) -> NodeId {
        let shape = match op {
            Op::Input => self.input_shape,
            Op::Targets => Shape::batch(self.output_width),
            Op::Param(p) => Shape::fixed(self.params[p].rows, self.params[p].cols),
            ref other => other.shape(&self.nodes),
        };
        self.nodes.append(Node {
            op,
            shape,
            layer: self.layer,
        })
    }

    /// Sets the layer that following nodes belong to.
    pub fn set_layer(&mut self, layer: Option<usize>) {
        self.layer = layer;
    }

    /// The nodes so far.
    pub fn nodes(&self) -> &Arena<Node> {
        &self.nodes
    }

    /// The parameters so far.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Gives up the nodes and parameters.
    pub fn finish(self) -> (Arena<Node>, Vec<Param>) {
        (self.nodes, self.params)
    }

    fn param(&mut self, param: Param) -> NodeId {
        self.params.push(param);
        self.add(Op::Param(self.params.len() - 1))
    }
}

fn init_of(init: Init, fan_in: usize, fan_out: usize) -> ParamInit {
    match init {
        Init::He => ParamInit::Normal((2.0 / fan_in as f64).sqrt()),
        Init::Xavier => ParamInit::Uniform((6.0 / (fan_in + fan_out) as f64).sqrt()),
        Init::Normal { std } => ParamInit::Normal(std),
        Init::Uniform { limit } => ParamInit::Uniform(limit),
    }
}

/// Builds the forward graph of a checked program, then its backward and update pieces.
///
/// Each layer reads the values of its explicit inputs; its parameters are the ones the
/// checker laid out ([`crate::check::LayerShapes::params`]), created in that order.
pub fn build(checked: &Checked) -> Graph {
    let program = checked.program();
    let model = &program.model;
    let output_layer = checked.output();
    let output_width = checked.output_shape().cols();
    let mut b = Builder {
        nodes: Arena::new(),
        params: Vec::new(),
        input_shape: model.input_shape(),
        output_width,
        layer: None,
    };
    let input = b.add(Op::Input);
    let targets = b.add(Op::Targets);
    let global = program.train.regularization;

    let mut value_of: Vec<NodeId> = Vec::with_capacity(model.layers.len());
    let mut logits = None;
    let mut layers = Vec::new();
    for (index, (h, layer)) in model.layers.iter().enumerate() {
        b.set_layer(Some(index));
        let xs: Vec<NodeId> = layer
            .inputs
            .iter()
            .map(|s| match s {
                Source::Layer(from) => value_of[from.index()],
                Source::Input => input,
            })
            .collect();
        let shapes = checked.layer(h);
        let params = layer_params(&mut b, layer, index, &shapes.params, global);
        let fuse_loss = h == output_layer;
        let (y, z) = layer_nodes(
            &mut b,
            layer,
            index,
            &xs,
            shapes,
            &params,
            fuse_loss.then_some(model.loss),
        );
        if z.is_some() {
            logits = z;
        }
        value_of.push(y);
        layers.push(LayerInfo {
            name: layer.name.clone(),
            kind: layer.kind_name(),
            width: shapes.output.cols(),
        });
    }
    b.set_layer(None);
    let output = value_of[output_layer.index()];
    let loss = match (model.loss, logits) {
        (Loss::CrossEntropy, Some(z)) => b.add(Op::Loss(LossOp::SoftmaxCrossEntropy { logits: z, targets })),
        (Loss::BinaryCrossEntropy, Some(z)) => b.add(Op::Loss(LossOp::SigmoidCrossEntropy { logits: z, targets })),
        _ => b.add(Op::Loss(LossOp::MeanSquaredError { output, targets })),
    };
    let terms: Vec<(usize, f64, f64)> = b
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind.is_regularized() && (p.regularization.l1 > 0.0 || p.regularization.l2 > 0.0))
        .map(|(i, p)| (i, p.regularization.l1, p.regularization.l2))
        .collect();
    let penalty = (!terms.is_empty()).then(|| b.add(Op::Penalty(PenaltyOp::Penalty { terms })));
    let forward: Vec<NodeId> = b
        .nodes
        .iter()
        .map(|(h, _)| h)
        .filter(|h| Some(*h) != penalty && *h != input && *h != targets)
        .filter(|h| !matches!(b.nodes[*h].op, Op::Param(_)))
        .collect();
    let mut graph = Graph {
        nodes: Arena::new(),
        params: Vec::new(),
        input,
        targets: Some(targets),
        output,
        loss: Some(loss),
        penalty,
        forward,
        backward: Vec::new(),
        grads: Vec::new(),
        update: Vec::new(),
        layers,
        optimizer: program.train.optimizer.kind,
        input_width: model.input_width(),
        output_width,
    };
    autodiff::differentiate(&mut graph, b);
    graph
}

/// Creates a layer's parameters in the checker's layout, with their initializers and
/// regularization (weights and filters only).
fn layer_params(
    b: &mut Builder,
    layer: &crate::ir::Layer,
    index: usize,
    shapes: &[crate::ir::ParamShape],
    global: Regularization,
) -> Vec<NodeId> {
    shapes
        .iter()
        .map(|p| {
            let init = match (p.kind, &layer.kind) {
                (ParamKind::Weight, LayerKind::Dense { init, .. } | LayerKind::Maxout { init, .. }) => {
                    init_of(*init, p.rows, p.cols)
                }
                // A residual block's projection.
                (ParamKind::Weight, _) => init_of(Init::He, p.rows, p.cols),
                (ParamKind::Filter, kind) => {
                    let taps = p.kernel.0 * p.kernel.1;
                    let init = match kind {
                        LayerKind::Conv { init, .. } => *init,
                        _ => Init::He,
                    };
                    init_of(init, p.cols, p.rows * taps)
                }
                (
                    ParamKind::Bias,
                    LayerKind::Dense { bias, .. }
                    | LayerKind::Maxout { bias, .. }
                    | LayerKind::Conv { bias: Some(bias), .. },
                ) => ParamInit::Constant(*bias),
                (ParamKind::Slope, _) => match layer.activation() {
                    Some(Activation::Prelu { initial }) => ParamInit::Constant(initial),
                    other => unreachable!("a slope belongs to a prelu activation, not {other:?}"),
                },
                (ParamKind::Scale | ParamKind::RunningVar, _) => ParamInit::Constant(1.0),
                (ParamKind::Shift | ParamKind::RunningMean, _) => ParamInit::Constant(0.0),
                (kind, other) => unreachable!("{other:?} has no {kind:?} parameter"),
            };
            let regularization = if p.kind.is_regularized() {
                layer.regularization.resolve(global)
            } else {
                Regularization::default()
            };
            b.param(Param {
                name: p.name(&layer.name),
                rows: p.rows,
                cols: p.cols,
                kind: p.kind,
                init,
                layer: index,
                regularization,
                file_shape: p.file_shape(),
                follows: None,
            })
        })
        .collect()
}

/// `(channels, values per channel)` of a tensor: an image's channels and height x width, or a
/// flat tensor's features, one value each.
fn channels_of(shape: Shape) -> (usize, usize) {
    match image(shape) {
        Some((c, h, w)) => (c, h * w),
        None => (shape.cols(), 1),
    }
}

/// The nodes of one layer reading `xs` (the layer before, then any others it names): returns
/// its output and, when it is the output layer of a loss fused with its activation (`loss`
/// given: softmax + cross-entropy, sigmoid + binary cross-entropy), the logits the loss reads.
fn layer_nodes(
    b: &mut Builder,
    layer: &crate::ir::Layer,
    index: usize,
    xs: &[NodeId],
    shapes: &LayerShapes,
    params: &[NodeId],
    loss: Option<Loss>,
) -> (NodeId, Option<NodeId>) {
    let x = xs[0];
    let slope = |kinds: &[ParamShape]| kinds.iter().position(|p| p.kind == ParamKind::Slope).map(|i| params[i]);
    let slope = slope(&shapes.params);
    let (_, spatial) = channels_of(shapes.output);
    let z = match &layer.kind {
        LayerKind::Dense { .. } => affine(b, x, params[0], params[1]),
        LayerKind::Maxout { pieces, fixed_zero, .. } => {
            let z = affine(b, x, params[0], params[1]);
            // With one piece of each group fixed at zero, max(z_1..z_{k-1}, 0) is relu of the
            // maxout of the learned pieces (of z itself when one piece is learned).
            let learned = if *fixed_zero { pieces - 1 } else { *pieces };
            let m = if learned > 1 {
                b.add(Op::Maxout(MaxoutOp::Maxout { x: z, pieces: learned }))
            } else {
                z
            };
            let y = if *fixed_zero {
                b.add(activation::unary(Unary::Relu, m))
            } else {
                m
            };
            return (y, None);
        }
        LayerKind::Dropout { rate, mode } => {
            let mask = b.add(Op::Dropout(DropoutOp::Mask {
                like: x,
                rate: *rate,
                mode: *mode,
                layer: index,
            }));
            return (b.add(Op::Arith(ArithOp::Mul { a: x, b: mask })), None);
        }
        LayerKind::Conv { bias, .. } => {
            let g = layer.window(shapes.input).expect("the checker accepted this window");
            let z = b.add(Op::Conv(ConvOp::Conv { x, w: params[0], g }));
            if bias.is_some() {
                let row = b.add(Op::Channel(ChannelOp::Expand { x: params[1], spatial }));
                b.add(Op::Linear(LinearOp::AddRow { x: z, row }))
            } else {
                z
            }
        }
        LayerKind::Pool { op, .. } => {
            let g = layer.window(shapes.input).expect("the checker accepted this window");
            let op = match op {
                PoolKind::Max => PoolOp::MaxPool { x, g },
                PoolKind::Avg => PoolOp::AvgPool { x, g },
            };
            return (b.add(Op::Pool(op)), None);
        }
        LayerKind::GlobalPool => {
            let g = layer.window(shapes.input).expect("the checker accepted this input");
            return (b.add(Op::Pool(PoolOp::AvgPool { x, g })), None);
        }
        LayerKind::Flatten => return (x, None),
        // Per channel of the layer's input as the checker shaped it (a flattened image's node is
        // still an image: its features are normalized one by one, as the parameters are laid out).
        LayerKind::BatchNorm { momentum, eps, .. } => {
            batchnorm(b, x, channels_of(shapes.input), &params[..4], *momentum, *eps)
        }
        LayerKind::Activation { .. } => x,
        LayerKind::Add { .. } => xs[1..]
            .iter()
            .fold(x, |sum, &other| b.add(Op::Arith(ArithOp::Add { a: sum, b: other }))),
        LayerKind::Residual { shortcut, .. } => {
            let from = xs[1];
            let skip = match shortcut {
                Shortcut::Identity => from,
                Shortcut::Project => match (image(shapes.inputs[1]), image(shapes.output)) {
                    (Some((c, h, w)), Some((_, oh, ow))) => {
                        let stride = projection_stride((h, w), (oh, ow)).expect("the checker found the stride");
                        let g = Window::new(c, h, w, 1, stride, Padding::Valid).expect("a 1x1 window fits");
                        let p = b.add(Op::Conv(ConvOp::Conv {
                            x: from,
                            w: params[0],
                            g,
                        }));
                        // The projection's batchnorm: momentum and eps as batchnorm's defaults.
                        let per_channel = channels_of(b.nodes[p].shape);
                        batchnorm(b, p, per_channel, &params[1..5], 0.1, 1e-5)
                    }
                    _ => b.add(linear::matmul(from, params[0])),
                },
            };
            b.add(Op::Arith(ArithOp::Add { a: x, b: skip }))
        }
        LayerKind::Concat => {
            let channels = shapes.inputs.iter().map(|&s| channels_of(s).0).collect();
            return (
                b.add(Op::Channel(ChannelOp::Concat {
                    parts: xs.to_vec(),
                    channels,
                    spatial,
                })),
                None,
            );
        }
    };
    let activation = layer.activation().unwrap_or(Activation::Linear);
    let fused = matches!(
        (loss, activation),
        (Some(Loss::CrossEntropy), Activation::Softmax) | (Some(Loss::BinaryCrossEntropy), Activation::Sigmoid)
    );
    let y = match activation {
        Activation::Linear => z,
        Activation::Sigmoid => b.add(activation::unary(Unary::Sigmoid, z)),
        Activation::Tanh => b.add(activation::unary(Unary::Tanh, z)),
        Activation::Relu => b.add(activation::unary(Unary::Relu, z)),
        Activation::LeakyRelu { alpha } => b.add(activation::unary(Unary::LeakyRelu(alpha), z)),
        Activation::Elu { alpha } => b.add(activation::unary(Unary::Elu(alpha), z)),
        Activation::Prelu { .. } => {
            let slope = slope.expect("a prelu layer has slopes");
            // One slope per channel of an image, spread over its positions.
            let slope = if image(shapes.output).is_some() {
                b.add(Op::Channel(ChannelOp::Expand { x: slope, spatial }))
            } else {
                slope
            };
            b.add(Op::Activation(ActivationOp::Prelu { x: z, slope }))
        }
        Activation::Softmax => b.add(Op::Softmax(SoftmaxOp::Softmax { x: z })),
    };
    (y, fused.then_some(z))
}

/// Batch normalization of `x`, `(channels, values per channel)`, with `params` = scale, shift,
/// running mean, running variance; the running statistics follow the batch's (see
/// [`Param::follows`]).
fn batchnorm(
    b: &mut Builder,
    x: NodeId,
    (channels, spatial): (usize, usize),
    params: &[NodeId],
    momentum: f64,
    eps: f64,
) -> NodeId {
    let stats = b.add(Op::Norm(NormOp::BatchStats { x, channels, spatial }));
    let y = b.add(Op::Norm(NormOp::Normalize {
        x,
        stats,
        mean: params[2],
        var: params[3],
        scale: params[0],
        shift: params[1],
        eps,
        channels,
        spatial,
    }));
    for (param, of) in [(params[2], RunningKind::Mean), (params[3], RunningKind::Var)] {
        let value = b.add(Op::Norm(NormOp::RunningStat {
            stats,
            x,
            of,
            channels,
            spatial,
        }));
        let Op::Param(p) = b.nodes[param].op else {
            unreachable!("running statistics are parameters")
        };
        b.params[p].follows = Some((value, momentum));
    }
    y
}

/// `x w + bias`.
fn affine(b: &mut Builder, x: NodeId, w: NodeId, bias: NodeId) -> NodeId {
    let z = b.add(linear::matmul(x, w));
    b.add(Op::Linear(LinearOp::AddRow { x: z, row: bias }))
}

impl Graph {
    /// The number of trained scalars (running statistics are not trained).
    pub fn parameter_count(&self) -> usize {
        self.params
            .iter()
            .filter(|p| p.kind.is_trainable())
            .map(|p| p.rows * p.cols)
            .sum()
    }

    /// Multiply-adds of one forward pass per sample (matrix products and convolutions).
    pub fn forward_macs_per_sample(&self) -> usize {
        self.forward
            .iter()
            .map(|&n| match &self.nodes[n].op {
                Op::Linear(LinearOp::MatMul {
                    a,
                    b,
                    transpose_a: false,
                    transpose_b: false,
                }) => self.nodes[*a].shape.cols() * self.nodes[*b].shape.cols(),
                Op::Conv(ConvOp::Conv { w, g, .. }) => {
                    let w = self.nodes[*w].shape;
                    w.rows_for(1) * w.cols() * g.positions()
                }
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Limits;
    use crate::diag::source::SourceMap;
    use crate::ops::Fusion;

    fn graph(model: &str, train: &str) -> Graph {
        let text = format!("model m {{\n{model}\n}}\ntrain {{\n  data \"x.csv\"\n  {train}\n}}\n");
        let mut sources = SourceMap::new();
        let id = sources.add("m.net", text);
        let compiled = crate::compile(&sources, id, &[], &Limits { memory_bytes: 1 << 30 });
        build(&compiled.checked.expect("checks"))
    }

    fn names(g: &Graph, list: &[NodeId]) -> Vec<&'static str> {
        list.iter().map(|&n| g.nodes[n].op.name()).collect()
    }

    #[test]
    fn a_dense_softmax_layer_under_cross_entropy() {
        let g = graph(
            "  input 3\n  dense 2 softmax\n  loss cross_entropy",
            "optimizer sgd lr 0.1",
        );
        assert_eq!(
            names(&g, &g.forward),
            ["matmul", "add_row", "softmax", "softmax_cross_entropy"]
        );
        // The loss reads the logits (the bias sum), not the softmax: its gradient is p - t.
        let Op::Loss(LossOp::SoftmaxCrossEntropy { logits, .. }) =
            g.nodes[g.loss.expect("a training graph has a loss")].op
        else {
            panic!("cross-entropy loss")
        };
        assert_eq!(g.nodes[logits].op.name(), "add_row");
        assert_eq!(g.nodes[g.output].op.name(), "softmax");
        let params: Vec<(&str, usize, usize)> = g.params.iter().map(|p| (p.name.as_str(), p.rows, p.cols)).collect();
        assert_eq!(params, [("dense1.weight", 3, 2), ("dense1.bias", 1, 2)]);
        assert_eq!(g.nodes[g.output].shape, Shape::batch(2));
    }

    /// Autodiff on the smallest graph: one linear layer under mse.
    #[test]
    fn autodiff_of_a_linear_layer() {
        let g = graph(
            "  input 3\n  dense 1 linear\n  loss mse",
            "optimizer sgd lr 0.1 regularize l2 0.01",
        );
        assert_eq!(
            names(&g, &g.backward),
            ["mean_squared_error_grad", "sum_rows", "matmul", "penalty_grad"]
        );
        // d loss / d W = x^T (d loss / d z), then the L2 term; the bias gets the column sum.
        let weight = g.grads[0];
        let Op::Penalty(PenaltyOp::PenaltyGrad { grad, l2, .. }) = g.nodes[weight].op else {
            panic!("the weight's gradient includes its penalty")
        };
        assert_eq!(l2, 0.01);
        let Op::Linear(LinearOp::MatMul {
            a, transpose_a: true, ..
        }) = g.nodes[grad].op
        else {
            panic!("x^T dz")
        };
        assert_eq!(a, g.input);
        assert_eq!(g.nodes[g.grads[1]].op.name(), "sum_rows");
        assert_eq!(g.update.len(), 2);
        assert!(g.update.iter().all(|&u| g.nodes[u].op.fusion() == Fusion::Update));
        // No gradient flows into the input: nothing computes x's gradient.
        assert_eq!(names(&g, &g.backward).iter().filter(|n| **n == "matmul").count(), 1);
    }

    #[test]
    fn dropout_masks_get_no_gradient_and_mse_layers_no_fused_loss() {
        let g = graph(
            "  input 4\n  dense 5 relu\n  dropout 0.5 scale_at_test\n  dense 2 sigmoid\n  loss mse",
            "optimizer adam lr 0.001",
        );
        assert!(names(&g, &g.forward).contains(&"dropout_mask"));
        assert!(!names(&g, &g.backward).contains(&"dropout_mask"));
        let Op::Loss(LossOp::MeanSquaredError { output, .. }) =
            g.nodes[g.loss.expect("a training graph has a loss")].op
        else {
            panic!("mse")
        };
        assert_eq!(output, g.output);
        assert_eq!(g.nodes[g.output].op.name(), "sigmoid");
        assert!(names(&g, &g.backward).contains(&"sigmoid_grad"));
    }

    /// `(channels, values per channel)` of every batch-statistics node.
    fn batch_stats(g: &Graph) -> Vec<(usize, usize)> {
        g.nodes
            .iter()
            .filter_map(|(_, n)| match n.op {
                Op::Norm(NormOp::BatchStats { channels, spatial, .. }) => Some((channels, spatial)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn batchnorm_after_flatten_normalizes_each_feature() {
        // The flattened image's node is the image itself; the normalization follows the
        // checker's shapes (2 x 2 x 3 = 12 features), as its parameters do.
        let g = graph(
            "  input 2 2 3\n  flatten\n  batchnorm relu\n  dense 3 softmax\n  loss cross_entropy",
            "optimizer sgd lr 0.1",
        );
        let stats = batch_stats(&g);
        assert_eq!(stats, [(12, 1)]);
        let running: Vec<usize> = g
            .params
            .iter()
            .filter(|p| p.follows.is_some())
            .map(|p| p.cols)
            .collect();
        assert_eq!(running, [12, 12]);
    }

    #[test]
    fn a_projection_shortcut_normalizes_per_channel_of_its_output() {
        // 3x6x6 in, 4x3x3 out: the shortcut is a 1x1 stride-2 conv whose batchnorm has 4
        // channels of 9 positions, as the body's own batchnorm.
        let g = graph(
            "  input 3 6 6\n  residual shortcut project {\n    conv 4 kernel 3 stride 2 pad same no_bias\n    batchnorm\n  }\n  dense 3 softmax\n  loss cross_entropy",
            "optimizer sgd lr 0.1",
        );
        let stats = batch_stats(&g);
        assert_eq!(stats, [(4, 9), (4, 9)]);
        let names: Vec<&str> = g.params.iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"residual1.project.weight"), "{names:?}");
        assert!(names.contains(&"residual1.project_bn.running_var"), "{names:?}");
    }
}
