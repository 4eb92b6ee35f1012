//! Stage 2: the typed model.
//!
//! [`lower`] turns a syntax tree into a [`Program`]: constants substituted, `repeat` and block
//! calls expanded, every value type-checked and range-checked against the statement schemas in
//! [`schema`], defaults filled in. Layers live in an [`Arena`]; the source spans of their fields
//! live beside them in [`Spans`], so the IR itself stays plain data that backends can copy.

pub mod arena;
pub mod shape;

pub use arena::{Arena, Handle};
pub use shape::{Dim, MAX_RANK, Shape};

use crate::diag::source::Span;
use std::collections::HashMap;

/// A whole spec: the model and how to train it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Program {
    /// The network.
    pub model: Model,
    /// How it is trained.
    pub train: TrainConfig,
}

/// The network: an input width, layers in order, and a loss on the last one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Model {
    /// The name after `model`.
    pub name: String,
    /// Number of input features.
    pub input_width: usize,
    /// Layers from input to output.
    pub layers: Arena<Layer>,
    /// The loss applied to the last layer's output.
    pub loss: Loss,
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
    /// The layer's output width given its input width.
    pub fn output_width(&self, input: usize) -> usize {
        match self.kind {
            LayerKind::Dense { width, .. } => width,
            LayerKind::Maxout { units, pieces, .. } => units / pieces.max(1),
            LayerKind::Dropout { .. } => input,
        }
    }

    /// Number of trainable scalars given the input width.
    pub fn parameter_count(&self, input: usize) -> u128 {
        match &self.kind {
            LayerKind::Dense { width, activation, .. } => {
                let slope = if matches!(activation, Activation::Prelu { .. }) {
                    *width
                } else {
                    0
                };
                (input as u128 + 1) * *width as u128 + slope as u128
            }
            LayerKind::Maxout { .. } => (input as u128 + 1) * self.learned_units() as u128,
            LayerKind::Dropout { .. } => 0,
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

/// The train section.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrainConfig {
    /// Where the data comes from.
    pub data: DataConfig,
    /// How parameters are updated.
    pub optimizer: Optimizer,
    /// How the learning rate changes by epoch.
    pub schedule: Schedule,
    /// Global regularization (layers may override it).
    pub regularization: Regularization,
    /// Samples per step.
    pub batch: usize,
    /// Maximum number of passes over the training data.
    pub epochs: usize,
    /// Seed for initialization, shuffling and dropout masks.
    pub seed: u64,
    /// Early stopping, if any.
    pub early_stop: Option<EarlyStop>,
}

/// Optimizers and their settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Optimizer {
    /// Which one.
    pub kind: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
}

/// The optimizer families.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum OptimizerKind {
    /// `w -= lr * g`.
    Sgd,
    /// `v = lambda v - lr g; w += v`.
    Momentum {
        /// Momentum coefficient.
        lambda: f64,
    },
    /// Momentum with the gradient taken at the look-ahead point.
    Nesterov {
        /// Momentum coefficient.
        lambda: f64,
    },
    /// `s += g^2; w -= lr g / (sqrt(s) + eps)`.
    Adagrad {
        /// Added to the denominator.
        eps: f64,
    },
    /// `s = alpha s + (1 - alpha) g^2; w -= lr g / (sqrt(s) + eps)`.
    Rmsprop {
        /// Decay of the squared-gradient average.
        alpha: f64,
        /// Added to the denominator.
        eps: f64,
    },
    /// Adam with bias correction.
    Adam {
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
    },
}

impl OptimizerKind {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Momentum { .. } => "momentum",
            OptimizerKind::Nesterov { .. } => "nesterov",
            OptimizerKind::Adagrad { .. } => "adagrad",
            OptimizerKind::Rmsprop { .. } => "rmsprop",
            OptimizerKind::Adam { .. } => "adam",
        }
    }

    /// Optimizer state tensors kept per parameter tensor.
    pub fn state_slots(self) -> usize {
        match self {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Momentum { .. }
            | OptimizerKind::Nesterov { .. }
            | OptimizerKind::Adagrad { .. }
            | OptimizerKind::Rmsprop { .. } => 1,
            OptimizerKind::Adam { .. } => 2,
        }
    }
}

/// Learning-rate schedules, applied per epoch (epoch 0 uses the base rate).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `lr * gamma^(floor(epoch / every))`.
    Step {
        /// Epochs between drops.
        every: usize,
        /// Factor per drop.
        gamma: f64,
    },
    /// `lr * gamma^epoch`.
    Exponential {
        /// Factor per epoch.
        gamma: f64,
    },
}

impl Schedule {
    /// The learning rate for a 0-based epoch.
    pub fn rate(self, base: f64, epoch: usize) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
        }
    }
}

/// Early stopping on a validation metric.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EarlyStop {
    /// What is watched.
    pub metric: Metric,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Put back the best epoch's weights at the end.
    pub restore_best: bool,
}

/// Metrics early stopping can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Metric {
    /// Validation loss (lower is better).
    ValLoss,
    /// Validation accuracy (higher is better).
    ValAccuracy,
}

impl Metric {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ValLoss => "val_loss",
            Metric::ValAccuracy => "val_accuracy",
        }
    }
}

/// The data statement.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DataConfig {
    /// The training data.
    pub source: DataSource,
    /// How validation data is obtained.
    pub validation: Validation,
    /// Test data for files (named data sets bring their own).
    pub test: Option<FileSet>,
    /// How features are scaled.
    pub normalize: Normalize,
}

/// Named data sets and files.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum DataSource {
    /// A data set netc knows by name.
    Named(NamedData),
    /// Files on disk.
    Files(FileSet),
}

/// The data sets netc knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum NamedData {
    /// UCI 8x8 digits, built into the binary: 64 features, 10 classes.
    Digits,
    /// MNIST, read from the data directory: 784 features, 10 classes.
    Mnist,
}

impl NamedData {
    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        match self {
            NamedData::Digits => "digits",
            NamedData::Mnist => "mnist",
        }
    }

    /// Number of input features.
    pub fn features(self) -> usize {
        match self {
            NamedData::Digits => 64,
            NamedData::Mnist => 784,
        }
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        10
    }
}

/// Feature (and label) files.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileSet {
    /// Path of the features (CSV with labels in a column, IDX or NPY).
    pub features: String,
    /// Path of the labels, for IDX and NPY features.
    pub labels: Option<String>,
    /// Which CSV column holds the label.
    pub label_column: LabelColumn,
    /// Whether the CSV's first row is a header.
    pub header: bool,
}

/// Where a CSV's label is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LabelColumn {
    /// Column 0.
    First,
    /// The last column.
    Last,
    /// A 0-based column index.
    Index(usize),
}

/// Validation data.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Validation {
    /// No validation data.
    None,
    /// The last N training rows.
    Count(usize),
    /// The last fraction of the training rows.
    Fraction(f64),
    /// A separate file set.
    Files(FileSet),
}

impl Validation {
    /// True when some validation data is configured.
    pub fn is_some(&self) -> bool {
        !matches!(self, Validation::None | Validation::Count(0))
            && !matches!(self, Validation::Fraction(f) if *f == 0.0)
    }
}

/// Feature scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Normalize {
    /// Features as read.
    None,
    /// Divide by the training set's largest absolute value, so features are in [-1, 1].
    Scale,
    /// Subtract the training mean and divide by the training standard deviation, per feature.
    Standard,
}

/// Source spans of one statement's values, by slot name; the statement's span as fallback.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotSpans {
    /// The whole statement (or the block call / repeat that produced it).
    pub statement: Span,
    /// Spans of the values that were written, by slot name.
    pub slots: HashMap<&'static str, Span>,
}

impl SlotSpans {
    /// The span of a slot's value, or of the statement when the value was a default.
    pub fn get(&self, slot: &str) -> Span {
        self.slots.get(slot).copied().unwrap_or(self.statement)
    }

    /// True when the slot was written (or set with `--set`).
    pub fn has(&self, slot: &str) -> bool {
        self.slots.contains_key(slot)
    }
}

/// Source spans for a [`Program`], kept beside it.
#[derive(Debug, Clone, Default)]
pub struct Spans {
    /// The `model` statement's name (or head).
    pub model: Span,
    /// The input statement.
    pub input: SlotSpans,
    /// One entry per layer, indexed like `Model::layers`.
    pub layers: Vec<SlotSpans>,
    /// The loss statement.
    pub loss: SlotSpans,
    /// The `train` statement's head.
    pub train: Span,
    /// Train statements by head word (`optimizer`, `data`, ...).
    pub settings: HashMap<&'static str, SlotSpans>,
}

impl Spans {
    /// The spans of one layer.
    pub fn layer(&self, handle: Handle<Layer>) -> &SlotSpans {
        &self.layers[handle.index()]
    }

    /// The spans of one train statement (the train head when it was not written).
    pub fn setting(&self, head: &str) -> SlotSpans {
        self.settings.get(head).cloned().unwrap_or(SlotSpans {
            statement: self.train,
            slots: HashMap::new(),
        })
    }
}

/// The file formats netc reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values, labels in a column.
    Csv,
    /// LeCun's IDX (MNIST's format).
    Idx,
    /// NumPy's `.npy`.
    Npy,
}

/// The format of a data file, from its name (a `.gz` ending is looked through).
pub fn file_format(path: &str) -> Option<FileFormat> {
    let lower = path.to_ascii_lowercase();
    let name = lower.strip_suffix(".gz").unwrap_or(&lower);
    if name.ends_with(".csv") {
        Some(FileFormat::Csv)
    } else if name.ends_with(".npy") {
        Some(FileFormat::Npy)
    } else if name.ends_with(".idx") || name.ends_with("-ubyte") || name.contains(".idx") {
        Some(FileFormat::Idx)
    } else {
        None
    }
}
