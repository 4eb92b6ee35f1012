//! What training measured, epoch by epoch: the records behind `metrics.csv` and the curves.

use serde::{Deserialize, Serialize};

/// One epoch of training (one row of `metrics.csv`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (dropout on).
    pub train_loss: f64,
    /// Training accuracy over the epoch's steps (dropout on).
    pub train_accuracy: f64,
    /// Validation loss, if there is validation data.
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// The learning rate used.
    pub lr: f64,
    /// Seconds the epoch's training steps took.
    pub seconds: f64,
    /// Per-layer gradient statistics, with `--grad-stats`.
    #[serde(default)]
    pub grad_stats: Vec<LayerGradStats>,
}

/// How much one layer's weights were pushed in an epoch: the lecture's picture of vanishing
/// gradients is small values near the input and large ones near the output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerGradStats {
    /// The layer.
    pub layer: String,
    /// Mean over the epoch's steps of the mean absolute gradient of the layer's weights.
    pub mean_abs_grad: f64,
    /// Mean over the epoch's steps of |update| / |weights| (Euclidean norms).
    pub update_ratio: f64,
}
