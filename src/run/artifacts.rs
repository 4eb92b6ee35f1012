//! The run directory's one schema: every file `netc train` writes and `netc diagnose` reads,
//! typed, in one place.
//!
//! A run directory holds `spec.net` (the exact text), `settings.json` ([`Settings`]: the
//! directory's schema version, the netc version, the `--set` overrides, the spec hash and the
//! resolved program), `metrics.csv` (one [`EpochRecord`] per row), `curves.svg`, optionally
//! `gradients.svg`, `checkpoint.safetensors` (see [`crate::run::checkpoint`]),
//! `weights.safetensors` and `report.json` ([`Report`]). Every file is written atomically.

use crate::diag::{Code, Diagnostic};
use crate::ir::Program;
use crate::report::metrics::Figures;
use crate::run::train::Run;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use crate::report::history::{EpochRecord, LayerGradStats};

/// The version of the run directory's layout, recorded in `settings.json`. Raise it when a
/// file's meaning changes; readers refuse other versions. Version 2: `spec_hash` hashes the
/// checked program (version 1 hashed the spec's text).
pub const VERSION: u32 = 2;

/// The spec text, exactly as read.
pub const SPEC: &str = "spec.net";
/// [`Settings`] as JSON.
pub const SETTINGS: &str = "settings.json";
/// [`EpochRecord`]s as CSV.
pub const METRICS: &str = "metrics.csv";
/// [`Report`] as JSON.
pub const REPORT: &str = "report.json";
/// The final model's parameters and input normalization.
pub const WEIGHTS: &str = "weights.safetensors";
/// Learning curves.
pub const CURVES: &str = "curves.svg";
/// Per-layer gradient curves (`--grad-stats`).
pub const GRADIENTS: &str = "gradients.svg";

/// Every file of a run directory (`--force` removes these, and only these, first).
pub const FILES: &[&str] = &[
    SPEC,
    SETTINGS,
    METRICS,
    REPORT,
    WEIGHTS,
    CURVES,
    GRADIENTS,
    crate::run::checkpoint::CHECKPOINT,
];

/// `settings.json`: what a run was trained from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    /// The run directory's layout version ([`VERSION`]).
    pub version: u32,
    /// The netc that trained the run.
    pub netc_version: String,
    /// `--set` overrides as given (`KEY=VALUE`), in order.
    pub overrides: Vec<String>,
    /// The hash of the checked program ([`Run::spec_hash`]).
    pub spec_hash: String,
    /// The resolved program, for people and other tools. netc reads the program back by
    /// compiling `spec.net` with the overrides, so this is never read (and `None` after
    /// reading).
    #[serde(skip_deserializing)]
    pub program: Option<Program>,
}

impl Settings {
    /// The settings of a run about to be trained.
    pub fn of(run: &Run) -> Settings {
        Settings {
            version: VERSION,
            netc_version: env!("CARGO_PKG_VERSION").to_string(),
            overrides: run.overrides.clone(),
            spec_hash: run.spec_hash(),
            program: Some(run.program().clone()),
        }
    }
}

/// `report.json`: the final model's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Final model on the training data (evaluation mode).
    pub train: Figures,
    /// Final model on the validation data.
    pub validation: Option<Figures>,
    /// Final model on the test data.
    pub test: Option<Figures>,
    /// Epochs trained.
    pub epochs_run: usize,
    /// The epoch whose weights were kept (early stopping), or with the best validation loss.
    pub best_epoch: Option<usize>,
    /// `completed` or `early_stop`.
    pub stop_reason: String,
    /// Seconds from start to end of the run (all sessions of a resumed run).
    pub wall_seconds: f64,
    /// Training samples per second of training-step time.
    pub samples_per_second: f64,
    /// The process's peak resident memory in bytes when training ended (this session's), where
    /// the system says (Linux's `VmHWM`): the figure `check`'s memory estimate is measured by.
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
}

/// Writes one file of a run directory atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), Box<Diagnostic>> {
    crate::run::write_file(
        path,
        bytes,
        "check that the run directory is writable and the disk has room",
    )
}

/// [`write`] of what `write` streams out (weights and checkpoints).
pub fn write_with(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), Box<Diagnostic>> {
    crate::run::write_file_with(
        path,
        "check that the run directory is writable and the disk has room",
        write,
    )
}

/// Writes `spec.net` and `settings.json` of a new run.
pub fn write_spec_and_settings(dir: &Path, run: &Run) -> Result<(), Box<Diagnostic>> {
    write(&dir.join(SPEC), run.spec_text.as_bytes())?;
    write_settings(dir, run)
}

/// Writes `settings.json` (again, when a resumed run's `--epochs` changed).
pub fn write_settings(dir: &Path, run: &Run) -> Result<(), Box<Diagnostic>> {
    let json = serde_json::to_string_pretty(&Settings::of(run)).expect("settings serialize");
    write(&dir.join(SETTINGS), json.as_bytes())
}

/// Writes `metrics.csv`.
pub fn write_metrics(dir: &Path, history: &[EpochRecord]) -> Result<(), Box<Diagnostic>> {
    write(&dir.join(METRICS), metrics_csv(history).as_bytes())
}

/// Writes `report.json` (and the same JSON to `also`, `--report`).
pub fn write_report(dir: &Path, report: &Report, also: Option<&Path>) -> Result<(), Box<Diagnostic>> {
    let json = serde_json::to_string_pretty(report).expect("reports serialize");
    write(&dir.join(REPORT), json.as_bytes())?;
    if let Some(path) = also {
        write(path, json.as_bytes())?;
    }
    Ok(())
}

const METRICS_COLUMNS: [&str; 7] = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
];

/// The header and rows of `metrics.csv`; with gradient statistics, two columns per layer
/// (`grad_LAYER`, `update_ratio_LAYER`).
pub fn metrics_csv(history: &[EpochRecord]) -> String {
    let mut csv = METRICS_COLUMNS.join(",");
    let layers: Vec<&str> = history
        .first()
        .map_or(Vec::new(), |r| r.grad_stats.iter().map(|g| g.layer.as_str()).collect());
    for l in &layers {
        csv.push_str(&format!(",grad_{l},update_ratio_{l}"));
    }
    csv.push('\n');
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for r in history {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}",
            r.epoch,
            r.train_loss,
            r.train_accuracy,
            opt(r.val_loss),
            opt(r.val_accuracy),
            r.lr,
            r.seconds
        ));
        for g in &r.grad_stats {
            csv.push_str(&format!(",{},{}", g.mean_abs_grad, g.update_ratio));
        }
        csv.push('\n');
    }
    csv
}

/// Parses `metrics.csv` back into its records; `path` names the file in errors.
pub fn parse_metrics(text: &str, path: &Path) -> Result<Vec<EpochRecord>, Box<Diagnostic>> {
    let bad = |row: usize| {
        Box::new(
            Diagnostic::general(
                Code::BadRunDirectory,
                format!("`{}`, row {row}: not a metrics row written by netc", path.display()),
            )
            .in_file(path)
            .with_hint("rerun `netc train` to rewrite the run directory"),
        )
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    if header.len() < METRICS_COLUMNS.len() || header[..METRICS_COLUMNS.len()] != METRICS_COLUMNS {
        return Err(bad(1));
    }
    let mut layers = Vec::new();
    for pair in header[METRICS_COLUMNS.len()..].chunks(2) {
        match (
            pair[0].strip_prefix("grad_"),
            pair.get(1).and_then(|c| c.strip_prefix("update_ratio_")),
        ) {
            (Some(a), Some(b)) if a == b => layers.push(a.to_string()),
            _ => return Err(bad(1)),
        }
    }
    let mut records = Vec::new();
    for (i, line) in lines.enumerate() {
        let row = i + 2;
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != header.len() {
            return Err(bad(row));
        }
        let number = |c: usize| cells[c].parse::<f64>().map_err(|_| bad(row));
        let optional = |c: usize| {
            if cells[c].is_empty() {
                Ok(None)
            } else {
                number(c).map(Some)
            }
        };
        let grad_stats = layers
            .iter()
            .enumerate()
            .map(|(k, layer)| {
                let at = METRICS_COLUMNS.len() + 2 * k;
                Ok(LayerGradStats {
                    layer: layer.clone(),
                    mean_abs_grad: number(at)?,
                    update_ratio: number(at + 1)?,
                })
            })
            .collect::<Result<_, Box<Diagnostic>>>()?;
        records.push(EpochRecord {
            epoch: cells[0].parse().map_err(|_| bad(row))?,
            train_loss: number(1)?,
            train_accuracy: number(2)?,
            val_loss: optional(3)?,
            val_accuracy: optional(4)?,
            lr: number(5)?,
            seconds: number(6)?,
            grad_stats,
        });
    }
    if records.is_empty() {
        return Err(
            Diagnostic::general(Code::BadRunDirectory, format!("`{}` holds no epochs", path.display()))
                .in_file(path)
                .with_hint("the run stopped before its first epoch ended")
                .into(),
        );
    }
    Ok(records)
}

/// Reads one file of a run directory as text.
pub fn read_text(dir: &Path, name: &str) -> Result<String, Box<Diagnostic>> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|e| {
        Box::new(
            Diagnostic::general(Code::BadRunDirectory, format!("cannot read `{}`: {e}", path.display()))
                .in_file(&path)
                .with_hint(
                    "pass a run directory written by `netc train` (it holds metrics.csv, report.json and settings.json)",
                ),
        )
    })
}

/// Reads `metrics.csv`.
pub fn read_metrics(dir: &Path) -> Result<Vec<EpochRecord>, Box<Diagnostic>> {
    parse_metrics(&read_text(dir, METRICS)?, &dir.join(METRICS))
}

/// Reads `settings.json`, refusing directories of another layout version.
pub fn read_settings(dir: &Path) -> Result<Settings, Box<Diagnostic>> {
    let path = dir.join(SETTINGS);
    let text = read_text(dir, SETTINGS)?;
    let refuse = |message: String, hint: &str| {
        Box::new(
            Diagnostic::general(Code::BadRunDirectory, message)
                .in_file(&path)
                .with_hint(hint),
        )
    };
    #[derive(Deserialize)]
    struct Versioned {
        version: Option<u32>,
    }
    let versioned: Versioned = serde_json::from_str(&text).map_err(|e| {
        refuse(
            format!("`{}` is not valid JSON: {e}", path.display()),
            "rerun `netc train`",
        )
    })?;
    match versioned.version {
        Some(VERSION) => {}
        None => {
            return Err(refuse(
                format!("`{}` was written by an older netc: it has no `version`", path.display()),
                "retrain with `netc train` to write a run directory this netc can read",
            ));
        }
        Some(v) => {
            return Err(refuse(
                format!(
                    "`{}` has version {v}, but this netc reads version {VERSION}",
                    path.display()
                ),
                "use the netc that trained the run, or retrain with `netc train`",
            ));
        }
    }
    serde_json::from_str(&text).map_err(|e| {
        refuse(
            format!("`{}` is not a settings file written by netc: {e}", path.display()),
            "rerun `netc train`",
        )
    })
}

/// Reads `report.json`, if the run finished (an interrupted run has none).
pub fn read_report(dir: &Path) -> Result<Option<Report>, Box<Diagnostic>> {
    let path = dir.join(REPORT);
    if !path.exists() {
        return Ok(None);
    }
    let text = read_text(dir, REPORT)?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Box::new(
            Diagnostic::general(
                Code::BadRunDirectory,
                format!("`{}` is not a report written by netc: {e}", path.display()),
            )
            .in_file(&path)
            .with_hint("rerun `netc train`"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, grads: bool) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 0.5 / epoch as f64,
            train_accuracy: 0.75,
            val_loss: (epoch > 1).then_some(0.25),
            val_accuracy: (epoch > 1).then_some(0.875),
            lr: 1e-3,
            seconds: 0.125,
            grad_stats: if grads {
                vec![
                    LayerGradStats {
                        layer: "h_1".to_string(),
                        mean_abs_grad: 1e-4,
                        update_ratio: 2e-3,
                    },
                    LayerGradStats {
                        layer: "out".to_string(),
                        mean_abs_grad: 3e-2,
                        update_ratio: 4e-3,
                    },
                ]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn metrics_round_trip() {
        for grads in [false, true] {
            let history = vec![record(1, grads), record(2, grads)];
            let text = metrics_csv(&history);
            assert_eq!(parse_metrics(&text, Path::new("m.csv")).expect("parses"), history);
        }
    }

    #[test]
    fn foreign_metrics_are_refused_with_the_row() {
        let err = parse_metrics("a,b\n1,2\n", Path::new("m.csv")).expect_err("foreign header");
        assert!(err.message.contains("row 1"), "{}", err.message);
        let mut text = metrics_csv(&[record(1, false)]);
        text.push_str("2,x,0.5,,,0.1,1\n");
        let err = parse_metrics(&text, Path::new("m.csv")).expect_err("bad cell");
        assert!(err.message.contains("row 3"), "{}", err.message);
        let err = parse_metrics(&metrics_csv(&[]), Path::new("m.csv")).expect_err("no epochs");
        assert!(err.message.contains("holds no epochs"), "{}", err.message);
    }
}
