//! The model: layers, activations, initializers, dropout, losses, regularization.

use super::{Arena, Dim, Handle, Shape};

/// The network: an input width, layers that each name what they read, an output layer, and
/// a loss on the output.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Model {
    /// The name after `model`.
    pub name: String,
    /// Number of input features.
    pub input_width: usize,
    /// Layers, each after the layers it reads (a topological order).
    pub layers: Arena<Layer>,
    /// The layer whose output is the model's prediction (the last layer of a chain); `None`
    /// only in a model without layers, which the checker refuses.
    pub output: Option<Handle<Layer>>,
    /// The loss applied to the output.
    pub loss: Loss,
}

impl Model {
    /// The shape of one batch of inputs.
    pub fn input_shape(&self) -> Shape {
        Shape::batch(self.input_width)
    }
}

/// What a layer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Source {
    /// The model's input.
    Input,
    /// An earlier layer's output.
    Layer(Handle<Layer>),
}

/// One layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Layer {
    /// Its name: the label (`h1:`), or `<kind><n>` for unlabelled layers (`dense2`).
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// Per-layer regularization; each strength not given falls back to the global one.
    pub regularization: LayerRegularization,
    /// What it reads: one source for every layer kind so far (a chain reads the layer before).
    pub inputs: Vec<Source>,
}

/// What a parameter is, for naming and regularization (never on biases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ParamKind {
    /// A weight matrix `[inputs, outputs]`.
    Weight,
    /// A bias row.
    Bias,
    /// PReLU slopes.
    Slope,
}

impl ParamKind {
    /// The suffix of the parameter's name (`h1.weight`).
    pub fn suffix(self) -> &'static str {
        match self {
            ParamKind::Weight => "weight",
            ParamKind::Bias => "bias",
            ParamKind::Slope => "slope",
        }
    }
}

/// The layout of one parameter tensor of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ParamShape {
    /// What it is.
    pub kind: ParamKind,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// The kinds of layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum LayerKind {
    /// `y = act(x W + b)`.
    Dense {
        /// Output width.
        width: usize,
        /// Activation applied to the affine output.
        activation: Activation,
        /// How `W` is initialized.
        init: Init,
        /// Initial value of every bias.
        bias: f64,
    },
    /// `y_j = max_k (x W + b)_{j*pieces + k}`: a learned piecewise-linear activation.
    Maxout {
        /// Number of linear units; the output width is `units / pieces`.
        units: usize,
        /// Linear units per output.
        pieces: usize,
        /// How `W` is initialized.
        init: Init,
        /// Initial value of every bias.
        bias: f64,
        /// The last piece of every group is the constant 0 (no weights): with two pieces this is
        /// exactly relu.
        fixed_zero: bool,
    },
    /// Drops each unit with probability `rate` while training.
    Dropout {
        /// Probability of dropping a unit.
        rate: f64,
        /// Where the 1/(1-p) correction happens.
        mode: DropoutMode,
    },
}

impl Layer {
    /// The layer's output shape given its input's. The checker calls this once per layer and
    /// keeps the result (`check::Checked`); nothing else re-derives shapes.
    pub fn output_shape(&self, input: Shape) -> Shape {
        match self.kind {
            LayerKind::Dense { width, .. } => Shape::new(&[input.rows(), Dim::Fixed(width)]),
            LayerKind::Maxout { units, pieces, .. } => Shape::new(&[input.rows(), Dim::Fixed(units / pieces.max(1))]),
            LayerKind::Dropout { .. } => input,
        }
    }

    /// The layer's parameter tensors given its input's shape, in the order the graph creates
    /// them (and weight files name them).
    pub fn parameters(&self, input: Shape) -> Vec<ParamShape> {
        let inputs = input.cols();
        let affine = |units: usize| {
            vec![
                ParamShape {
                    kind: ParamKind::Weight,
                    rows: inputs,
                    cols: units,
                },
                ParamShape {
                    kind: ParamKind::Bias,
                    rows: 1,
                    cols: units,
                },
            ]
        };
        match self.kind {
            LayerKind::Dense { width, activation, .. } => {
                let mut params = affine(width);
                if matches!(activation, Activation::Prelu { .. }) {
                    params.push(ParamShape {
                        kind: ParamKind::Slope,
                        rows: 1,
                        cols: width,
                    });
                }
                params
            }
            LayerKind::Maxout { .. } => affine(self.learned_units()),
            LayerKind::Dropout { .. } => Vec::new(),
        }
    }

    /// Linear units with weights: a maxout's fixed-zero pieces have none.
    pub fn learned_units(&self) -> usize {
        match self.kind {
            LayerKind::Dense { width, .. } => width,
            LayerKind::Maxout {
                units,
                pieces,
                fixed_zero: true,
                ..
            } => units / pieces.max(1) * (pieces.max(1) - 1),
            LayerKind::Maxout { units, .. } => units,
            LayerKind::Dropout { .. } => 0,
        }
    }

    /// A short word for the kind, as written in specs.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            LayerKind::Dense { .. } => "dense",
            LayerKind::Maxout { .. } => "maxout",
            LayerKind::Dropout { .. } => "dropout",
        }
    }

    /// The activation, for dense layers.
    pub fn activation(&self) -> Option<Activation> {
        match self.kind {
            LayerKind::Dense { activation, .. } => Some(activation),
            _ => None,
        }
    }

    /// True for layers with weights (dense, maxout).
    pub fn has_weights(&self) -> bool {
        !matches!(self.kind, LayerKind::Dropout { .. })
    }
}

/// Elementwise activations.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Activation {
    /// Identity.
    Linear,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `max(0, x)`.
    Relu,
    /// `x` if positive, else `alpha x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f64,
    },
    /// Leaky ReLU whose slope is learned, one per unit.
    Prelu {
        /// Initial slope.
        initial: f64,
    },
    /// `x` if positive, else `alpha (e^x - 1)`.
    Elu {
        /// Saturation value for large negative inputs.
        alpha: f64,
    },
    /// Normalized exponentials over the row (output layers only).
    Softmax,
}

impl Activation {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Prelu { .. } => "prelu",
            Activation::Elu { .. } => "elu",
            Activation::Softmax => "softmax",
        }
    }

    /// True for activations whose gradient vanishes when the input saturates.
    pub fn saturates(self) -> bool {
        matches!(self, Activation::Sigmoid | Activation::Tanh)
    }

    /// True for the ReLU family, whose default initializer is He's.
    pub fn is_rectifier(self) -> bool {
        matches!(
            self,
            Activation::Relu | Activation::LeakyRelu { .. } | Activation::Prelu { .. } | Activation::Elu { .. }
        )
    }
}

/// Weight initializers. Biases start at the layer's `bias` value (0 by default).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Init {
    /// Normal with std `sqrt(2 / fan_in)`.
    He,
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))` (Glorot).
    Xavier,
    /// Normal with the given std.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Uniform in `[-limit, limit]`.
    Uniform {
        /// Half-width of the interval.
        limit: f64,
    },
}

impl Init {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Init::He => "he",
            Init::Xavier => "xavier",
            Init::Normal { .. } => "normal",
            Init::Uniform { .. } => "uniform",
        }
    }
}

/// Dropout's two equivalent forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DropoutMode {
    /// Scale kept units by `1/(1-p)` while training; nothing at test time.
    Inverted,
    /// The lecture's form: no scaling while training; at test time multiply by `1-p`.
    ScaleAtTest,
}

/// Losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Loss {
    /// Softmax cross-entropy over classes (output activation softmax).
    CrossEntropy,
    /// Sigmoid cross-entropy per output (output activation sigmoid).
    BinaryCrossEntropy,
    /// Mean squared error against one-hot targets.
    Mse,
}

impl Loss {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross_entropy",
            Loss::BinaryCrossEntropy => "binary_cross_entropy",
            Loss::Mse => "mse",
        }
    }
}

/// L1 and L2 strengths (0 = off). Never applied to biases.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Regularization {
    /// Adds `l1 * sum |w|` to the loss.
    pub l1: f64,
    /// Adds `l2 / 2 * sum w^2` to the loss (weight decay of `lr * l2` per step under sgd).
    pub l2: f64,
}

/// A layer's own `l1`/`l2` options, each replacing the global strength of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct LayerRegularization {
    /// The layer's L1 strength, if given.
    pub l1: Option<f64>,
    /// The layer's L2 strength, if given.
    pub l2: Option<f64>,
}

impl LayerRegularization {
    /// The strengths that apply to this layer under a global setting.
    pub fn resolve(self, global: Regularization) -> Regularization {
        Regularization {
            l1: self.l1.unwrap_or(global.l1),
            l2: self.l2.unwrap_or(global.l2),
        }
    }
}
