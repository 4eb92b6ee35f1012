//! `netc diagnose RUN_DIR`: the lecture's procedure applied to a finished run.
//!
//! First look at the training results. If they are poor, the problem is not overfitting:
//! suggest relu/maxout for saturating layers, an adaptive optimizer or momentum, point at
//! vanishing gradients when the gradient statistics show them, and say that dropout makes
//! training results worse. Only when training results are good, compare with validation: a gap
//! is overfitting, against which early stopping, L2/L1 and dropout help. Every finding cites the
//! figures it rests on.

use crate::check::Limits;
use crate::diag::{Code, Diagnostic, Failure};
use crate::ir::{Activation, LayerKind, OptimizerKind, Program};
use crate::run::artifacts::{self, EpochRecord};
use serde::Serialize;
use std::path::Path;

/// Training accuracy below which training results count as poor.
pub const POOR_TRAINING: f64 = 0.90;
/// Training minus validation accuracy above which a run counts as overfitting.
pub const OVERFITTING_GAP: f64 = 0.03;
/// Relative rise of the validation loss above its minimum that counts as overfitting.
pub const LOSS_RISE: f64 = 0.10;
/// First-layer over last-layer mean |gradient| below which gradients count as vanishing.
pub const VANISHING_RATIO: f64 = 1e-2;

/// One conclusion, with its evidence and advice.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// `poor_training`, `vanishing_gradients`, `dropout_hurts_training`, `overfitting`,
    /// `no_validation` or `healthy`.
    pub kind: String,
    /// The conclusion in one sentence.
    pub summary: String,
    /// The figures it rests on.
    pub evidence: Vec<String>,
    /// What to change.
    pub advice: Vec<String>,
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// What the diagnosis rests on: the run's figures and the model's facts.
struct Run {
    /// Every finished epoch.
    epochs: Vec<EpochRecord>,
    /// Final training accuracy (of the report, else of the last epoch).
    train_accuracy: f64,
    /// Final validation accuracy, if there is validation data.
    val_accuracy: Option<f64>,
    /// Hidden dense layers with sigmoid or tanh.
    saturating: Vec<String>,
    /// Dropout layers and their rates (above 0).
    dropout: Vec<(String, f64)>,
    /// Plain sgd.
    sgd: bool,
    /// Any L1 or L2, global or per layer.
    regularized: bool,
    /// Early stopping is on.
    early_stop: bool,
    /// Early stopping puts back the best epoch's weights.
    restores_best: bool,
    /// The input is an image and training does not augment it.
    unaugmented_images: bool,
}

/// Diagnoses the run in `dir`: reads its typed artifacts, and learns the model by compiling
/// the run's `spec.net` with its overrides.
pub fn diagnose(dir: &Path) -> Result<Vec<Finding>, Failure> {
    let epochs = artifacts::read_metrics(dir)?;
    let settings = artifacts::read_settings(dir)?;
    let report = artifacts::read_report(dir)?;
    let program = trained_program(dir, &settings)?;
    let last = epochs.last().expect("read_metrics returns at least one epoch");
    let train_accuracy = report.as_ref().map_or(last.train_accuracy, |r| r.train.accuracy);
    let val_accuracy = report
        .as_ref()
        .and_then(|r| r.validation)
        .map(|f| f.accuracy)
        .or(last.val_accuracy);
    let run = Run {
        train_accuracy,
        val_accuracy,
        saturating: saturating_layers(&program),
        dropout: program
            .model
            .layers
            .values()
            .filter_map(|l| match l.kind {
                LayerKind::Dropout { rate, .. } if rate > 0.0 => Some((l.name.clone(), rate)),
                _ => None,
            })
            .collect(),
        sgd: matches!(program.train.optimizer.kind, OptimizerKind::Sgd),
        regularized: program.train.regularization.l1 > 0.0
            || program.train.regularization.l2 > 0.0
            || program
                .model
                .layers
                .values()
                .any(|l| l.regularization.l1.is_some() || l.regularization.l2.is_some()),
        early_stop: program.train.early_stop.is_some(),
        restores_best: program.train.early_stop.is_some_and(|e| e.restore_best),
        unaugmented_images: program.model.input.len() == 3 && program.train.augment.is_none(),
        epochs,
    };
    Ok(findings(&run))
}

/// The run's program: `spec.net` with the overrides of `settings.json`, through the front end
/// and the checker (without a memory limit: the run was trained, whatever this machine has).
fn trained_program(dir: &Path, settings: &artifacts::Settings) -> Result<Program, Failure> {
    let path = dir.join(artifacts::SPEC);
    // Through the one spec reader (size limit, binary files, byte-order mark); a spec.net that
    // cannot be read is a problem of the run directory.
    let text = crate::run::spec::read_spec(&path).map_err(|mut d| {
        d.code = Code::BadRunDirectory;
        d.hint = Some("put back the run's spec.net, or retrain".to_string());
        d
    })?;
    let limits = Limits { memory_bytes: u64::MAX };
    let loaded = crate::run::spec::compile_spec(&path.display().to_string(), text, &settings.overrides, &limits)
        .map_err(|mut failure| {
            failure.conclusion = None;
            failure.diagnostics.push(
                Diagnostic::general(
                    Code::BadRunDirectory,
                    format!("`{}` does not compile with this netc", path.display()),
                )
                .in_file(&path)
                .with_hint("retrain with `netc train` to write a run directory this netc can read"),
            );
            failure
        })?;
    if loaded.run.spec_hash() != settings.spec_hash {
        return Err(Diagnostic::general(
            Code::BadRunDirectory,
            format!(
                "`{}` is not the spec the run was trained from (its hash differs from settings.json's)",
                path.display()
            ),
        )
        .in_file(&path)
        .with_hint("put back the run's spec.net, or retrain")
        .into());
    }
    Ok(loaded.run.program().clone())
}

/// Hidden dense layers with a saturating activation (sigmoid, tanh): every layer but the last.
fn saturating_layers(program: &Program) -> Vec<String> {
    let layers: Vec<_> = program.model.layers.values().collect();
    let hidden = &layers[..layers.len().saturating_sub(1)];
    hidden
        .iter()
        .filter(|l| matches!(l.activation(), Some(Activation::Sigmoid | Activation::Tanh)))
        .map(|l| l.name.clone())
        .collect()
}

/// The lecture's procedure: training results first; only when they are good, the validation
/// gap.
fn findings(run: &Run) -> Vec<Finding> {
    if run.train_accuracy < POOR_TRAINING {
        return poor_training(run);
    }
    let Some(val_accuracy) = run.val_accuracy else {
        return vec![Finding {
            kind: "no_validation".to_string(),
            summary: "Training results are good, but without validation data overfitting cannot be judged.".to_string(),
            evidence: vec![format!("training accuracy {}", percent(run.train_accuracy))],
            advice: vec!["add a validation split to `data`, e.g. `validation 10%`".to_string()],
        }];
    };
    if let Some(finding) = overfitting(run, val_accuracy) {
        return vec![finding];
    }
    vec![Finding {
        kind: "healthy".to_string(),
        summary:
            "Training and validation results are both good; nothing in the lecture's procedure calls for a change."
                .to_string(),
        evidence: vec![format!(
            "training accuracy {}, validation {}",
            percent(run.train_accuracy),
            percent(val_accuracy)
        )],
        advice: Vec::new(),
    }]
}

/// Poor training results: what to change, vanishing gradients if the statistics show them, and
/// dropout making things worse.
fn poor_training(run: &Run) -> Vec<Finding> {
    let (first, last) = (&run.epochs[0], &run.epochs[run.epochs.len() - 1]);
    let epochs = run.epochs.len();
    let mut advice = Vec::new();
    if !run.saturating.is_empty() {
        advice.push(format!(
            "replace sigmoid/tanh in the hidden layers ({}) with relu, leaky_relu or maxout, with `init he`",
            run.saturating.join(", ")
        ));
    }
    if run.sgd {
        advice.push("use an adaptive learning rate (`optimizer adam lr 1e-3` or rmsprop), or add momentum (`optimizer momentum lambda 0.9`)".to_string());
    }
    if advice.is_empty() {
        advice.push("train longer, raise the learning rate, or make the network larger: the model does not yet fit its own training data".to_string());
    }
    let mut findings = vec![Finding {
        kind: "poor_training".to_string(),
        summary: "Training results are poor: this is not overfitting, the network does not fit its own training data."
            .to_string(),
        evidence: vec![format!(
            "training accuracy {} after {epochs} epoch{} (training loss {:.4} in epoch 1, {:.4} in epoch {epochs})",
            percent(run.train_accuracy),
            if epochs == 1 { "" } else { "s" },
            first.train_loss,
            last.train_loss
        )],
        advice,
    }];
    let grads = &last.grad_stats;
    if let (Some(first_layer), Some(last_layer)) = (grads.first(), grads.last())
        && grads.len() > 1
        && last_layer.mean_abs_grad > 0.0
        && first_layer.mean_abs_grad / last_layer.mean_abs_grad < VANISHING_RATIO
    {
        let (g_first, g_last) = (first_layer.mean_abs_grad, last_layer.mean_abs_grad);
        findings.push(Finding {
            kind: "vanishing_gradients".to_string(),
            summary: "The gradients vanish on their way to the input: the first layers barely learn.".to_string(),
            evidence: vec![format!(
                "in epoch {epochs}, mean |gradient| of `{}`'s weights is {g_first:.2e}, of `{}`'s {g_last:.2e}: {:.0} times smaller",
                first_layer.layer,
                last_layer.layer,
                g_last / g_first.max(1e-300)
            )],
            advice: vec!["use relu (or maxout) hidden layers with `init he`; sigmoid shrinks the gradient at every layer it passes".to_string()],
        });
    }
    if !run.dropout.is_empty() {
        findings.push(Finding {
            kind: "dropout_hurts_training".to_string(),
            summary: "Dropout makes training results worse, and they are already poor.".to_string(),
            evidence: run
                .dropout
                .iter()
                .map(|(n, r)| format!("`{n}` drops {}% of its units while training", (r * 100.0).round()))
                .collect(),
            advice: vec![
                "remove the dropout layers until training results are good; add them back only against overfitting"
                    .to_string(),
            ],
        });
    }
    findings
}

/// Good training results but worse validation ones (a gap, or a validation loss that rose).
fn overfitting(run: &Run, val_accuracy: f64) -> Option<Finding> {
    let epochs = run.epochs.len();
    let last = &run.epochs[epochs - 1];
    let gap = run.train_accuracy - val_accuracy;
    let val_losses: Vec<(usize, f64)> = run
        .epochs
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.val_loss.map(|v| (i + 1, v)))
        .collect();
    let best = val_losses.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
    // With restore_best the result is the best epoch's weights: a later rise is already handled.
    let rose = !run.restores_best
        && match (best, last.val_loss) {
            (Some((_, b)), Some(l)) => l > b * (1.0 + LOSS_RISE),
            _ => false,
        };
    if !(gap > OVERFITTING_GAP || rose) {
        return None;
    }
    let mut evidence = vec![format!(
        "training accuracy {}, validation {} (a gap of {:.1} points)",
        percent(run.train_accuracy),
        percent(val_accuracy),
        gap * 100.0
    )];
    if let (Some((epoch, b)), Some(l)) = (best, last.val_loss)
        && rose
    {
        evidence.push(format!(
            "validation loss was lowest in epoch {epoch} ({b:.4}) and is {l:.4} in epoch {epochs}"
        ));
    }
    let mut advice = Vec::new();
    if !run.early_stop {
        advice.push("stop early on validation loss: `early_stop val_loss patience 3 restore_best`".to_string());
    }
    if !run.regularized {
        advice.push("add weight decay: `regularize l2 1e-4` (or l1 for sparse weights)".to_string());
    }
    if run.dropout.is_empty() {
        advice.push(
            "add dropout between hidden layers, e.g. `dropout 0.3` (an implicit ensemble of thinned networks)"
                .to_string(),
        );
    }
    if run.unaugmented_images {
        advice.push(
            "show the network moved images: `augment shift 2` (random translations; add `flip` for photographs)"
                .to_string(),
        );
    }
    if advice.is_empty() {
        advice.push("strengthen what is there (higher dropout rate or L2), or get more training data".to_string());
    }
    Some(Finding {
        kind: "overfitting".to_string(),
        summary: "Training results are good but validation results are worse: the network overfits.".to_string(),
        evidence,
        advice,
    })
}

/// The findings as text.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for (i, f) in findings.iter().enumerate() {
        out.push_str(&format!("{}. {}\n", i + 1, f.summary));
        for e in &f.evidence {
            out.push_str(&format!("   - {e}\n"));
        }
        if !f.advice.is_empty() {
            out.push_str("   Try:\n");
            for a in &f.advice {
                out.push_str(&format!("   - {a}\n"));
            }
        }
    }
    out
}
