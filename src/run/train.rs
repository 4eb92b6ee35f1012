//! Training: epochs of shuffled batches through the interpreter, validation, early stopping,
//! checkpoints that resume bit-for-bit, divergence detection, and the run directory.
//!
//! A run directory holds `spec.net` (the exact text), `settings.json` (everything resolved),
//! `metrics.csv` (one row per epoch), `curves.svg`, `checkpoint.safetensors` (parameters,
//! optimizer state and counters: enough to resume), `weights.safetensors` (the final model) and
//! `report.json`. Every file is written atomically.

use crate::back::engine::Engine;
use crate::back::interp::{Context, Interpreter};
use crate::check::Checked;
use crate::data::{self, DataDirs, Dataset, Splits};
use crate::error::UserError;
use crate::fsutil::write_atomic;
use crate::graph::{self, Graph};
use crate::ir::{Metric, Program};
use crate::report::metrics::{self, Figures};
use crate::rng::{Rng, streams};
use crate::run::weights::{self, NamedTensor};
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A spec ready to train: the checked program and the text it came from.
#[derive(Debug, Clone)]
pub struct Run {
    /// The spec's text, exactly as read.
    pub spec_text: String,
    /// `--set` overrides as given (`KEY=VALUE`), in order.
    pub overrides: Vec<String>,
    /// The checked program (overrides applied).
    pub checked: Checked,
}

impl Run {
    /// The program.
    pub fn program(&self) -> &Program {
        self.checked.program()
    }

    /// A hash of the spec text and overrides: checkpoints only resume under the same spec.
    pub fn spec_hash(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for &b in bytes {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
        };
        feed(self.spec_text.as_bytes());
        for o in &self.overrides {
            feed(b"\n--set ");
            feed(o.as_bytes());
        }
        format!("{h:016x}")
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// An indicatif bar per epoch (terminals).
    Bar,
    /// One plain line per epoch.
    Lines,
    /// Nothing.
    Quiet,
}

/// Options of a training run that are not in the spec.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Where named data sets are looked for.
    pub data_dirs: DataDirs,
    /// The spec's directory (relative data paths start there).
    pub spec_dir: PathBuf,
    /// The run directory (default `runs/<model>-<timestamp>/`).
    pub out: Option<PathBuf>,
    /// Continue the run in this directory.
    pub resume: Option<PathBuf>,
    /// Also write the report here.
    pub report: Option<PathBuf>,
    /// Progress display.
    pub progress: Progress,
    /// Set by Ctrl-C: finish the step, checkpoint, stop.
    pub interrupt: Arc<AtomicBool>,
    /// Acts as an interrupt once this many steps have run in total (for tests).
    pub stop_after_steps: Option<u64>,
    /// Record per-layer gradient statistics (`--grad-stats`).
    pub grad_stats: bool,
    /// The execution backend.
    pub backend: Backend,
}

/// One row of `metrics.csv`.
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

/// The report of a finished run (`report.json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
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
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Trained to the end (or stopped early).
    Finished {
        /// The run directory.
        out_dir: PathBuf,
        /// The figures.
        report: Report,
        /// Per-epoch records.
        history: Vec<EpochRecord>,
        /// The final parameters.
        params: Vec<Array2<f32>>,
    },
    /// Stopped by Ctrl-C after saving a checkpoint.
    Interrupted {
        /// The run directory (pass it to `--resume`).
        out_dir: PathBuf,
        /// 1-based epoch that was interrupted.
        epoch: usize,
        /// Steps done in that epoch.
        step: usize,
    },
}

/// Counters and history saved in checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct State {
    spec_hash: String,
    /// 0-based epoch in progress (or next).
    epoch: usize,
    /// Steps already done in that epoch.
    step_in_epoch: usize,
    global_step: u64,
    updates: u64,
    loss_sum: f64,
    correct: usize,
    /// Per weight tensor: sums over this epoch's steps of mean |grad| and update ratio.
    #[serde(default)]
    grad_sums: Vec<(f64, f64)>,
    seen: usize,
    epoch_seconds: f64,
    history: Vec<EpochRecord>,
    /// Best monitored value and its 1-based epoch.
    best: Option<(f64, usize)>,
    bad_epochs: usize,
    stopped_early: bool,
    wall_seconds: f64,
    train_seconds: f64,
    samples_trained: u64,
}

const CHECKPOINT: &str = "checkpoint.safetensors";

/// Trains a spec. Errors are about the user's input (data, resume directory) or divergence.
pub fn train(run: &Run, options: &TrainOptions) -> Result<Outcome, UserError> {
    train_with(run, options, &mut Engines::default())
}

/// Compiled engines kept between runs (`netc sweep`): a run whose network differs from an
/// earlier one only in training settings (learning rate, schedule, batch, epochs, seed, data)
/// reuses that run's compiled kernels, reset to fresh parameters.
#[derive(Default)]
pub struct Engines {
    /// Engines by backend; an engine fits a run whose graph equals its own (graphs hold
    /// structure only: learning rate and schedule reach the kernels at each step).
    cached: Vec<(Backend, Box<dyn Engine>)>,
    /// Engines built (compiled, for the JIT).
    pub built: usize,
    /// Runs that reused a built engine.
    pub reused: usize,
}

impl Engines {
    fn take(&mut self, backend: Backend, graph: Graph, seed: u64) -> Result<Box<dyn Engine>, UserError> {
        if let Some(i) = self
            .cached
            .iter()
            .position(|(b, e)| *b == backend && *e.graph() == graph)
        {
            let (_, mut engine) = self.cached.swap_remove(i);
            engine.reset(seed);
            self.reused += 1;
            return Ok(engine);
        }
        self.built += 1;
        make_engine(backend, graph, seed)
    }

    fn keep(&mut self, backend: Backend, engine: Box<dyn Engine>) {
        self.cached.push((backend, engine));
    }
}

/// [`train`], taking its engine from (and returning it to) `engines`.
pub fn train_with(run: &Run, options: &TrainOptions, engines: &mut Engines) -> Result<Outcome, UserError> {
    let started = Instant::now();
    let program = &run.program();
    let config = &program.train;
    let graph = graph::build(&run.checked);
    let splits = data::load(&config.data, &options.data_dirs, &options.spec_dir)?;
    check_data_fits(&graph, &splits)?;

    let out_dir = match (&options.resume, &options.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir.clone(),
        (None, None) => default_run_dir(&program.model.name),
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| {
        UserError::new(format!("cannot create the run directory `{}`: {e}", out_dir.display()))
            .hint("pass a writable directory with --out")
    })?;

    let mut engine: Box<dyn Engine> = engines.take(options.backend, graph, config.seed)?;
    let mut best_params: Option<Vec<Array2<f32>>> = None;
    let mut state = State {
        spec_hash: run.spec_hash(),
        epoch: 0,
        step_in_epoch: 0,
        global_step: 0,
        updates: 0,
        loss_sum: 0.0,
        grad_sums: Vec::new(),
        correct: 0,
        seen: 0,
        epoch_seconds: 0.0,
        history: Vec::new(),
        best: None,
        bad_epochs: 0,
        stopped_early: false,
        wall_seconds: 0.0,
        train_seconds: 0.0,
        samples_trained: 0,
    };
    if options.resume.is_some() {
        let (s, best) = load_checkpoint(&out_dir, engine.as_mut(), &run.spec_hash())?;
        state = s;
        best_params = best;
    } else {
        write_text(&out_dir.join("spec.net"), &run.spec_text)?;
        let settings = serde_json::json!({
            "netc_version": env!("CARGO_PKG_VERSION"),
            "overrides": run.overrides,
            "spec_hash": run.spec_hash(),
            "program": program,
        });
        write_text(
            &out_dir.join("settings.json"),
            &serde_json::to_string_pretty(&settings).expect("settings serialize"),
        )?;
    }
    let wall_before = state.wall_seconds;

    let n = splits.train.len();
    let batch = config.batch.min(n).max(1);
    let batches = n.div_ceil(batch);
    let width = engine.graph().output_width;
    let mut order: Vec<usize> = Vec::new();
    let mut order_epoch = usize::MAX;

    while state.epoch < config.epochs && !state.stopped_early {
        let epoch = state.epoch;
        let lr = config.schedule.rate(config.optimizer.lr, epoch);
        if order_epoch != epoch {
            order = (0..n).collect();
            Rng::new(config.seed, streams::SHUFFLE + epoch as u64).shuffle(&mut order);
            order_epoch = epoch;
        }
        let bar = progress_bar(options.progress, batches, epoch, config.epochs);
        let epoch_started = Instant::now();
        while state.step_in_epoch < batches {
            let step = state.step_in_epoch;
            let rows = &order[step * batch..((step + 1) * batch).min(n)];
            let labels: Vec<usize> = rows.iter().map(|&r| splits.train.labels[r]).collect();
            let t = data::targets(&labels, width);
            engine.set_batch_rows(splits.train.features.view(), rows, t.view());
            let ctx = Context {
                training: true,
                step: state.global_step,
                lr,
            };
            let loss = engine.forward(&ctx);
            if !loss.is_finite() {
                return Err(divergence(engine.as_ref(), epoch, step, loss, lr, &out_dir, &state));
            }
            engine.backward(&ctx);
            if options.grad_stats {
                let before = engine.params();
                let weights: Vec<usize> = (0..before.len())
                    .filter(|&p| engine.graph().params[p].kind == graph::ParamKind::Weight)
                    .collect();
                let grads: Vec<f64> = weights
                    .iter()
                    .map(|&p| {
                        engine.gradient(p).iter().map(|g| g.abs() as f64).sum::<f64>() / before[p].len().max(1) as f64
                    })
                    .collect();
                engine.update(&ctx);
                let after = engine.params();
                state.grad_sums.resize(weights.len(), (0.0, 0.0));
                for (k, &p) in weights.iter().enumerate() {
                    let norm = |a: &Array2<f32>| a.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                    let ratio = norm(&(&after[p] - &before[p])) / norm(&before[p]).max(1e-30);
                    state.grad_sums[k].0 += grads[k];
                    state.grad_sums[k].1 += ratio;
                }
            } else {
                engine.update(&ctx);
            }
            let out = engine.output();
            state.correct += out
                .axis_iter(Axis(0))
                .zip(&labels)
                .filter(|(row, l)| metrics::predicted_class(row.view()) == **l)
                .count();
            state.loss_sum += loss * rows.len() as f64;
            state.seen += rows.len();
            state.samples_trained += rows.len() as u64;
            state.global_step += 1;
            state.step_in_epoch += 1;
            state.updates = engine.updates();
            if let Some(bar) = &bar {
                bar.set_position(state.step_in_epoch as u64);
                bar.set_message(format!("loss {:.4}", state.loss_sum / state.seen as f64));
            }
            let asked = options.interrupt.load(Ordering::SeqCst);
            let limit = options.stop_after_steps.is_some_and(|s| state.global_step >= s);
            if (asked || limit) && state.step_in_epoch < batches {
                state.epoch_seconds += epoch_started.elapsed().as_secs_f64();
                state.train_seconds += epoch_started.elapsed().as_secs_f64();
                state.wall_seconds = wall_before + started.elapsed().as_secs_f64();
                if let Some(bar) = bar {
                    bar.abandon();
                }
                save_checkpoint(&out_dir, engine.as_ref(), &state, best_params.as_deref())?;
                write_metrics(&out_dir, &state.history)?;
                engines.keep(options.backend, engine);
                return Ok(Outcome::Interrupted {
                    out_dir,
                    epoch: epoch + 1,
                    step: state.step_in_epoch,
                });
            }
        }
        let train_time = epoch_started.elapsed().as_secs_f64();
        state.epoch_seconds += train_time;
        state.train_seconds += train_time;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        check_parameters(engine.as_ref(), epoch, &out_dir, &state)?;

        let validation = splits
            .validation
            .as_ref()
            .map(|v| metrics::evaluate(engine.as_mut(), v));
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: state.loss_sum / state.seen.max(1) as f64,
            train_accuracy: state.correct as f64 / state.seen.max(1) as f64,
            val_loss: validation.as_ref().map(|v| v.loss),
            val_accuracy: validation.as_ref().map(|v| v.accuracy),
            lr,
            seconds: state.epoch_seconds,
            grad_stats: grad_stats_of(engine.graph(), &state.grad_sums, batches),
        };
        if options.progress != Progress::Quiet {
            println!("{}", epoch_line(&record, config.epochs));
        }
        // Early stopping (or, without it, remembering the best validation loss).
        let watched = match config.early_stop {
            Some(e) => match e.metric {
                Metric::ValLoss => record.val_loss.map(|v| (v, true)),
                Metric::ValAccuracy => record.val_accuracy.map(|v| (v, false)),
            },
            None => record.val_loss.map(|v| (v, true)),
        };
        if let Some((value, lower_is_better)) = watched {
            let min_delta = config.early_stop.map_or(0.0, |e| e.min_delta);
            let improved = match state.best {
                None => true,
                Some((best, _)) if lower_is_better => value < best - min_delta,
                Some((best, _)) => value > best + min_delta,
            };
            if improved {
                state.best = Some((value, epoch + 1));
                state.bad_epochs = 0;
                if config.early_stop.is_some_and(|e| e.restore_best) {
                    best_params = Some(engine.params());
                }
            } else {
                state.bad_epochs += 1;
                if let Some(e) = config.early_stop
                    && state.bad_epochs >= e.patience
                {
                    state.stopped_early = true;
                }
            }
        }
        state.history.push(record);
        state.epoch += 1;
        state.step_in_epoch = 0;
        state.loss_sum = 0.0;
        state.grad_sums.clear();
        state.correct = 0;
        state.seen = 0;
        state.epoch_seconds = 0.0;
        state.wall_seconds = wall_before + started.elapsed().as_secs_f64();
        write_metrics(&out_dir, &state.history)?;
        save_checkpoint(&out_dir, engine.as_ref(), &state, best_params.as_deref())?;
    }

    // The final model.
    if let Some(best) = &best_params {
        engine.set_params(best);
    }
    let train_eval = metrics::evaluate(engine.as_mut(), &splits.train);
    let val_eval = splits
        .validation
        .as_ref()
        .map(|v| metrics::evaluate(engine.as_mut(), v));
    let test_eval = splits.test.as_ref().map(|t| metrics::evaluate(engine.as_mut(), t));
    let stop_epoch = state.stopped_early.then_some(state.history.len());
    let report = Report {
        train: train_eval.figures(),
        validation: val_eval.map(|v| v.figures()),
        test: test_eval.map(|t| t.figures()),
        epochs_run: state.history.len(),
        best_epoch: state.best.map(|(_, e)| e),
        stop_reason: if state.stopped_early { "early_stop" } else { "completed" }.to_string(),
        wall_seconds: wall_before + started.elapsed().as_secs_f64(),
        samples_per_second: state.samples_trained as f64 / state.train_seconds.max(1e-9),
    };
    let final_params = engine.params();
    let tensors = weights::model_tensors(engine.graph(), &final_params, &splits.normalization);
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("netc.model".to_string(), run.program().model.name.clone());
    meta.insert("netc.spec_hash".to_string(), run.spec_hash());
    write_bytes(&out_dir.join("weights.safetensors"), &weights::encode(&tensors, meta))?;
    let svg = crate::report::plot::curves_svg(&run.program().model.name, &state.history, report.best_epoch, stop_epoch);
    write_text(&out_dir.join("curves.svg"), &svg)?;
    if state.history.iter().any(|r| !r.grad_stats.is_empty()) {
        write_text(
            &out_dir.join("gradients.svg"),
            &crate::report::plot::gradients_svg(&run.program().model.name, &state.history),
        )?;
    }
    let json = serde_json::to_string_pretty(&report).expect("reports serialize");
    write_text(&out_dir.join("report.json"), &json)?;
    if let Some(path) = &options.report {
        write_text(path, &json)?;
    }
    engines.keep(options.backend, engine);
    Ok(Outcome::Finished {
        out_dir,
        report,
        history: state.history,
        params: final_params,
    })
}

fn check_data_fits(graph: &Graph, splits: &Splits) -> Result<(), UserError> {
    let features = splits.train.features.ncols();
    if features != graph.input_width {
        return Err(UserError::new(format!(
            "the data has {features} features per sample, but the model's input is {} wide",
            graph.input_width
        ))
        .hint(format!(
            "write `input {features}` in the model, or check the data's label column"
        )));
    }
    let width = graph.output_width;
    let check = |d: &Dataset, name: &str| -> Result<(), UserError> {
        let limit = if width == 1 { 2 } else { width };
        if let Some((row, &label)) = d.labels.iter().enumerate().find(|(_, l)| **l >= limit) {
            return Err(UserError::new(format!(
                "{name} sample {} has label {label}, but the output layer has {width} unit{} (labels 0 to {})",
                row + 1,
                if width == 1 { "" } else { "s" },
                limit - 1
            ))
            .hint(format!("give the output layer at least {} units", label + 1)));
        }
        Ok(())
    };
    check(&splits.train, "training")?;
    if let Some(v) = &splits.validation {
        check(v, "validation")?;
    }
    if let Some(t) = &splits.test {
        check(t, "test")?;
    }
    Ok(())
}

/// `runs/<model>-<UTC timestamp>`, with a suffix if that exists.
pub fn default_run_dir(model: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    let stamp = format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", t / 3600, t / 60 % 60, t % 60);
    let base = PathBuf::from("runs").join(format!("{model}-{stamp}"));
    let mut candidate = base.clone();
    let mut i = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{i}", base.display()));
        i += 1;
    }
    candidate
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn progress_bar(progress: Progress, batches: usize, epoch: usize, epochs: usize) -> Option<indicatif::ProgressBar> {
    if progress != Progress::Bar {
        return None;
    }
    let bar = indicatif::ProgressBar::new(batches as u64);
    let style = indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec})")
        .expect("the template is valid")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{}/{epochs}", epoch + 1));
    Some(bar)
}

/// The line printed after each epoch.
pub fn epoch_line(r: &EpochRecord, epochs: usize) -> String {
    let mut line = format!(
        "epoch {:>3}/{epochs}  train loss {:.4} acc {:6.2}%",
        r.epoch,
        r.train_loss,
        r.train_accuracy * 100.0
    );
    if let (Some(l), Some(a)) = (r.val_loss, r.val_accuracy) {
        line.push_str(&format!("  val loss {l:.4} acc {:6.2}%", a * 100.0));
    }
    line.push_str(&format!("  lr {:.3e}  {:.2}s", r.lr, r.seconds));
    line
}

fn divergence(
    engine: &dyn Engine,
    epoch: usize,
    step: usize,
    loss: f64,
    lr: f64,
    out_dir: &Path,
    state: &State,
) -> UserError {
    let culprit = engine.non_finite_layer().unwrap_or_else(|| "the loss".to_string());
    let checkpoint = if state.history.is_empty() {
        "no epoch finished, so no checkpoint was written".to_string()
    } else {
        format!(
            "the last good checkpoint (end of epoch {}) is {}",
            state.history.len(),
            out_dir.join(CHECKPOINT).display()
        )
    };
    UserError::new(format!(
        "training diverged at epoch {}, step {}: the loss is {loss}; the first non-finite values are in {culprit}",
        epoch + 1,
        step + 1
    ))
    .hint(format!(
        "lower the learning rate, e.g. `--set train.optimizer.lr={:e}`; {checkpoint}",
        lr / 10.0
    ))
}

fn check_parameters(engine: &dyn Engine, epoch: usize, out_dir: &Path, state: &State) -> Result<(), UserError> {
    if engine.params().iter().all(|p| p.iter().all(|v| v.is_finite())) {
        return Ok(());
    }
    Err(divergence(
        engine,
        epoch,
        state.step_in_epoch.saturating_sub(1),
        f64::NAN,
        0.0,
        out_dir,
        state,
    ))
}

fn write_text(path: &Path, text: &str) -> Result<(), UserError> {
    write_bytes(path, text.as_bytes())
}

fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), UserError> {
    write_atomic(path, bytes).map_err(|e| {
        UserError::new(format!("cannot write `{}`: {e}", path.display()))
            .hint("check that the run directory is writable and the disk has room")
    })
}

/// Per-layer means over an epoch of `steps` steps from the sums kept in the training state.
fn grad_stats_of(graph: &Graph, sums: &[(f64, f64)], steps: usize) -> Vec<LayerGradStats> {
    let weights = graph.params.iter().filter(|p| p.kind == graph::ParamKind::Weight);
    weights
        .zip(sums)
        .map(|(p, &(g, r))| LayerGradStats {
            layer: graph.layers[p.layer].name.clone(),
            mean_abs_grad: g / steps.max(1) as f64,
            update_ratio: r / steps.max(1) as f64,
        })
        .collect()
}

/// The header and rows of `metrics.csv`; with gradient statistics, two columns per layer.
pub fn metrics_csv(history: &[EpochRecord]) -> String {
    let mut csv = String::from("epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds");
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

fn write_metrics(out_dir: &Path, history: &[EpochRecord]) -> Result<(), UserError> {
    write_text(&out_dir.join("metrics.csv"), &metrics_csv(history))
}

fn save_checkpoint(
    out_dir: &Path,
    engine: &dyn Engine,
    state: &State,
    best: Option<&[Array2<f32>]>,
) -> Result<(), UserError> {
    let graph = engine.graph();
    let params = engine.params();
    let optimizer_state = engine.state();
    let mut tensors: Vec<NamedTensor> = Vec::new();
    for (i, p) in graph.params.iter().enumerate() {
        tensors.push(weights::param_tensor(&p.name, p.kind, &params[i]));
        for (k, s) in optimizer_state[i].iter().enumerate() {
            tensors.push(weights::param_tensor(&format!("state.{k}.{}", p.name), p.kind, s));
        }
        if let Some(best) = best {
            tensors.push(weights::param_tensor(&format!("best.{}", p.name), p.kind, &best[i]));
        }
    }
    let mut meta = BTreeMap::new();
    meta.insert(
        "netc.checkpoint".to_string(),
        serde_json::to_string(state).expect("state serializes"),
    );
    write_bytes(&out_dir.join(CHECKPOINT), &weights::encode(&tensors, meta))
}

#[allow(clippy::type_complexity)]
fn load_checkpoint(
    out_dir: &Path,
    engine: &mut dyn Engine,
    spec_hash: &str,
) -> Result<(State, Option<Vec<Array2<f32>>>), UserError> {
    let path = out_dir.join(CHECKPOINT);
    let bytes = std::fs::read(&path).map_err(|e| {
        UserError::new(format!("cannot resume: `{}` cannot be read: {e}", path.display()))
            .hint("pass the run directory that an interrupted `netc train` named")
    })?;
    let (tensors, meta) = weights::decode(&bytes, &path)?;
    let state: State = meta
        .get("netc.checkpoint")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            UserError::new(format!("`{}` holds no training state", path.display()))
                .hint("resume from a directory written by `netc train`")
        })?;
    if state.spec_hash != spec_hash {
        return Err(UserError::new(format!(
            "cannot resume: `{}` was trained from a different spec (or different --set values)",
            out_dir.display()
        ))
        .hint("resume with the same spec file and the same --set options, or start a new run"));
    }
    let graph = engine.graph().clone();
    let slots = engine.state().first().map_or(0, Vec::len);
    let mut params = Vec::new();
    let mut optimizer_state = Vec::new();
    let mut best = Vec::new();
    for p in &graph.params {
        params.push(weights::param_from(&tensors, &p.name, p.kind, p.rows, p.cols, &path)?);
        let mut slots_of = Vec::new();
        for k in 0..slots {
            slots_of.push(weights::param_from(
                &tensors,
                &format!("state.{k}.{}", p.name),
                p.kind,
                p.rows,
                p.cols,
                &path,
            )?);
        }
        optimizer_state.push(slots_of);
        if tensors.contains_key(&format!("best.{}", p.name)) {
            best.push(weights::param_from(
                &tensors,
                &format!("best.{}", p.name),
                p.kind,
                p.rows,
                p.cols,
                &path,
            )?);
        }
    }
    engine.set_params(&params);
    engine.set_state(&optimizer_state);
    engine.set_updates(state.updates);
    let best = (best.len() == graph.params.len()).then_some(best);
    Ok((state, best))
}

/// Which backend executes the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The ndarray reference interpreter.
    Interp,
    /// Cranelift-compiled fused kernels with gemm matrix products.
    Jit,
}

impl Backend {
    /// The name as given to `--backend`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Interp => "interp",
            Backend::Jit => "jit",
        }
    }
}

/// Creates the engine for a backend, with fresh parameters.
pub fn make_engine(backend: Backend, graph: Graph, seed: u64) -> Result<Box<dyn Engine>, UserError> {
    match backend {
        Backend::Interp => Ok(Box::new(Interpreter::<f32>::new(graph, seed))),
        Backend::Jit => Ok(Box::new(crate::back::jit::Jit::new(graph, seed)?)),
    }
}
