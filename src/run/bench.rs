//! `netc bench`: how fast a spec trains, like `caffe time`.
//!
//! Times compilation (spec text to a ready training step), one training step with a per-layer
//! breakdown of forward and backward time, and whole epochs over synthetic data as in the
//! standard workloads (inputs uniform in [0, 1), labels uniform): one warm-up epoch, then the
//! best of `repeats`.

use crate::back::engine::Engine;
use crate::back::interp::Context;
use crate::diag::{Code, Diagnostic};
use crate::graph;
use crate::rng::Rng;
use crate::run::spec::Loaded;
use crate::run::train::{Backend, make_engine};
use ndarray::Array2;
use serde::Serialize;
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Batch size (default: the spec's).
    pub batch: Option<usize>,
    /// Samples per synthetic epoch.
    pub samples: usize,
    /// Timed epochs after the warm-up (the best counts); 0 skips epoch timing.
    pub repeats: usize,
    /// Steps timed for the per-layer breakdown.
    pub profile_steps: usize,
    /// Also write the report (JSON) here.
    pub report: Option<std::path::PathBuf>,
    /// The spec file, if any: `report` may not overwrite it.
    pub spec: Option<std::path::PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            batch: None,
            samples: 60_000,
            repeats: 3,
            profile_steps: 20,
            report: None,
            spec: None,
        }
    }
}

/// Time per layer, summed over its forward and backward nodes.
#[derive(Debug, Clone, Serialize)]
pub struct LayerTiming {
    /// The layer's name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Milliseconds per step in its forward nodes.
    pub forward_ms: f64,
    /// Milliseconds per step in its backward nodes and its parameters' updates.
    pub backward_ms: f64,
}

/// The figures of `netc bench --report`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The backend measured.
    pub backend: String,
    /// The batch size.
    pub batch: usize,
    /// Spec text to a ready training step, in milliseconds.
    pub compile_ms: f64,
    /// One training step (forward, backward, update), in milliseconds.
    pub step_ms: f64,
    /// Forward part of a step.
    pub forward_ms: f64,
    /// Backward and update part.
    pub backward_ms: f64,
    /// Training samples per second over a whole epoch.
    pub samples_per_second: f64,
    /// Best epoch time in seconds (`samples` samples), if epochs were timed.
    pub epoch_seconds: Option<f64>,
    /// Samples per epoch.
    pub samples: usize,
    /// Matrix-product GFLOP/s over the epoch (2 x multiply-adds, forward + 2 backward).
    pub gflops: f64,
    /// Latency of one forward pass of one sample (evaluation mode), in microseconds.
    pub latency_us: f64,
    /// Per-layer breakdown.
    pub layers: Vec<LayerTiming>,
}

impl BenchOptions {
    /// Refuses options that measure nothing.
    pub fn check(&self) -> Result<(), Box<Diagnostic>> {
        if self.batch == Some(0) || self.samples == 0 {
            return Err(
                Diagnostic::general(Code::BadFlag, "--batch and --samples must be at least 1")
                    .with_hint("e.g. --batch 128 --samples 60000")
                    .into(),
            );
        }
        Ok(())
    }
}

/// Benchmarks a loaded spec's training on a backend (and writes the report file, if asked).
/// Its compile time counts from reading the spec file (`loaded.load_ms`) to a ready training
/// step.
pub fn bench(loaded: &Loaded, options: &BenchOptions, backend: Backend) -> Result<BenchReport, Box<Diagnostic>> {
    options.check()?;
    check_memory(loaded, options, &crate::run::limits::of_this_machine())?;
    if let Some(report) = &options.report {
        let report = crate::run::outputs::Named::new(report, "--report");
        crate::run::outputs::check_writable(&report)?;
        let spec = options
            .spec
            .iter()
            .map(|s| crate::run::outputs::Named::new(s, "the spec"));
        crate::run::outputs::refuse_overwriting_inputs(&[report], &spec.collect::<Vec<_>>())?;
    }
    let started = Instant::now();
    let program = loaded.run.program();
    let graph = graph::build(&loaded.run.checked);
    let mut engine = make_engine(backend, graph, program.train.seed)?;
    let compile_ms = loaded.load_ms + started.elapsed().as_secs_f64() * 1e3;

    let batch = options.batch.unwrap_or(program.train.batch).max(1);
    let data = Synthetic::new(
        engine.as_ref(),
        options.samples.max(batch),
        batch,
        program.train.optimizer.lr,
    );
    let layers = profile_layers(engine.as_mut(), &data, options.profile_steps.max(1));
    let forward_ms: f64 = layers.iter().map(|l| l.forward_ms).sum();
    let backward_ms: f64 = layers.iter().map(|l| l.backward_ms).sum();
    let epoch_seconds = (options.repeats > 0).then(|| best_epoch_seconds(engine.as_mut(), &data, options.repeats));
    let latency_us = batch1_latency_us(engine.as_mut(), &data);
    let step_ms = forward_ms + backward_ms;
    let samples = data.labels.len();
    let full_batches = (samples / batch) * batch;
    let samples_per_second = match epoch_seconds {
        Some(s) => full_batches as f64 / s,
        None => batch as f64 / (step_ms / 1e3),
    };
    let macs = engine.graph().forward_macs_per_sample() as f64;
    let gflops = 2.0 * 3.0 * macs * samples_per_second / 1e9;
    let report = BenchReport {
        backend: engine.name().to_string(),
        batch,
        compile_ms,
        step_ms,
        forward_ms,
        backward_ms,
        samples_per_second,
        epoch_seconds,
        samples,
        gflops,
        latency_us,
        layers,
    };
    if let Some(path) = &options.report {
        let json = serde_json::to_string_pretty(&report).expect("reports serialize");
        crate::run::write_file(path, json.as_bytes(), "check the path")?;
    }
    Ok(report)
}

/// Refuses a `--batch` or `--samples` whose training and synthetic data would not fit in
/// memory: the same estimate as the checker's E0017, at the flag's batch size.
fn check_memory(loaded: &Loaded, options: &BenchOptions, limits: &crate::check::Limits) -> Result<(), Box<Diagnostic>> {
    let checked = &loaded.run.checked;
    let program = checked.program();
    let batch = options.batch.unwrap_or(program.train.batch) as u128;
    let training = crate::check::training_bytes(program, checked.shapes(), batch);
    let samples = options.samples.max(batch as usize) as u128;
    let data = samples * (program.model.input_width() as u128 + 2) * 4;
    let need = training.saturating_add(data);
    if need <= limits.memory_bytes as u128 {
        return Ok(());
    }
    let human = crate::check::human_bytes;
    Err(Diagnostic::general(
        Code::BadFlag,
        format!(
            "benchmarking with batches of {batch} over {samples} synthetic samples needs about {} of memory, more than the {} available",
            human(need),
            human(limits.memory_bytes as u128)
        ),
    )
    .with_note(format!(
        "training at that batch size: {}; the synthetic data: {}",
        human(training),
        human(data)
    ))
    .with_hint("pass a smaller --batch or --samples (or set NETC_MEMORY_LIMIT if the machine has more memory)")
    .into())
}

/// The standard workloads' synthetic data: inputs uniform in [0, 1), labels uniform.
struct Synthetic {
    features: Array2<f32>,
    labels: Vec<usize>,
    output_width: usize,
    batch: usize,
    lr: f64,
}

impl Synthetic {
    fn new(engine: &dyn Engine, samples: usize, batch: usize, lr: f64) -> Synthetic {
        let (input_width, output_width) = (engine.graph().input_width, engine.graph().output_width);
        let mut rng = Rng::new(1, 0);
        let features = Array2::from_shape_fn((samples, input_width), |_| rng.uniform() as f32);
        let labels: Vec<usize> = (0..samples)
            .map(|_| rng.below(output_width.max(2)).min(output_width.max(1) - 1))
            .collect();
        Synthetic {
            features,
            labels,
            output_width,
            batch,
            lr,
        }
    }
}

/// Per-layer profile: two warm-up steps, then the mean of `steps`.
fn profile_layers(engine: &mut dyn Engine, data: &Synthetic, steps: usize) -> Vec<LayerTiming> {
    let (batch, samples) = (data.batch, data.labels.len());
    let layer_count = engine.graph().layers.len();
    let (mut forward, mut backward) = (vec![0.0; layer_count], vec![0.0; layer_count]);
    for step in 0..steps + 2 {
        let start = (step * batch) % (samples - batch + 1);
        let x = data.features.slice(ndarray::s![start..start + batch, ..]);
        let t = crate::data::targets(&data.labels[start..start + batch], data.output_width);
        engine.set_batch(x, t.view());
        let ctx = Context {
            training: true,
            step: step as u64,
            lr: data.lr,
        };
        let (f, b) = engine.profile_step(&ctx);
        if step >= 2 {
            for (acc, v) in forward.iter_mut().zip(f) {
                *acc += v;
            }
            for (acc, v) in backward.iter_mut().zip(b) {
                *acc += v;
            }
        }
    }
    let per_step = |s: f64| s / steps as f64 * 1e3;
    engine
        .graph()
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| LayerTiming {
            name: l.name.clone(),
            kind: l.kind.to_string(),
            forward_ms: per_step(forward[i]),
            backward_ms: per_step(backward[i]),
        })
        .collect()
}

/// Whole epochs: one warm-up, then the best of `repeats`, in seconds.
fn best_epoch_seconds(engine: &mut dyn Engine, data: &Synthetic, repeats: usize) -> f64 {
    let mut best = f64::INFINITY;
    for epoch in 0..=repeats {
        let mut order: Vec<usize> = (0..data.labels.len()).collect();
        Rng::new(2, epoch as u64).shuffle(&mut order);
        let t0 = Instant::now();
        for (step, rows) in order.chunks(data.batch).enumerate() {
            if rows.len() < data.batch {
                break;
            }
            let ls: Vec<usize> = rows.iter().map(|&r| data.labels[r]).collect();
            let t = crate::data::targets(&ls, data.output_width);
            engine.set_batch_rows(data.features.view(), rows, t.view());
            engine.train_step(&Context {
                training: true,
                step: step as u64,
                lr: data.lr,
            });
        }
        let dt = t0.elapsed().as_secs_f64();
        if epoch > 0 {
            best = best.min(dt);
        }
    }
    best
}

/// Batch-1 latency: the best of five runs of 2,000 forward passes, in microseconds.
fn batch1_latency_us(engine: &mut dyn Engine, data: &Synthetic) -> f64 {
    let (x1, t1) = (
        data.features.slice(ndarray::s![0..1, ..]).to_owned(),
        crate::data::targets(&data.labels[..1], data.output_width),
    );
    let eval = Context {
        training: false,
        step: 0,
        lr: 0.0,
    };
    let mut latency_us = f64::INFINITY;
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..2000 {
            engine.set_batch(x1.view(), t1.view());
            engine.forward(&eval);
        }
        latency_us = latency_us.min(t0.elapsed().as_secs_f64() / 2000.0 * 1e6);
    }
    latency_us
}

/// The human-readable table of a report.
pub fn render(report: &BenchReport) -> String {
    let mut out = format!(
        "backend {}  batch {}  compile {:.2} ms\nstep {:.3} ms (forward {:.3}, backward and update {:.3})\n",
        report.backend, report.batch, report.compile_ms, report.step_ms, report.forward_ms, report.backward_ms
    );
    if let Some(e) = report.epoch_seconds {
        out.push_str(&format!(
            "epoch of {} samples: {:.3} s (best of timed epochs)\n",
            report.samples, e
        ));
    }
    out.push_str(&format!("batch-1 forward latency: {:.1} us\n", report.latency_us));
    out.push_str(&format!(
        "{:.0} samples/s, {:.1} GFLOP/s in matrix products\n\n",
        report.samples_per_second, report.gflops
    ));
    let name = |l: &LayerTiming| crate::diag::shown::name_cell(&l.name, 40);
    let w = report
        .layers
        .iter()
        .map(|l| name(l).chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "{:<w$}  {:<8}  {:>10}  {:>11}\n",
        "layer", "kind", "forward ms", "backward ms"
    ));
    for l in &report.layers {
        out.push_str(&format!(
            "{:<w$}  {:<8}  {:>10.3}  {:>11.3}\n",
            name(l),
            l.kind,
            l.forward_ms,
            l.backward_ms
        ));
    }
    out
}
