//! The train section: optimizer, schedule, regularization, batches, early stopping, data.

use super::Regularization;

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
    /// Random transformations of the training images, if any.
    pub augment: Option<Augment>,
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

/// Random transformations of the training images (`augment shift 2 flip`), drawn anew for every
/// sample in every epoch from the seed, the epoch and the sample's row: validation, test and
/// prediction see the images as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Augment {
    /// Largest translation in pixels along each axis (uniform in `-shift..=shift`; the pixels
    /// moved in are 0).
    pub shift: usize,
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
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

    /// One sample's shape as an image: channels, height, width.
    pub fn sample_shape(self) -> [usize; 3] {
        match self {
            NamedData::Digits => [1, 8, 8],
            NamedData::Mnist => [1, 28, 28],
        }
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        10
    }

    /// Number of samples, all splits together.
    pub fn samples(self) -> usize {
        match self {
            NamedData::Digits => 1_797,
            NamedData::Mnist => 70_000,
        }
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
