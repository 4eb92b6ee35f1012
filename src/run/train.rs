//! Training: epochs of shuffled batches, validation, early stopping, checkpoints that resume
//! bit-for-bit, divergence detection, and the run directory (its files are described in
//! [`crate::run::artifacts`]; every one is written atomically).

use crate::back::engine::Engine;
use crate::back::interp::{Context, Interpreter};
use crate::check::Checked;
use crate::data::{self, DataDirs, Splits};
use crate::diag::Diagnostic;
use crate::graph::{self, Graph};
use crate::ir::Metric;
use crate::ir::Program;
use crate::report::metrics;
use crate::rng::{Rng, streams};
use crate::run::checkpoint::{self, State};
use crate::run::sanity::{self, Cause};
use crate::run::{artifacts, outputs, weights};
use ndarray::{Array2, Axis};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub use crate::run::artifacts::{EpochRecord, LayerGradStats, Report};

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

    /// A hash of the checked program (overrides applied): comments and layout do not change
    /// it, any value that changes what is trained does. Weights and executables record it.
    pub fn spec_hash(&self) -> String {
        hash_program(self.program())
    }

    /// The hash a checkpoint resumes under: [`Run::spec_hash`] of the program with its number
    /// of epochs left out, so that a run can be extended with a larger `--epochs`.
    pub fn resume_hash(&self) -> String {
        let mut program = self.program().clone();
        program.train.epochs = 0;
        hash_program(&program)
    }
}

/// FNV-1a over the program's JSON form (deterministic: the IR holds no maps and no spans).
fn hash_program(program: &Program) -> String {
    let json = serde_json::to_string(program).expect("programs serialize");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in json.as_bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
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
    /// The run directory (default `runs/<model>-<timestamp>/`). It must be new or empty
    /// unless `force`.
    pub out: Option<PathBuf>,
    /// Replace the run in `out` (its netc files are removed first).
    pub force: bool,
    /// The spec file, if there is one: no output may overwrite it.
    pub spec: Option<PathBuf>,
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

/// Trains a spec. Errors are about the user's input (data, resume directory) or divergence.
pub fn train(run: &Run, options: &TrainOptions) -> Result<Outcome, Box<Diagnostic>> {
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
    fn take(&mut self, backend: Backend, graph: Graph, seed: u64) -> Result<Box<dyn Engine>, Box<Diagnostic>> {
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
pub fn train_with(run: &Run, options: &TrainOptions, engines: &mut Engines) -> Result<Outcome, Box<Diagnostic>> {
    let started = Instant::now();
    let program = run.program();
    let graph = graph::build(&run.checked);

    if let Some(dir) = &options.resume {
        checkpoint::check_resumable(dir)?;
    }
    check_outputs(run, options)?;
    let splits = data::load(&program.train.data, &options.data_dirs, &options.spec_dir)?;
    let file = match &program.train.data.source {
        crate::ir::DataSource::Files(f) => Some(f.features.as_str()),
        crate::ir::DataSource::Named(_) => None,
    };
    sanity::check_data_fits(&graph, &splits, file)?;
    crate::diag::emit_human(
        &crate::diag::source::SourceMap::new(),
        &sanity::data_warnings(&graph, &splits),
    );
    let engine = engines.take(options.backend, graph, program.train.seed)?;
    let out_dir = match (&options.resume, &options.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => {
            outputs::claim_dir(dir, artifacts::SPEC, options.force, artifacts::FILES)?;
            dir.clone()
        }
        (None, None) => {
            let dir = outputs::unique_dir(&default_run_dir(&program.model.name))?;
            outputs::claim_dir(&dir, artifacts::SPEC, false, &[])?;
            dir
        }
    };
    let mut session = Session::open(run, options, splits, out_dir, engine, started)?;
    let config = &program.train;
    let mut order: Vec<usize> = Vec::new();
    let mut order_epoch = usize::MAX;
    while session.state.epoch < config.epochs && !session.state.stopped_early {
        let epoch = session.state.epoch;
        if order_epoch != epoch {
            order = (0..session.splits.train.len()).collect();
            Rng::new(config.seed, streams::SHUFFLE + epoch as u64).shuffle(&mut order);
            order_epoch = epoch;
        }
        if let Some(step) = session.train_epoch(&order)? {
            let out_dir = session.out_dir.clone();
            engines.keep(options.backend, session.engine);
            return Ok(Outcome::Interrupted {
                out_dir,
                epoch: epoch + 1,
                step,
            });
        }
    }
    session.finish(engines)
}

/// One training session of a run: the data, the engine and the state that checkpoints save.
struct Session<'a> {
    run: &'a Run,
    options: &'a TrainOptions,
    splits: Splits,
    out_dir: PathBuf,
    engine: Box<dyn Engine>,
    state: State,
    best_params: Option<Vec<Array2<f32>>>,
    started: Instant,
    /// Wall-clock seconds of earlier sessions (a resumed run).
    wall_before: f64,
    /// Rows per step, and steps per epoch.
    batch: usize,
    batches: usize,
}

impl<'a> Session<'a> {
    /// Starts a new run (writing `spec.net` and `settings.json`) or resumes one from its
    /// checkpoint.
    fn open(
        run: &'a Run,
        options: &'a TrainOptions,
        splits: Splits,
        out_dir: PathBuf,
        mut engine: Box<dyn Engine>,
        started: Instant,
    ) -> Result<Session<'a>, Box<Diagnostic>> {
        let n = splits.train.len();
        let batch = run.program().train.batch.min(n).max(1);
        let (state, best_params) = if options.resume.is_some() {
            crate::fsutil::remove_stale_temps(&out_dir);
            let (state, best) = checkpoint::load(&out_dir, engine.as_mut(), &run.resume_hash())?;
            let epochs = run.program().train.epochs;
            checkpoint::check_counters(&state, &out_dir, epochs, n.div_ceil(batch), n)?;
            // The same program, perhaps with more epochs (or other comments): the run directory
            // says what it is now. A spec read from the run directory itself stays as it is.
            let own = options
                .spec
                .as_ref()
                .is_some_and(|s| outputs::same_file(s, &out_dir.join(artifacts::SPEC)));
            if own {
                artifacts::write_settings(&out_dir, run)?;
            } else {
                artifacts::write_spec_and_settings(&out_dir, run)?;
            }
            (state, best)
        } else {
            artifacts::write_spec_and_settings(&out_dir, run)?;
            (State::new(run.resume_hash()), None)
        };
        Ok(Session {
            run,
            options,
            out_dir,
            engine,
            wall_before: state.wall_seconds,
            state,
            best_params,
            started,
            batch,
            batches: n.div_ceil(batch),
            splits,
        })
    }

    /// Trains the rest of the current epoch over `order` and ends it. Returns the step an
    /// interrupt (Ctrl-C or the test's step limit) stopped at, after checkpointing.
    fn train_epoch(&mut self, order: &[usize]) -> Result<Option<usize>, Box<Diagnostic>> {
        let run = self.run;
        let config = &run.program().train;
        let epoch = self.state.epoch;
        let lr = config.schedule.rate(config.optimizer.lr, epoch);
        let bar = progress_bar(self.options.progress, self.batches, epoch, config.epochs);
        let epoch_started = Instant::now();
        let n = self.splits.train.len();
        while self.state.step_in_epoch < self.batches {
            let step = self.state.step_in_epoch;
            let rows = &order[step * self.batch..((step + 1) * self.batch).min(n)];
            self.step(rows, lr)?;
            if let Some(bar) = &bar {
                bar.set_position(self.state.step_in_epoch as u64);
                bar.set_message(format!("loss {:.4}", self.state.loss_sum / self.state.seen as f64));
            }
            let asked = self.options.interrupt.load(Ordering::SeqCst);
            let limit = self
                .options
                .stop_after_steps
                .is_some_and(|s| self.state.global_step >= s);
            if (asked || limit) && self.state.step_in_epoch < self.batches {
                self.state.epoch_seconds += epoch_started.elapsed().as_secs_f64();
                self.state.train_seconds += epoch_started.elapsed().as_secs_f64();
                self.state.wall_seconds = self.wall_before + self.started.elapsed().as_secs_f64();
                if let Some(bar) = bar {
                    bar.abandon();
                }
                checkpoint::save(
                    &self.out_dir,
                    self.engine.as_ref(),
                    &self.state,
                    self.best_params.as_deref(),
                )?;
                artifacts::write_metrics(&self.out_dir, &self.state.history)?;
                return Ok(Some(self.state.step_in_epoch));
            }
        }
        let train_time = epoch_started.elapsed().as_secs_f64();
        self.state.epoch_seconds += train_time;
        self.state.train_seconds += train_time;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        self.end_epoch(lr)?;
        Ok(None)
    }

    /// One training step on `rows` of the training data.
    fn step(&mut self, rows: &[usize], lr: f64) -> Result<(), Box<Diagnostic>> {
        let engine = self.engine.as_mut();
        let labels: Vec<usize> = rows.iter().map(|&r| self.splits.train.labels[r]).collect();
        let t = data::targets(&labels, engine.graph().output_width);
        let config = &self.run.program().train;
        match (config.augment, &self.run.program().model.input[..]) {
            (Some(augment), &[c, h, w]) => {
                let features = self.splits.train.features.view();
                let norm = &self.splits.normalization;
                let seed = config.seed;
                let images = data::augment::batch(features, rows, (c, h, w), norm, augment, seed, self.state.epoch);
                engine.set_batch(images.view(), t.view());
            }
            _ => engine.set_batch_rows(self.splits.train.features.view(), rows, t.view()),
        }
        let ctx = Context {
            training: true,
            step: self.state.global_step,
            lr,
        };
        let loss = engine.forward(&ctx);
        let at = (self.state.epoch, self.state.step_in_epoch);
        if !loss.is_finite() {
            let cause = Cause::NonFiniteLoss(loss);
            return Err(sanity::divergence(engine, at, cause, lr, &self.out_dir, &self.state));
        }
        let first = *self.state.first_loss.get_or_insert(loss);
        if sanity::loss_exploded(first, loss) {
            let cause = Cause::Exploded(first, loss);
            return Err(sanity::divergence(engine, at, cause, lr, &self.out_dir, &self.state));
        }
        engine.backward(&ctx);
        if self.options.grad_stats {
            update_with_grad_stats(engine, &ctx, &mut self.state.grad_sums);
        } else {
            engine.update(&ctx);
        }
        let out = engine.output();
        let state = &mut self.state;
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
        Ok(())
    }

    /// Validates, records and checkpoints a finished epoch, and decides on early stopping.
    fn end_epoch(&mut self, lr: f64) -> Result<(), Box<Diagnostic>> {
        let epoch = self.state.epoch;
        let engine = self.engine.as_ref();
        if !engine.params().iter().all(|p| p.iter().all(|v| v.is_finite())) {
            let at = (epoch, self.state.step_in_epoch.saturating_sub(1));
            let cause = Cause::NonFiniteParameters;
            return Err(sanity::divergence(engine, at, cause, lr, &self.out_dir, &self.state));
        }
        let validation = self
            .splits
            .validation
            .as_ref()
            .map(|v| metrics::evaluate(self.engine.as_mut(), v));
        let state = &mut self.state;
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: state.loss_sum / state.seen.max(1) as f64,
            train_accuracy: state.correct as f64 / state.seen.max(1) as f64,
            val_loss: validation.as_ref().map(|v| v.loss),
            val_accuracy: validation.as_ref().map(|v| v.accuracy),
            lr,
            seconds: state.epoch_seconds,
            grad_stats: grad_stats_of(self.engine.graph(), &state.grad_sums, self.batches),
        };
        if self.options.progress != Progress::Quiet {
            crate::outln!("{}", epoch_line(&record, self.run.program().train.epochs));
        }
        self.watch(&record);
        let state = &mut self.state;
        state.history.push(record);
        state.epoch += 1;
        state.step_in_epoch = 0;
        state.loss_sum = 0.0;
        state.grad_sums.clear();
        state.correct = 0;
        state.seen = 0;
        state.epoch_seconds = 0.0;
        state.wall_seconds = self.wall_before + self.started.elapsed().as_secs_f64();
        artifacts::write_metrics(&self.out_dir, &state.history)?;
        checkpoint::save(&self.out_dir, self.engine.as_ref(), state, self.best_params.as_deref())
    }

    /// Early stopping (or, without it, remembering the best validation loss).
    fn watch(&mut self, record: &EpochRecord) {
        let run = self.run;
        let config = &run.program().train;
        let watched = match config.early_stop {
            Some(e) => match e.metric {
                Metric::ValLoss => record.val_loss.map(|v| (v, true)),
                Metric::ValAccuracy => record.val_accuracy.map(|v| (v, false)),
            },
            None => record.val_loss.map(|v| (v, true)),
        };
        let Some((value, lower_is_better)) = watched else {
            return;
        };
        let state = &mut self.state;
        let min_delta = config.early_stop.map_or(0.0, |e| e.min_delta);
        let improved = match state.best {
            None => true,
            Some((best, _)) if lower_is_better => value < best - min_delta,
            Some((best, _)) => value > best + min_delta,
        };
        if improved {
            state.best = Some((value, record.epoch));
            state.bad_epochs = 0;
            if config.early_stop.is_some_and(|e| e.restore_best) {
                // The old best goes first: never two copies beside the engine's own.
                self.best_params = None;
                self.best_params = Some(self.engine.params());
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

    /// Evaluates the final model and writes the weights, curves and report.
    fn finish(mut self, engines: &mut Engines) -> Result<Outcome, Box<Diagnostic>> {
        if let Some(best) = &self.best_params {
            self.engine.set_params(best);
        }
        let engine = self.engine.as_mut();
        let state = &self.state;
        let train_eval = metrics::evaluate(engine, &self.splits.train);
        let val_eval = self.splits.validation.as_ref().map(|v| metrics::evaluate(engine, v));
        let test_eval = self.splits.test.as_ref().map(|t| metrics::evaluate(engine, t));
        let stop_epoch = state.stopped_early.then_some(state.history.len());
        let report = Report {
            train: train_eval.figures(),
            validation: val_eval.map(|v| v.figures()),
            test: test_eval.map(|t| t.figures()),
            epochs_run: state.history.len(),
            best_epoch: state.best.map(|(_, e)| e),
            stop_reason: if state.stopped_early { "early_stop" } else { "completed" }.to_string(),
            wall_seconds: self.wall_before + self.started.elapsed().as_secs_f64(),
            samples_per_second: state.samples_trained as f64 / state.train_seconds.max(1e-9),
            peak_memory_bytes: crate::run::limits::peak_resident_bytes(),
        };
        let final_params = engine.params();
        let tensors = weights::model_outs(engine.graph(), &final_params, &self.splits.normalization);
        let mut meta = crate::run::provenance::metadata(self.run);
        let name = &self.run.program().model.name;
        meta.insert("format".to_string(), "pt".to_string());
        meta.insert("netc.model".to_string(), name.clone());
        let dir = &self.out_dir;
        artifacts::write_with(&dir.join(artifacts::WEIGHTS), |out| {
            weights::encode_to(out, &tensors, &meta)
        })?;
        let svg = crate::report::plot::curves_svg(name, &state.history, report.best_epoch, stop_epoch);
        artifacts::write(&dir.join(artifacts::CURVES), svg.as_bytes())?;
        if state.history.iter().any(|r| !r.grad_stats.is_empty()) {
            let svg = crate::report::plot::gradients_svg(name, &state.history);
            artifacts::write(&dir.join(artifacts::GRADIENTS), svg.as_bytes())?;
        }
        artifacts::write_report(dir, &report, self.options.report.as_deref())?;
        engines.keep(self.options.backend, self.engine);
        Ok(Outcome::Finished {
            out_dir: self.out_dir,
            report,
            history: self.state.history,
            params: final_params,
        })
    }
}

/// Updates the parameters and adds this step's per-layer mean |gradient| and update/weight
/// ratio of every weight tensor to `sums`.
fn update_with_grad_stats(engine: &mut dyn Engine, ctx: &Context, sums: &mut Vec<(f64, f64)>) {
    let before = engine.params();
    let weights: Vec<usize> = (0..before.len())
        .filter(|&p| engine.graph().params[p].kind.is_regularized())
        .collect();
    let grads: Vec<f64> = weights
        .iter()
        .map(|&p| engine.gradient(p).iter().map(|g| g.abs() as f64).sum::<f64>() / before[p].len().max(1) as f64)
        .collect();
    engine.update(ctx);
    let after = engine.params();
    sums.resize(weights.len(), (0.0, 0.0));
    for (k, &p) in weights.iter().enumerate() {
        let norm = |a: &Array2<f32>| a.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        let ratio = norm(&(&after[p] - &before[p])) / norm(&before[p]).max(1e-30);
        sums[k].0 += grads[k];
        sums[k].1 += ratio;
    }
}

/// The line `netc train` prints before training: the model, its size, optimizer and backend.
pub fn banner(run: &Run, backend: Backend) -> String {
    format!(
        "training {} ({} parameters) with {} on the {} backend",
        run.program().model.name,
        graph::build(&run.checked).parameter_count(),
        run.program().train.optimizer.kind.name(),
        backend.name()
    )
}

/// The lines `netc train` prints after a finished run: the final figures and the directory.
pub fn render_report(report: &Report, out_dir: &Path) -> String {
    let figures = |name: &str, f: Option<metrics::Figures>| match f {
        Some(f) => format!("{name} loss {:.4} accuracy {:.2}%\n", f.loss, f.accuracy * 100.0),
        None => format!("{name}: none\n"),
    };
    let mut out = figures("train", Some(report.train));
    out.push_str(&figures("validation", report.validation));
    out.push_str(&figures("test", report.test));
    out.push_str(&format!(
        "{} epochs ({}), {:.0} samples/s, {:.1}s; run directory: {}\n",
        report.epochs_run,
        report.stop_reason,
        report.samples_per_second,
        report.wall_seconds,
        out_dir.display()
    ));
    out
}

/// Refuses, before any work, outputs that cannot be written or that would overwrite an input:
/// `--report`, and the files of the run directory.
fn check_outputs(run: &Run, options: &TrainOptions) -> Result<(), Box<Diagnostic>> {
    let mut inputs = outputs::data_inputs(&run.program().train.data, &options.spec_dir);
    inputs.extend(options.spec.iter().map(|s| outputs::Named::new(s, "the spec")));
    let mut written = Vec::new();
    if let Some(report) = &options.report {
        let report = outputs::Named::new(report, "--report");
        outputs::check_writable(&report)?;
        written.push(report);
    }
    if let Some(dir) = options
        .out
        .as_ref()
        .filter(|_| !options.force && options.resume.is_none())
    {
        outputs::refuse_occupied(dir, artifacts::SPEC)?;
    }
    if let Some(dir) = options.resume.as_ref().or(options.out.as_ref()) {
        let flag = if options.resume.is_some() { "--resume" } else { "--out" };
        let named = |f: &&str| outputs::Named::new(dir.join(f), flag);
        // A resumed run keeps its `spec.net` (`netc train runs/x/spec.net --resume runs/x`).
        let kept = |f: &&&str| options.resume.is_none() || **f != artifacts::SPEC;
        written.extend(artifacts::FILES.iter().filter(kept).map(named));
    }
    outputs::refuse_overwriting_inputs(&written, &inputs)
}

/// `runs/<model>-<UTC timestamp>` (`outputs::unique_dir` adds a suffix if that exists).
pub fn default_run_dir(model: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    let stamp = format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", t / 3600, t / 60 % 60, t % 60);
    PathBuf::from("runs").join(format!("{model}-{stamp}"))
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

/// Per-layer means over an epoch of `steps` steps from the sums kept in the training state.
fn grad_stats_of(graph: &Graph, sums: &[(f64, f64)], steps: usize) -> Vec<LayerGradStats> {
    let weights = graph.params.iter().filter(|p| p.kind.is_regularized());
    weights
        .zip(sums)
        .map(|(p, &(g, r))| LayerGradStats {
            layer: graph.layers[p.layer].name.clone(),
            mean_abs_grad: g / steps.max(1) as f64,
            update_ratio: r / steps.max(1) as f64,
        })
        .collect()
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
pub fn make_engine(backend: Backend, graph: Graph, seed: u64) -> Result<Box<dyn Engine>, Box<Diagnostic>> {
    match backend {
        Backend::Interp => Ok(Box::new(Interpreter::<f32>::new(graph, seed))),
        Backend::Jit => Ok(Box::new(crate::back::jit::Jit::new(graph, seed)?)),
    }
}
