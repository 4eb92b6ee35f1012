//! `netc sweep`: train every combination of `--vary KEY=V1,V2,...` values and tabulate the
//! results, so that each of the lecture's comparisons is one command.

use crate::data::DataDirs;
use crate::diag::{Code, Diagnostic, Failure};
use crate::run::outputs;
use crate::run::train::{Backend, Engines, Outcome, Progress, Run, TrainOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// One `--vary` option: a `--set` path and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Vary {
    /// The path, as in `--set`.
    pub key: String,
    /// The values, as written.
    pub values: Vec<String>,
}

/// Parses `KEY=V1,V2,...`; commas inside parentheses belong to a value (`step(10, 0.5)`).
pub fn parse_vary(text: &str) -> Result<Vary, Box<Diagnostic>> {
    let Some((key, values)) = text.split_once('=') else {
        return Err(
            Diagnostic::general(Code::BadFlag, format!("`--vary {text}` has no `=`"))
                .with_hint("write --vary KEY=V1,V2, e.g. --vary model.depth=1,2,3")
                .into(),
        );
    };
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in values.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    if key.trim().is_empty() || out.iter().any(String::is_empty) {
        return Err(
            Diagnostic::general(Code::BadFlag, format!("`--vary {text}` has an empty key or value"))
                .with_hint("write --vary KEY=V1,V2, e.g. --vary train.optimizer=sgd,adam")
                .into(),
        );
    }
    Ok(Vary {
        key: key.trim().to_string(),
        values: out,
    })
}

/// A key given to two `--vary` options (whose values would override each other).
fn repeated_vary(varies: &[Vary]) -> Option<Diagnostic> {
    let (i, later) = varies
        .iter()
        .enumerate()
        .find(|(i, v)| varies[..*i].iter().any(|e| e.key == v.key))?;
    let earlier = varies[..i].iter().find(|e| e.key == later.key)?;
    Some(
        Diagnostic::general(
            Code::BadFlag,
            format!(
                "`--vary {}` is given twice (`={}` and `={}`)",
                later.key,
                earlier.values.join(","),
                later.values.join(",")
            ),
        )
        .with_hint(format!(
            "give every value in one option: `--vary {}={},{}`",
            later.key,
            earlier.values.join(","),
            later.values.join(",")
        )),
    )
}

/// Every combination, as lists of `KEY=VALUE` settings (the first `--vary` varies slowest).
pub fn combinations(varies: &[Vary]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for v in varies {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                v.values.iter().map(move |value| {
                    let mut p = prefix.clone();
                    p.push(format!("{}={value}", v.key));
                    p
                })
            })
            .collect();
    }
    out
}

/// One trained combination.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SweepRow {
    /// The varied settings, `KEY=VALUE`.
    pub settings: Vec<String>,
    /// How the run ended: `completed`, `early_stop`, `diverged` or `interrupted` (the figures
    /// of the last two are empty).
    pub status: String,
    /// Final training accuracy and loss (evaluation mode).
    pub train_accuracy: Option<f64>,
    /// Final training loss.
    pub train_loss: Option<f64>,
    /// Final validation accuracy, if any.
    pub validation_accuracy: Option<f64>,
    /// Final validation loss.
    pub validation_loss: Option<f64>,
    /// Final test accuracy, if any.
    pub test_accuracy: Option<f64>,
    /// Final test loss.
    pub test_loss: Option<f64>,
    /// Epochs trained.
    pub epochs_run: usize,
    /// The run directory.
    pub run_dir: String,
}

fn cell(v: Option<f64>, percent: bool) -> String {
    match v {
        Some(x) if percent => format!("{:.2}%", x * 100.0),
        Some(x) => format!("{x:.4}"),
        None => "-".to_string(),
    }
}

/// The results as a markdown table, one row per combination.
pub fn markdown(varies: &[Vary], rows: &[SweepRow]) -> String {
    let mut out = String::from("|");
    for v in varies {
        out.push_str(&format!(" {} |", v.key));
    }
    out.push_str(" train acc | val acc | test acc | train loss | val loss | test loss | epochs | status |\n|");
    out.push_str(&" --- |".repeat(varies.len() + 8));
    out.push('\n');
    for r in rows {
        out.push('|');
        for s in &r.settings {
            out.push_str(&format!(" {} |", s.split_once('=').map_or(s.as_str(), |(_, v)| v)));
        }
        out.push_str(&format!(
            " {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(r.train_accuracy, true),
            cell(r.validation_accuracy, true),
            cell(r.test_accuracy, true),
            cell(r.train_loss, false),
            cell(r.validation_loss, false),
            cell(r.test_loss, false),
            r.epochs_run,
            r.status
        ));
    }
    out
}

/// The results as CSV.
pub fn csv(varies: &[Vary], rows: &[SweepRow]) -> String {
    let mut out: String = varies.iter().map(|v| format!("{},", v.key)).collect();
    out.push_str(
        "train_accuracy,validation_accuracy,test_accuracy,train_loss,validation_loss,test_loss,epochs_run,run_dir,status\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for r in rows {
        for s in &r.settings {
            let value = s.split_once('=').map_or(s.as_str(), |(_, v)| v);
            if value.contains([',', '"']) {
                out.push_str(&format!("\"{}\",", value.replace('"', "\"\"")));
            } else {
                out.push_str(&format!("{value},"));
            }
        }
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            opt(r.train_accuracy),
            opt(r.validation_accuracy),
            opt(r.test_accuracy),
            opt(r.train_loss),
            opt(r.validation_loss),
            opt(r.test_loss),
            r.epochs_run,
            r.run_dir,
            r.status
        ));
    }
    out
}

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The spec.
    pub spec: PathBuf,
    /// The `--vary KEY=V1,V2,...` options, as given.
    pub varies: Vec<String>,
    /// `--set` overrides of every run.
    pub sets: Vec<String>,
    /// `--epochs`: the number of epochs of every run.
    pub epochs: Option<u64>,
    /// Where named data sets are looked for.
    pub data_dirs: DataDirs,
    /// The sweep's directory (default `runs/sweep-<model>-<time>/`); new or empty unless
    /// `force`.
    pub out: Option<PathBuf>,
    /// Replace the sweep in `out`.
    pub force: bool,
    /// Set by Ctrl-C (or SIGTERM, SIGHUP): the current run checkpoints, the table of the runs
    /// so far is written, the sweep stops.
    pub interrupt: Arc<AtomicBool>,
    /// Also write the results here (`.json`, or CSV for anything else).
    pub report: Option<PathBuf>,
    /// The execution backend.
    pub backend: Backend,
}

/// A finished sweep.
#[derive(Debug, Clone)]
pub struct SweepResults {
    /// One row per combination, in order.
    pub rows: Vec<SweepRow>,
    /// The results as a markdown table (also in `sweep.md`).
    pub table: String,
    /// Networks compiled.
    pub built: usize,
    /// Runs that reused an earlier run's compiled network.
    pub reused: usize,
    /// The sweep's directory.
    pub out_dir: PathBuf,
}

impl SweepResults {
    /// `4 runs, 2 compiled networks (...)`: how many runs shared their kernels.
    pub fn compiled_line(&self) -> String {
        format!(
            "{} runs, {} compiled network{}{}",
            self.rows.len(),
            self.built,
            if self.built == 1 { "" } else { "s" },
            if self.reused > 0 {
                " (the other runs reused their kernels: only training settings differed)"
            } else {
                ""
            }
        )
    }
}

/// How a sweep ended.
#[derive(Debug)]
pub enum SweepOutcome {
    /// Every combination trained.
    Finished(SweepResults),
    /// A run was interrupted: the results of the runs before it (and its `interrupted` row).
    Interrupted(SweepResults),
}

/// The files of a sweep's directory besides the runs' (`--force` replaces them).
const FILES: &[&str] = &["sweep.md", "sweep.json", "sweep.csv", "sweep.svg"];

/// Checks every combination, then trains them one by one (progress on stderr) and writes the
/// sweep's table, JSON, CSV and plot. A run that diverges is a `diverged` row and the sweep goes
/// on; an interrupt or a failing run ends the sweep after writing the table of the runs so far.
pub fn sweep(options: &SweepOptions) -> Result<SweepOutcome, Failure> {
    let varies: Vec<Vary> = options.varies.iter().map(|v| parse_vary(v)).collect::<Result<_, _>>()?;
    if let Some(d) = repeated_vary(&varies) {
        return Err(d.into());
    }
    let combinations = combinations(&varies);
    let runs = check_combinations(options, &combinations)?;
    let model = runs
        .first()
        .map_or("model".to_string(), |r| r.program().model.name.clone());
    if let Some(report) = &options.report {
        let report = outputs::Named::new(report, "--report");
        outputs::check_writable(&report)?;
        let base = crate::run::spec::spec_dir(&options.spec);
        let mut inputs = vec![outputs::Named::new(&options.spec, "the spec")];
        inputs.extend(
            runs.iter()
                .flat_map(|r| outputs::data_inputs(&r.program().train.data, &base)),
        );
        outputs::refuse_overwriting_inputs(&[report], &inputs)?;
    }
    let out_dir = match &options.out {
        Some(dir) => dir.clone(),
        None => {
            let d = crate::run::train::default_run_dir(&model);
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            outputs::unique_dir(&d.with_file_name(format!("sweep-{name}")))?
        }
    };
    outputs::claim_dir(&out_dir, FILES[0], options.force, FILES)?;
    let mut rows = Vec::new();
    let mut engines = Engines::default();
    let mut interrupted = false;
    let mut failed = None;
    for (i, (run, settings)) in runs.iter().zip(&combinations).enumerate() {
        let dir = out_dir.join(format!("{:02}-{}", i + 1, dir_name(settings)));
        crate::errln!("[{}/{}] {}", i + 1, runs.len(), settings.join(" "));
        let train = TrainOptions {
            data_dirs: options.data_dirs.clone(),
            spec_dir: crate::run::spec::spec_dir(&options.spec),
            out: Some(dir.clone()),
            force: options.force,
            spec: Some(options.spec.clone()),
            resume: None,
            report: None,
            progress: Progress::Quiet,
            interrupt: options.interrupt.clone(),
            stop_after_steps: None,
            grad_stats: false,
            backend: options.backend,
        };
        let mut row = SweepRow {
            settings: settings.clone(),
            status: String::new(),
            train_accuracy: None,
            train_loss: None,
            validation_accuracy: None,
            validation_loss: None,
            test_accuracy: None,
            test_loss: None,
            epochs_run: 0,
            run_dir: dir.display().to_string(),
        };
        match crate::run::train::train_with(run, &train, &mut engines) {
            Ok(Outcome::Finished { report, .. }) => {
                row.status = report.stop_reason.clone();
                row.train_accuracy = Some(report.train.accuracy);
                row.train_loss = Some(report.train.loss);
                row.validation_accuracy = report.validation.map(|f| f.accuracy);
                row.validation_loss = report.validation.map(|f| f.loss);
                row.test_accuracy = report.test.map(|f| f.accuracy);
                row.test_loss = report.test.map(|f| f.loss);
                row.epochs_run = report.epochs_run;
            }
            Ok(Outcome::Interrupted { epoch, .. }) => {
                row.status = "interrupted".to_string();
                row.epochs_run = epoch - 1;
                interrupted = true;
            }
            Err(d) if d.code == Code::Diverged => {
                crate::errln!("  diverged: {}", d.message);
                row.status = "diverged".to_string();
                row.epochs_run = crate::run::artifacts::read_metrics(&dir).map_or(0, |h| h.len());
            }
            Err(d) => {
                failed = Some(d);
                break;
            }
        }
        rows.push(row);
        if interrupted {
            break;
        }
    }
    let table = markdown(&varies, &rows);
    write_results(&out_dir, options.report.as_deref(), &model, &varies, &rows, &table)?;
    if let Some(d) = failed {
        return Err(d.into());
    }
    let results = SweepResults {
        rows,
        table,
        built: engines.built,
        reused: engines.reused,
        out_dir,
    };
    Ok(if interrupted {
        SweepOutcome::Interrupted(results)
    } else {
        SweepOutcome::Finished(results)
    })
}

/// A run's directory name from its settings: the last part of each key's value, joined.
fn dir_name(settings: &[String]) -> String {
    settings
        .iter()
        .map(|s| s.rsplit('.').next().unwrap_or(s).replace(['(', ')', ' ', ','], "_"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Loads the spec under every combination before any trains: one bad combination stops the
/// sweep with its diagnostics.
fn check_combinations(options: &SweepOptions, combinations: &[Vec<String>]) -> Result<Vec<Run>, Failure> {
    let text = crate::run::spec::read_spec(&options.spec)?;
    let name = options.spec.display().to_string();
    let limits = crate::run::limits::of_this_machine();
    let mut base = options.sets.clone();
    if let Some(e) = options.epochs {
        base.push(format!("train.epochs={e}"));
    }
    let mut runs = Vec::new();
    for settings in combinations {
        let sets: Vec<String> = base.iter().cloned().chain(settings.iter().cloned()).collect();
        match crate::run::spec::compile_spec(&name, text.clone(), &sets, &limits) {
            Ok(loaded) => runs.push(loaded.run),
            Err(mut failure) => {
                if failure.diagnostics.iter().any(|d| d.code.is_spec()) {
                    failure.conclusion = None;
                    failure.diagnostics.push(
                        Diagnostic::general(
                            Code::BadFlag,
                            format!(
                                "the combination {} is not a valid spec; nothing was trained",
                                settings.join(" ")
                            ),
                        )
                        .with_hint("fix the --vary values"),
                    );
                }
                return Err(failure);
            }
        }
    }
    Ok(runs)
}

/// Writes `sweep.md`, `sweep.json`, `sweep.csv` and `sweep.svg` (and `--report`).
fn write_results(
    out_dir: &Path,
    report: Option<&Path>,
    model: &str,
    varies: &[Vary],
    rows: &[SweepRow],
    table: &str,
) -> Result<(), Box<Diagnostic>> {
    let write = |path: &Path, text: &str| crate::run::write_file(path, text.as_bytes(), "check the path");
    let json = serde_json::to_string_pretty(&rows).expect("rows serialize");
    let csv = csv(varies, rows);
    write(&out_dir.join("sweep.md"), table)?;
    write(&out_dir.join("sweep.json"), &json)?;
    write(&out_dir.join("sweep.csv"), &csv)?;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            r.settings
                .iter()
                .map(|s| s.split_once('=').map_or(s.as_str(), |(_, v)| v))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let series = [
        ("train", rows.iter().map(|r| r.train_accuracy).collect()),
        ("validation", rows.iter().map(|r| r.validation_accuracy).collect()),
        ("test", rows.iter().map(|r| r.test_accuracy).collect()),
    ];
    let title = format!(
        "{model}: {}",
        varies.iter().map(|v| v.key.as_str()).collect::<Vec<_>>().join(" x ")
    );
    write(
        &out_dir.join("sweep.svg"),
        &crate::report::plot::sweep_svg(&title, &labels, &series),
    )?;
    if let Some(path) = report {
        let is_json = path.extension().is_some_and(|e| e == "json");
        write(path, if is_json { &json } else { &csv })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_outside_parentheses() {
        let v = parse_vary("train.optimizer.schedule=step(10, 0.5),exponential(0.9)").expect("parses");
        assert_eq!(v.values, vec!["step(10, 0.5)", "exponential(0.9)"]);
        assert!(parse_vary("nokey").is_err());
        assert!(parse_vary("a=1,,2").is_err());
    }

    #[test]
    fn combinations_are_the_cartesian_product() {
        let a = parse_vary("a=1,2").expect("a");
        let b = parse_vary("b=x,y,z").expect("b");
        let c = combinations(&[a, b]);
        assert_eq!(c.len(), 6);
        assert_eq!(c[0], vec!["a=1", "b=x"]);
        assert_eq!(c[5], vec!["a=2", "b=z"]);
    }
}
