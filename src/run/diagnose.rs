//! `netc diagnose RUN_DIR`: the lecture's procedure applied to a finished run.
//!
//! First look at the training results. If they are poor, the problem is not overfitting:
//! suggest relu/maxout for saturating layers, an adaptive optimizer or momentum, point at
//! vanishing gradients when the gradient statistics show them, and say that dropout makes
//! training results worse. Only when training results are good, compare with validation: a gap
//! is overfitting, against which early stopping, L2/L1 and dropout help. Every finding cites the
//! figures it rests on.

use crate::error::UserError;
use serde::Serialize;
use serde_json::Value;
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

struct Epoch {
    train_loss: f64,
    train_accuracy: f64,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    grads: Vec<(String, f64)>,
}

fn read(dir: &Path, name: &str) -> Result<String, UserError> {
    std::fs::read_to_string(dir.join(name)).map_err(|e| {
        UserError::new(format!("cannot read `{}`: {e}", dir.join(name).display()))
            .hint("pass a run directory written by `netc train` (it holds metrics.csv, report.json and settings.json)")
    })
}

fn parse_metrics(text: &str, path: &Path) -> Result<Vec<Epoch>, UserError> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let bad = |row: usize| {
        UserError::new(format!(
            "`{}`, row {row}: not a metrics row written by netc",
            path.display()
        ))
        .hint("rerun `netc train` to rewrite the run directory")
    };
    let (Some(tl), Some(ta), Some(vl), Some(va)) = (
        column("train_loss"),
        column("train_accuracy"),
        column("val_loss"),
        column("val_accuracy"),
    ) else {
        return Err(bad(1));
    };
    let grad_columns: Vec<(String, usize)> = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.strip_prefix("grad_").map(|l| (l.to_string(), i)))
        .collect();
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let number = |c: usize| cells.get(c).and_then(|v| v.parse::<f64>().ok());
        out.push(Epoch {
            train_loss: number(tl).ok_or_else(|| bad(i + 2))?,
            train_accuracy: number(ta).ok_or_else(|| bad(i + 2))?,
            val_loss: number(vl),
            val_accuracy: number(va),
            grads: grad_columns
                .iter()
                .filter_map(|(l, c)| number(*c).map(|g| (l.clone(), g)))
                .collect(),
        });
    }
    if out.is_empty() {
        return Err(UserError::new(format!("`{}` holds no epochs", path.display()))
            .hint("the run stopped before its first epoch ended"));
    }
    Ok(out)
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Diagnoses the run in `dir`.
pub fn diagnose(dir: &Path) -> Result<Vec<Finding>, UserError> {
    let metrics = parse_metrics(&read(dir, "metrics.csv")?, &dir.join("metrics.csv"))?;
    let settings: Value = serde_json::from_str(&read(dir, "settings.json")?).map_err(|e| {
        UserError::new(format!(
            "`{}` is not valid JSON: {e}",
            dir.join("settings.json").display()
        ))
        .hint("rerun `netc train`")
    })?;
    let report: Option<Value> = read(dir, "report.json")
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let program = &settings["program"];
    let layers = program["model"]["layers"].as_array().cloned().unwrap_or_default();
    let train = &program["train"];
    let last = metrics.last().expect("parse_metrics returns at least one epoch");
    let epochs = metrics.len();
    let train_accuracy = report
        .as_ref()
        .and_then(|r| r["train"]["accuracy"].as_f64())
        .unwrap_or(last.train_accuracy);
    let val_accuracy = report
        .as_ref()
        .and_then(|r| r["validation"]["accuracy"].as_f64())
        .or(last.val_accuracy);

    let dense_activation = |l: &Value| -> Option<String> {
        let a = &l["kind"]["Dense"]["activation"];
        a.as_str()
            .map(str::to_string)
            .or_else(|| a.as_object().and_then(|o| o.keys().next().cloned()))
    };
    let hidden = &layers[..layers.len().saturating_sub(1)];
    let saturating: Vec<String> = hidden
        .iter()
        .filter(|l| matches!(dense_activation(l).as_deref(), Some("Sigmoid") | Some("Tanh")))
        .map(|l| l["name"].as_str().unwrap_or("?").to_string())
        .collect();
    let dropout: Vec<(String, f64)> = layers
        .iter()
        .filter_map(|l| {
            l["kind"]["Dropout"]["rate"]
                .as_f64()
                .map(|r| (l["name"].as_str().unwrap_or("?").to_string(), r))
        })
        .filter(|(_, r)| *r > 0.0)
        .collect();
    let optimizer = train["optimizer"]["kind"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            train["optimizer"]["kind"]
                .as_object()
                .and_then(|o| o.keys().next().cloned())
        })
        .unwrap_or_default()
        .to_lowercase();
    let regularized = train["regularization"]["l1"].as_f64().unwrap_or(0.0) > 0.0
        || train["regularization"]["l2"].as_f64().unwrap_or(0.0) > 0.0
        || layers
            .iter()
            .any(|l| l["regularization"]["l1"].as_f64().is_some() || l["regularization"]["l2"].as_f64().is_some());
    let early_stop = !train["early_stop"].is_null();
    // With restore_best the result is the best epoch's weights: a later rise is already handled.
    let restores_best = train["early_stop"]["restore_best"].as_bool().unwrap_or(false);

    let mut findings = Vec::new();
    if train_accuracy < POOR_TRAINING {
        let first = &metrics[0];
        let mut advice = Vec::new();
        if !saturating.is_empty() {
            advice.push(format!(
                "replace sigmoid/tanh in the hidden layers ({}) with relu, leaky_relu or maxout, with `init he`",
                saturating.join(", ")
            ));
        }
        if optimizer == "sgd" {
            advice.push("use an adaptive learning rate (`optimizer adam lr 1e-3` or rmsprop), or add momentum (`optimizer momentum lambda 0.9`)".to_string());
        }
        if advice.is_empty() {
            advice.push("train longer, raise the learning rate, or make the network larger: the model does not yet fit its own training data".to_string());
        }
        findings.push(Finding {
            kind: "poor_training".to_string(),
            summary:
                "Training results are poor: this is not overfitting, the network does not fit its own training data."
                    .to_string(),
            evidence: vec![format!(
                "training accuracy {} after {epochs} epoch{} (training loss {:.4} in epoch 1, {:.4} in epoch {epochs})",
                percent(train_accuracy),
                if epochs == 1 { "" } else { "s" },
                first.train_loss,
                last.train_loss
            )],
            advice,
        });
        if let (Some((first_layer, g_first)), Some((last_layer, g_last))) = (last.grads.first(), last.grads.last())
            && last.grads.len() > 1
            && *g_last > 0.0
            && g_first / g_last < VANISHING_RATIO
        {
            findings.push(Finding {
                kind: "vanishing_gradients".to_string(),
                summary: "The gradients vanish on their way to the input: the first layers barely learn.".to_string(),
                evidence: vec![format!(
                    "in epoch {epochs}, mean |gradient| of `{first_layer}`'s weights is {g_first:.2e}, of `{last_layer}`'s {g_last:.2e}: {:.0} times smaller",
                    g_last / g_first.max(1e-300)
                )],
                advice: vec!["use relu (or maxout) hidden layers with `init he`; sigmoid shrinks the gradient at every layer it passes".to_string()],
            });
        }
        if !dropout.is_empty() {
            findings.push(Finding {
                kind: "dropout_hurts_training".to_string(),
                summary: "Dropout makes training results worse, and they are already poor.".to_string(),
                evidence: dropout
                    .iter()
                    .map(|(n, r)| format!("`{n}` drops {}% of its units while training", (r * 100.0).round()))
                    .collect(),
                advice: vec![
                    "remove the dropout layers until training results are good; add them back only against overfitting"
                        .to_string(),
                ],
            });
        }
        return Ok(findings);
    }

    let Some(val_accuracy) = val_accuracy else {
        findings.push(Finding {
            kind: "no_validation".to_string(),
            summary: "Training results are good, but without validation data overfitting cannot be judged.".to_string(),
            evidence: vec![format!("training accuracy {}", percent(train_accuracy))],
            advice: vec!["add a validation split to `data`, e.g. `validation 10%`".to_string()],
        });
        return Ok(findings);
    };
    let gap = train_accuracy - val_accuracy;
    let val_losses: Vec<(usize, f64)> = metrics
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.val_loss.map(|v| (i + 1, v)))
        .collect();
    let best = val_losses.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
    let rose = !restores_best
        && match (best, last.val_loss) {
            (Some((_, b)), Some(l)) => l > b * (1.0 + LOSS_RISE),
            _ => false,
        };
    if gap > OVERFITTING_GAP || rose {
        let mut evidence = vec![format!(
            "training accuracy {}, validation {} (a gap of {:.1} points)",
            percent(train_accuracy),
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
        if !early_stop {
            advice.push("stop early on validation loss: `early_stop val_loss patience 3 restore_best`".to_string());
        }
        if !regularized {
            advice.push("add weight decay: `regularize l2 1e-4` (or l1 for sparse weights)".to_string());
        }
        if dropout.is_empty() {
            advice.push(
                "add dropout between hidden layers, e.g. `dropout 0.3` (an implicit ensemble of thinned networks)"
                    .to_string(),
            );
        }
        if advice.is_empty() {
            advice.push("strengthen what is there (higher dropout rate or L2), or get more training data".to_string());
        }
        findings.push(Finding {
            kind: "overfitting".to_string(),
            summary: "Training results are good but validation results are worse: the network overfits.".to_string(),
            evidence,
            advice,
        });
        return Ok(findings);
    }
    findings.push(Finding {
        kind: "healthy".to_string(),
        summary:
            "Training and validation results are both good; nothing in the lecture's procedure calls for a change."
                .to_string(),
        evidence: vec![format!(
            "training accuracy {}, validation {}",
            percent(train_accuracy),
            percent(val_accuracy)
        )],
        advice: Vec::new(),
    });
    Ok(findings)
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
