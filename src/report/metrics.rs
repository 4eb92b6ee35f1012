//! Evaluation: loss, accuracy, predicted classes, confusion matrices.

use crate::back::engine::Engine;
use crate::back::interp::Context;
use crate::data::{Dataset, targets};
use ndarray::{Array2, ArrayView1, Axis};
use serde::{Deserialize, Serialize};

/// Rows per forward pass when evaluating (bounded memory, whatever the data size).
pub const EVAL_CHUNK: usize = 1024;

/// Loss and accuracy on a data set, with the predictions.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean data loss.
    pub loss: f64,
    /// Fraction of samples whose predicted class is the label.
    pub accuracy: f64,
    /// Predicted class per sample.
    pub predictions: Vec<usize>,
}

/// The figures of an evaluation, for reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    /// Mean data loss.
    pub loss: f64,
    /// Accuracy in [0, 1].
    pub accuracy: f64,
}

impl Evaluation {
    /// Loss and accuracy only.
    pub fn figures(&self) -> Figures {
        Figures {
            loss: self.loss,
            accuracy: self.accuracy,
        }
    }
}

/// The class a row of outputs predicts: the arg-max, or `p >= 0.5` for a single output.
pub fn predicted_class(outputs: ArrayView1<f32>) -> usize {
    if outputs.len() == 1 {
        return usize::from(outputs[0] >= 0.5);
    }
    let mut best = 0;
    for (i, &v) in outputs.iter().enumerate() {
        if v > outputs[best] {
            best = i;
        }
    }
    best
}

/// Class probabilities of a row of outputs (a single sigmoid output becomes `[1 - p, p]`).
pub fn class_probabilities(outputs: ArrayView1<f32>) -> Vec<f32> {
    if outputs.len() == 1 {
        vec![1.0 - outputs[0], outputs[0]]
    } else {
        outputs.to_vec()
    }
}

/// Runs the model over features in evaluation mode, chunk by chunk; returns the outputs.
pub fn outputs(engine: &mut dyn Engine, features: &Array2<f32>) -> Array2<f32> {
    let width = engine.graph().output_width;
    let mut out = Array2::zeros((features.nrows(), width));
    let ctx = Context {
        training: false,
        step: 0,
        lr: 0.0,
    };
    for start in (0..features.nrows()).step_by(EVAL_CHUNK) {
        let end = (start + EVAL_CHUNK).min(features.nrows());
        let x = features.slice(ndarray::s![start..end, ..]);
        let t = Array2::zeros((end - start, width));
        engine.set_batch(x, t.view());
        engine.forward(&ctx);
        out.slice_mut(ndarray::s![start..end, ..]).assign(&engine.output());
    }
    out
}

/// Dropout's test-time rule (weights scaled by 1-p, or inverted dropout) against the ensemble it
/// stands for: the outputs averaged over sampled dropout masks.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct DropoutEnsemble {
    /// Masks sampled per row.
    pub samples: usize,
    /// Accuracy of the weight-scaled network.
    pub scaled_accuracy: f64,
    /// Accuracy of the averaged outputs.
    pub ensemble_accuracy: f64,
    /// Mean over rows and outputs of |ensemble - scaled|.
    pub mean_abs_difference: f64,
    /// Largest |ensemble - scaled|.
    pub max_abs_difference: f64,
    /// Mean |scaled output|: the scale the differences are measured against.
    pub mean_abs_output: f64,
    /// Fraction of rows where both predict the same class.
    pub agreement: f64,
}

/// Averages the outputs of `samples` sampled dropout masks per row and compares them with the
/// evaluation-mode outputs. Masks are drawn from the engine's seed at steps no training run
/// reaches, so the figures are deterministic.
pub fn dropout_ensemble(engine: &mut dyn Engine, data: &Dataset, samples: usize) -> DropoutEnsemble {
    let scaled = outputs(engine, &data.features);
    let width = engine.graph().output_width;
    let mut mean = Array2::<f64>::zeros(scaled.dim());
    for (chunk, start) in (0..data.len()).step_by(EVAL_CHUNK).enumerate() {
        let end = (start + EVAL_CHUNK).min(data.len());
        let x = data.features.slice(ndarray::s![start..end, ..]);
        let t = Array2::zeros((end - start, width));
        engine.set_batch(x, t.view());
        let mut sum = mean.slice_mut(ndarray::s![start..end, ..]);
        for sample in 0..samples {
            let ctx = Context {
                training: true,
                step: (1 << 48) + (chunk * samples + sample) as u64,
                lr: 0.0,
            };
            engine.forward(&ctx);
            sum.zip_mut_with(&engine.output(), |m, &o| *m += f64::from(o));
        }
    }
    mean /= samples.max(1) as f64;
    let n = data.len().max(1) as f64;
    let accuracy =
        |predictions: &[usize]| predictions.iter().zip(&data.labels).filter(|(p, l)| p == l).count() as f64 / n;
    let scaled_classes: Vec<usize> = scaled.axis_iter(Axis(0)).map(predicted_class).collect();
    let mean_f32 = mean.mapv(|v| v as f32);
    let ensemble_classes: Vec<usize> = mean_f32.axis_iter(Axis(0)).map(predicted_class).collect();
    let (mut sum_diff, mut max_diff, mut sum_abs) = (0.0f64, 0.0f64, 0.0f64);
    for (&m, &s) in mean.iter().zip(&scaled) {
        let d = (m - f64::from(s)).abs();
        sum_diff += d;
        max_diff = max_diff.max(d);
        sum_abs += f64::from(s).abs();
    }
    let values = scaled.len().max(1) as f64;
    DropoutEnsemble {
        samples,
        scaled_accuracy: accuracy(&scaled_classes),
        ensemble_accuracy: accuracy(&ensemble_classes),
        mean_abs_difference: sum_diff / values,
        max_abs_difference: max_diff,
        mean_abs_output: sum_abs / values,
        agreement: scaled_classes
            .iter()
            .zip(&ensemble_classes)
            .filter(|(a, b)| a == b)
            .count() as f64
            / n,
    }
}

/// Loss and accuracy of the model on a data set, in evaluation mode (no dropout).
pub fn evaluate(engine: &mut dyn Engine, data: &Dataset) -> Evaluation {
    let width = engine.graph().output_width;
    let ctx = Context {
        training: false,
        step: 0,
        lr: 0.0,
    };
    let mut loss_sum = 0.0;
    let mut predictions = Vec::with_capacity(data.len());
    for start in (0..data.len()).step_by(EVAL_CHUNK) {
        let end = (start + EVAL_CHUNK).min(data.len());
        let x = data.features.slice(ndarray::s![start..end, ..]);
        let t = targets(&data.labels[start..end], width);
        engine.set_batch(x, t.view());
        loss_sum += engine.forward(&ctx) * (end - start) as f64;
        let out = engine.output();
        predictions.extend(out.axis_iter(Axis(0)).map(predicted_class));
    }
    let correct = predictions.iter().zip(&data.labels).filter(|(p, l)| p == l).count();
    let n = data.len().max(1) as f64;
    Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        predictions,
    }
}

/// A confusion matrix: `counts[label][predicted]`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Confusion {
    /// Rows: true class; columns: predicted class.
    pub counts: Vec<Vec<usize>>,
}

/// Precision and recall of one class.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ClassFigures {
    /// The class.
    pub class: usize,
    /// Of the samples predicted as this class, the fraction that are (0 when none predicted).
    pub precision: f64,
    /// Of the samples of this class, the fraction predicted as it (0 when none).
    pub recall: f64,
    /// Samples of this class.
    pub support: usize,
}

impl Confusion {
    /// Counts predictions against labels.
    pub fn new(predictions: &[usize], labels: &[usize], classes: usize) -> Confusion {
        let n = classes.max(predictions.iter().chain(labels).max().map_or(0, |m| m + 1));
        let mut counts = vec![vec![0; n]; n];
        for (&p, &l) in predictions.iter().zip(labels) {
            counts[l][p] += 1;
        }
        Confusion { counts }
    }

    /// Precision and recall per class.
    pub fn per_class(&self) -> Vec<ClassFigures> {
        let n = self.counts.len();
        (0..n)
            .map(|c| {
                let tp = self.counts[c][c] as f64;
                let predicted: usize = (0..n).map(|l| self.counts[l][c]).sum();
                let support: usize = self.counts[c].iter().sum();
                ClassFigures {
                    class: c,
                    precision: if predicted > 0 { tp / predicted as f64 } else { 0.0 },
                    recall: if support > 0 { tp / support as f64 } else { 0.0 },
                    support,
                }
            })
            .collect()
    }

    /// The matrix as aligned text.
    pub fn render(&self) -> String {
        let n = self.counts.len();
        let width = self
            .counts
            .iter()
            .flatten()
            .map(|c| c.to_string().len())
            .max()
            .unwrap_or(1)
            .max(n.to_string().len())
            .max(3);
        let mut out = format!("{:>w$} |", "true", w = width + 1);
        for p in 0..n {
            out.push_str(&format!(" {p:>width$}"));
        }
        out.push('\n');
        out.push_str(&"-".repeat((width + 1) * (n + 1) + 2));
        out.push('\n');
        for (l, row) in self.counts.iter().enumerate() {
            out.push_str(&format!("{l:>w$} |", w = width + 1));
            for c in row {
                out.push_str(&format!(" {c:>width$}"));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_and_recall() {
        let c = Confusion::new(&[0, 0, 1, 1, 1], &[0, 1, 1, 1, 0], 2);
        assert_eq!(c.counts, vec![vec![1, 1], vec![1, 2]]);
        let f = c.per_class();
        assert_eq!(f[0].precision, 0.5);
        assert_eq!(f[1].recall, 2.0 / 3.0);
    }

    #[test]
    fn single_output_is_thresholded() {
        assert_eq!(predicted_class(ndarray::arr1(&[0.7f32]).view()), 1);
        assert_eq!(class_probabilities(ndarray::arr1(&[0.25f32]).view()), vec![0.75, 0.25]);
    }
}
