//! Stage 4: the tensor graph every backend executes.
//!
//! [`build`] lowers a checked [`Program`] to a flat graph of 2-D tensor ops over a batch: the
//! forward piece. [`crate::graph::autodiff`] then appends the backward piece (gradients) and the update
//! piece (one optimizer step per parameter), so the interpreter and the JIT run the same three
//! lists of nodes. The op set is small and closed; each op's shape rule is [`Op::shape`] and its
//! derivative is in `autodiff.rs`; the elementwise math of activations is [`Unary::apply`] and
//! [`Unary::derivative`], side by side.

pub mod autodiff;

use crate::ir::{
    Activation, Arena, DropoutMode, Handle, Init, LayerKind, Loss, OptimizerKind, Program, Regularization, Schedule,
};

/// A node of the graph.
pub type NodeId = Handle<Node>;

/// The row count of a tensor: the batch, or fixed (parameters, scalars).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// As many rows as samples in the batch.
    Batch,
    /// A fixed number of rows.
    Fixed(usize),
}

/// A 2-D shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Rows.
    pub rows: Rows,
    /// Columns.
    pub cols: usize,
}

impl Shape {
    /// `[batch, cols]`.
    pub fn batch(cols: usize) -> Shape {
        Shape {
            rows: Rows::Batch,
            cols,
        }
    }
    /// `[rows, cols]`.
    pub fn fixed(rows: usize, cols: usize) -> Shape {
        Shape {
            rows: Rows::Fixed(rows),
            cols,
        }
    }
    /// `[1, 1]`.
    pub fn scalar() -> Shape {
        Shape::fixed(1, 1)
    }
    /// Rows for a given batch size.
    pub fn rows_for(self, batch: usize) -> usize {
        match self.rows {
            Rows::Batch => batch,
            Rows::Fixed(n) => n,
        }
    }
}

/// Elementwise activations with a closed-form derivative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `max(0, x)`.
    Relu,
    /// `x` or `alpha x`.
    LeakyRelu(f64),
    /// `x` or `alpha (e^x - 1)`.
    Elu(f64),
}

impl Unary {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Unary::Sigmoid => "sigmoid",
            Unary::Tanh => "tanh",
            Unary::Relu => "relu",
            Unary::LeakyRelu(_) => "leaky_relu",
            Unary::Elu(_) => "elu",
        }
    }

    /// `f(x)`.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Unary::Sigmoid => sigmoid(x),
            Unary::Tanh => x.tanh(),
            Unary::Relu => x.max(0.0),
            Unary::LeakyRelu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Unary::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
        }
    }

    /// `f'(x)`, given `x` and `y = f(x)` (whichever is cheaper is used).
    ///
    /// Sigmoid and tanh use forms in `x` that stay accurate when the unit saturates
    /// (`y (1 - y)` and `1 - y^2` cancel to noise there, and that noise is what a vanishing
    /// gradient would be made of): `e / (1 + e)^2` with `e = exp(-|x|)`, and
    /// `4 e / (1 + e)^2` with `e = exp(-2|x|)`.
    pub fn derivative(self, x: f64, y: f64) -> f64 {
        match self {
            Unary::Sigmoid => {
                let e = (-x.abs()).exp();
                e / ((1.0 + e) * (1.0 + e))
            }
            Unary::Tanh => {
                let e = (-2.0 * x.abs()).exp();
                4.0 * e / ((1.0 + e) * (1.0 + e))
            }
            Unary::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Unary::LeakyRelu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Unary::Elu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    y + a
                }
            }
        }
    }
}

/// A numerically safe logistic function.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The ops. Inputs are other nodes; all tensors are 2-D.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The batch of input features `[batch, input_width]`.
    Input,
    /// The batch of targets `[batch, outputs]` (one-hot classes, or 0/1 for one sigmoid output).
    Targets,
    /// A trainable parameter (index into [`Graph::params`]).
    Param(usize),
    /// `op(a) op(b)` where `op` transposes when asked.
    MatMul {
        /// Left operand.
        a: NodeId,
        /// Right operand.
        b: NodeId,
        /// Use `a` transposed.
        transpose_a: bool,
        /// Use `b` transposed.
        transpose_b: bool,
    },
    /// Adds a `[1, n]` row to every row of `x` (bias).
    AddRow {
        /// `[batch, n]`.
        x: NodeId,
        /// `[1, n]`.
        row: NodeId,
    },
    /// An elementwise activation.
    Unary {
        /// Which.
        func: Unary,
        /// Its input.
        x: NodeId,
    },
    /// `x` where positive, else `slope_j x` with one learned slope per column.
    Prelu {
        /// Input.
        x: NodeId,
        /// `[1, n]` slopes.
        slope: NodeId,
    },
    /// Largest of each group of `pieces` consecutive columns.
    Maxout {
        /// `[batch, units]`.
        x: NodeId,
        /// Group size.
        pieces: usize,
    },
    /// The dropout multiplier for a tensor shaped like `like`: while training, `scale` for kept
    /// elements and 0 for dropped ones (the mask is a pure function of seed, layer, step and
    /// element); at test time the constant `test_scale`.
    DropoutMask {
        /// The tensor being masked (for its shape).
        like: NodeId,
        /// Drop probability.
        rate: f64,
        /// Inverted or scale-at-test.
        mode: DropoutMode,
        /// The model layer index, which selects the random stream.
        layer: usize,
    },
    /// Elementwise product.
    Mul {
        /// Left.
        a: NodeId,
        /// Right.
        b: NodeId,
    },
    /// Elementwise sum.
    Add {
        /// Left.
        a: NodeId,
        /// Right.
        b: NodeId,
    },
    /// Row-wise softmax.
    Softmax {
        /// Logits.
        x: NodeId,
    },
    /// Mean over the batch of `-sum(t log softmax(z))`, computed stably from the logits.
    SoftmaxCrossEntropy {
        /// Logits.
        logits: NodeId,
        /// One-hot targets.
        targets: NodeId,
    },
    /// Mean over all elements of the sigmoid cross-entropy, computed stably from the logits.
    SigmoidCrossEntropy {
        /// Logits.
        logits: NodeId,
        /// 0/1 targets.
        targets: NodeId,
    },
    /// Mean over all elements of `(y - t)^2`.
    MeanSquaredError {
        /// Outputs.
        output: NodeId,
        /// Targets.
        targets: NodeId,
    },
    /// `sum_p l1_p |w_p| + l2_p / 2 |w_p|^2` over regularized weights (a scalar).
    Penalty {
        /// (parameter index, l1, l2).
        terms: Vec<(usize, f64, f64)>,
    },
    /// `dy * f'(x)`.
    UnaryGrad {
        /// Which activation.
        func: Unary,
        /// Its input.
        x: NodeId,
        /// Its output.
        y: NodeId,
        /// Upstream gradient.
        dy: NodeId,
    },
    /// Softmax backward: `y * (dy - rowsum(dy * y))`.
    SoftmaxGrad {
        /// Softmax output.
        y: NodeId,
        /// Upstream gradient.
        dy: NodeId,
    },
    /// PReLU backward to the input.
    PreluGradInput {
        /// Input.
        x: NodeId,
        /// Slopes.
        slope: NodeId,
        /// Upstream gradient.
        dy: NodeId,
    },
    /// PReLU backward to the slopes: column sums of `dy * min(x, 0)`.
    PreluGradSlope {
        /// Input.
        x: NodeId,
        /// Upstream gradient.
        dy: NodeId,
    },
    /// Maxout backward: the gradient goes to the winning unit of each group only.
    MaxoutGrad {
        /// Maxout input.
        x: NodeId,
        /// Group size.
        pieces: usize,
        /// Upstream gradient.
        dy: NodeId,
    },
    /// Column sums as a `[1, n]` row (bias gradient).
    SumRows {
        /// Input.
        x: NodeId,
    },
    /// Gradient of the mean softmax cross-entropy w.r.t. the logits: `(softmax(z) - t) / batch`.
    SoftmaxCrossEntropyGrad {
        /// Logits.
        logits: NodeId,
        /// Targets.
        targets: NodeId,
    },
    /// Gradient of the mean sigmoid cross-entropy: `(sigmoid(z) - t) / (batch * n)`.
    SigmoidCrossEntropyGrad {
        /// Logits.
        logits: NodeId,
        /// Targets.
        targets: NodeId,
    },
    /// Gradient of the mean squared error: `2 (y - t) / (batch * n)`.
    MeanSquaredErrorGrad {
        /// Outputs.
        output: NodeId,
        /// Targets.
        targets: NodeId,
    },
    /// `grad + l1 sign(w) + l2 w`: the regularizer's gradient added to a weight's.
    PenaltyGrad {
        /// Data-loss gradient.
        grad: NodeId,
        /// The parameter index.
        param: usize,
        /// L1 strength.
        l1: f64,
        /// L2 strength.
        l2: f64,
    },
    /// One optimizer step for a parameter, in place (the rule is [`Graph::optimizer`]).
    Update {
        /// The parameter index.
        param: usize,
        /// Its final gradient.
        grad: NodeId,
    },
}

/// A node: its op, its shape, and the model layer it belongs to (for reports).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it computes.
    pub op: Op,
    /// Its output shape.
    pub shape: Shape,
    /// Index of the model layer it computes, if any.
    pub layer: Option<usize>,
}

/// What a parameter is, for naming and regularization (never on biases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A weight matrix `[inputs, outputs]`.
    Weight,
    /// A bias row.
    Bias,
    /// PReLU slopes.
    Slope,
}

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
    /// Its regularization (zero for biases and slopes).
    pub regularization: Regularization,
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

/// The three pieces: forward, backward and update.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Every node.
    pub nodes: Arena<Node>,
    /// Trainable parameters, in layer order.
    pub params: Vec<Param>,
    /// The input node.
    pub input: NodeId,
    /// The targets node.
    pub targets: NodeId,
    /// The model's prediction: probabilities for softmax/sigmoid outputs.
    pub output: NodeId,
    /// The data loss (a scalar).
    pub loss: NodeId,
    /// The regularization penalty (a scalar), when any weight is regularized.
    pub penalty: Option<NodeId>,
    /// Forward nodes in execution order (ends with `output` and `loss`).
    pub forward: Vec<NodeId>,
    /// Backward nodes in execution order.
    pub backward: Vec<NodeId>,
    /// The final gradient node of each parameter.
    pub grads: Vec<NodeId>,
    /// Update nodes, one per parameter.
    pub update: Vec<NodeId>,
    /// Model layers, indexed like `Node::layer`.
    pub layers: Vec<LayerInfo>,
    /// The optimizer the update nodes apply.
    pub optimizer: OptimizerKind,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// The base learning rate.
    pub lr: f64,
    /// The loss.
    pub loss_kind: Loss,
    /// Input width.
    pub input_width: usize,
    /// Output width.
    pub output_width: usize,
}

impl Op {
    /// The op's name in reports and plan snapshots.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Targets => "targets",
            Op::Param(_) => "param",
            Op::MatMul { .. } => "matmul",
            Op::AddRow { .. } => "add_row",
            Op::Unary { func, .. } => func.name(),
            Op::Prelu { .. } => "prelu",
            Op::Maxout { .. } => "maxout",
            Op::DropoutMask { .. } => "dropout_mask",
            Op::Mul { .. } => "mul",
            Op::Add { .. } => "add",
            Op::Softmax { .. } => "softmax",
            Op::SoftmaxCrossEntropy { .. } => "softmax_cross_entropy",
            Op::SigmoidCrossEntropy { .. } => "sigmoid_cross_entropy",
            Op::MeanSquaredError { .. } => "mean_squared_error",
            Op::Penalty { .. } => "penalty",
            Op::UnaryGrad { func, .. } => match func {
                Unary::Sigmoid => "sigmoid_grad",
                Unary::Tanh => "tanh_grad",
                Unary::Relu => "relu_grad",
                Unary::LeakyRelu(_) => "leaky_relu_grad",
                Unary::Elu(_) => "elu_grad",
            },
            Op::SoftmaxGrad { .. } => "softmax_grad",
            Op::PreluGradInput { .. } => "prelu_grad_input",
            Op::PreluGradSlope { .. } => "prelu_grad_slope",
            Op::MaxoutGrad { .. } => "maxout_grad",
            Op::SumRows { .. } => "sum_rows",
            Op::SoftmaxCrossEntropyGrad { .. } => "softmax_cross_entropy_grad",
            Op::SigmoidCrossEntropyGrad { .. } => "sigmoid_cross_entropy_grad",
            Op::MeanSquaredErrorGrad { .. } => "mean_squared_error_grad",
            Op::PenaltyGrad { .. } => "penalty_grad",
            Op::Update { .. } => "update",
        }
    }

    /// The nodes this op reads.
    pub fn inputs(&self) -> Vec<NodeId> {
        match self {
            Op::Input | Op::Targets | Op::Param(_) | Op::Penalty { .. } => vec![],
            Op::MatMul { a, b, .. } | Op::Mul { a, b } | Op::Add { a, b } => vec![*a, *b],
            Op::AddRow { x, row } => vec![*x, *row],
            Op::Unary { x, .. } | Op::Maxout { x, .. } | Op::Softmax { x } | Op::SumRows { x } => vec![*x],
            Op::Prelu { x, slope } => vec![*x, *slope],
            Op::DropoutMask { like, .. } => vec![*like],
            Op::SoftmaxCrossEntropy { logits, targets }
            | Op::SigmoidCrossEntropy { logits, targets }
            | Op::SoftmaxCrossEntropyGrad { logits, targets }
            | Op::SigmoidCrossEntropyGrad { logits, targets } => vec![*logits, *targets],
            Op::MeanSquaredError { output, targets } | Op::MeanSquaredErrorGrad { output, targets } => {
                vec![*output, *targets]
            }
            Op::UnaryGrad { x, y, dy, .. } => vec![*x, *y, *dy],
            Op::SoftmaxGrad { y, dy } => vec![*y, *dy],
            Op::PreluGradInput { x, slope, dy } => vec![*x, *slope, *dy],
            Op::PreluGradSlope { x, dy } | Op::MaxoutGrad { x, dy, .. } => vec![*x, *dy],
            Op::PenaltyGrad { grad, .. } | Op::Update { grad, .. } => vec![*grad],
        }
    }

    /// The output shape, from the shapes of the inputs (the shape rule).
    pub fn shape(&self, nodes: &Arena<Node>, params: &[Param], input_width: usize, output_width: usize) -> Shape {
        let s = |n: &NodeId| nodes[*n].shape;
        match self {
            Op::Input => Shape::batch(input_width),
            Op::Targets => Shape::batch(output_width),
            Op::Param(p) => Shape::fixed(params[*p].rows, params[*p].cols),
            Op::MatMul {
                a,
                b,
                transpose_a,
                transpose_b,
            } => {
                let (a, b) = (s(a), s(b));
                let rows = if *transpose_a { Rows::Fixed(a.cols) } else { a.rows };
                let cols = if *transpose_b {
                    match b.rows {
                        Rows::Fixed(n) => n,
                        Rows::Batch => unreachable!("graphs never multiply by a transposed batch on the right"),
                    }
                } else {
                    b.cols
                };
                Shape { rows, cols }
            }
            Op::AddRow { x, .. }
            | Op::Unary { x, .. }
            | Op::Prelu { x, .. }
            | Op::Softmax { x }
            | Op::PreluGradInput { x, .. }
            | Op::MaxoutGrad { x, .. } => s(x),
            Op::DropoutMask { like, .. } => s(like),
            Op::Mul { a, .. } | Op::Add { a, .. } => s(a),
            Op::Maxout { x, pieces } => Shape {
                rows: s(x).rows,
                cols: s(x).cols / pieces,
            },
            Op::SoftmaxCrossEntropy { .. }
            | Op::SigmoidCrossEntropy { .. }
            | Op::MeanSquaredError { .. }
            | Op::Penalty { .. } => Shape::scalar(),
            Op::UnaryGrad { x, .. } => s(x),
            Op::SoftmaxGrad { y, .. } => s(y),
            Op::PreluGradSlope { x, .. } | Op::SumRows { x } => Shape::fixed(1, s(x).cols),
            Op::SoftmaxCrossEntropyGrad { logits, .. } | Op::SigmoidCrossEntropyGrad { logits, .. } => s(logits),
            Op::MeanSquaredErrorGrad { output, .. } => s(output),
            Op::PenaltyGrad { grad, .. } | Op::Update { grad, .. } => s(grad),
        }
    }
}

/// Builds graphs node by node, computing each node's shape from its op.
pub struct Builder {
    nodes: Arena<Node>,
    params: Vec<Param>,
    input_width: usize,
    output_width: usize,
    layer: Option<usize>,
}

impl Builder {
    /// Appends a node.
    pub fn add(&mut self, op: Op) -> NodeId {
        let shape = op.shape(&self.nodes, &self.params, self.input_width, self.output_width);
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

/// The output width of a model.
pub fn output_width(program: &Program) -> usize {
    let mut width = program.model.input_width;
    for layer in program.model.layers.values() {
        width = layer.output_width(width);
    }
    width
}

/// Builds the forward graph of a checked program, then its backward and update pieces.
pub fn build(program: &Program) -> Graph {
    let model = &program.model;
    let output_width = output_width(program);
    let mut b = Builder {
        nodes: Arena::new(),
        params: Vec::new(),
        input_width: model.input_width,
        output_width,
        layer: None,
    };
    let input = b.add(Op::Input);
    let targets = b.add(Op::Targets);
    let global = program.train.regularization;
    let last_weighted = model
        .layers
        .iter()
        .rposition(|(_, l)| !matches!(l.kind, LayerKind::Dropout { .. }))
        .expect("the checker guarantees a layer with weights");

    let mut x = input;
    let mut width = model.input_width;
    let mut logits = None;
    let mut output = input;
    let mut layers = Vec::new();
    for (index, (_, layer)) in model.layers.iter().enumerate() {
        b.set_layer(Some(index));
        let regularization = layer.regularization.resolve(global);
        let affine = |b: &mut Builder, x: NodeId, units: usize, init: Init, bias: f64| {
            let w = b.param(Param {
                name: format!("{}.weight", layer.name),
                rows: width,
                cols: units,
                kind: ParamKind::Weight,
                init: init_of(init, width, units),
                layer: index,
                regularization,
            });
            let bias = b.param(Param {
                name: format!("{}.bias", layer.name),
                rows: 1,
                cols: units,
                kind: ParamKind::Bias,
                init: ParamInit::Constant(bias),
                layer: index,
                regularization: Regularization::default(),
            });
            let z = b.add(Op::MatMul {
                a: x,
                b: w,
                transpose_a: false,
                transpose_b: false,
            });
            b.add(Op::AddRow { x: z, row: bias })
        };
        x = match &layer.kind {
            LayerKind::Dense {
                width: units,
                activation,
                init,
                bias,
            } => {
                let z = affine(&mut b, x, *units, *init, *bias);
                let fused_loss = index == last_weighted
                    && matches!(
                        (model.loss, activation),
                        (Loss::CrossEntropy, Activation::Softmax) | (Loss::BinaryCrossEntropy, Activation::Sigmoid)
                    );
                if fused_loss {
                    logits = Some(z);
                }
                match activation {
                    Activation::Linear => z,
                    Activation::Sigmoid => b.add(Op::Unary {
                        func: Unary::Sigmoid,
                        x: z,
                    }),
                    Activation::Tanh => b.add(Op::Unary {
                        func: Unary::Tanh,
                        x: z,
                    }),
                    Activation::Relu => b.add(Op::Unary {
                        func: Unary::Relu,
                        x: z,
                    }),
                    Activation::LeakyRelu { alpha } => b.add(Op::Unary {
                        func: Unary::LeakyRelu(*alpha),
                        x: z,
                    }),
                    Activation::Elu { alpha } => b.add(Op::Unary {
                        func: Unary::Elu(*alpha),
                        x: z,
                    }),
                    Activation::Prelu { initial } => {
                        let slope = b.param(Param {
                            name: format!("{}.slope", layer.name),
                            rows: 1,
                            cols: *units,
                            kind: ParamKind::Slope,
                            init: ParamInit::Constant(*initial),
                            layer: index,
                            regularization: Regularization::default(),
                        });
                        b.add(Op::Prelu { x: z, slope })
                    }
                    Activation::Softmax => b.add(Op::Softmax { x: z }),
                }
            }
            LayerKind::Maxout {
                pieces,
                init,
                bias,
                fixed_zero,
                ..
            } => {
                let z = affine(&mut b, x, layer.learned_units(), *init, *bias);
                // With one piece of each group fixed at zero, max(z_1..z_{k-1}, 0) is relu of the
                // maxout of the learned pieces (of z itself when one piece is learned).
                let learned = if *fixed_zero { pieces - 1 } else { *pieces };
                let m = if learned > 1 {
                    b.add(Op::Maxout { x: z, pieces: learned })
                } else {
                    z
                };
                if *fixed_zero {
                    b.add(Op::Unary {
                        func: Unary::Relu,
                        x: m,
                    })
                } else {
                    m
                }
            }
            LayerKind::Dropout { rate, mode } => {
                let mask = b.add(Op::DropoutMask {
                    like: x,
                    rate: *rate,
                    mode: *mode,
                    layer: index,
                });
                b.add(Op::Mul { a: x, b: mask })
            }
        };
        width = layer.output_width(width);
        if index == last_weighted {
            output = x;
        }
        layers.push(LayerInfo {
            name: layer.name.clone(),
            kind: layer.kind_name(),
            width,
        });
    }
    b.set_layer(None);
    let loss = match (model.loss, logits) {
        (Loss::CrossEntropy, Some(z)) => b.add(Op::SoftmaxCrossEntropy { logits: z, targets }),
        (Loss::BinaryCrossEntropy, Some(z)) => b.add(Op::SigmoidCrossEntropy { logits: z, targets }),
        _ => b.add(Op::MeanSquaredError { output, targets }),
    };
    let terms: Vec<(usize, f64, f64)> = b
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == ParamKind::Weight && (p.regularization.l1 > 0.0 || p.regularization.l2 > 0.0))
        .map(|(i, p)| (i, p.regularization.l1, p.regularization.l2))
        .collect();
    let penalty = (!terms.is_empty()).then(|| b.add(Op::Penalty { terms }));
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
        targets,
        output,
        loss,
        penalty,
        forward,
        backward: Vec::new(),
        grads: Vec::new(),
        update: Vec::new(),
        layers,
        optimizer: program.train.optimizer.kind,
        schedule: program.train.schedule,
        lr: program.train.optimizer.lr,
        loss_kind: model.loss,
        input_width: model.input_width,
        output_width,
    };
    crate::graph::autodiff::differentiate(&mut graph, b, logits);
    graph
}

impl Graph {
    /// The number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|p| p.rows * p.cols).sum()
    }

    /// Multiply-adds of one forward pass per sample (matrix products only).
    pub fn forward_macs_per_sample(&self) -> usize {
        self.params
            .iter()
            .filter(|p| p.kind == ParamKind::Weight)
            .map(|p| p.rows * p.cols)
            .sum()
    }
}
