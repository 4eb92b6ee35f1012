//! `netc bench`: how fast a spec trains, like `caffe time`.
//!
//! Times compilation (spec text to a ready training step), one training step with a per-layer
//! breakdown of forward and backward time, and whole epochs over synthetic data as in the
//! standard workloads (inputs uniform in [0, 1), labels uniform): one warm-up epoch, then the
//! best of `repeats`.

use crate::check::Limits;
use crate::graph::{self, Op};
use crate::interp::{Context, Interpreter};
use crate::rng::Rng;
use crate::source::SourceMap;
use ndarray::{Array2, Axis};
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
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            batch: None,
            samples: 60_000,
            repeats: 3,
            profile_steps: 20,
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
    /// Milliseconds per step in its backward nodes (and its parameters' updates).
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
    /// Backward part.
    pub backward_ms: f64,
    /// Update part.
    pub update_ms: f64,
    /// Training samples per second over a whole epoch.
    pub samples_per_second: f64,
    /// Best epoch time in seconds (`samples` samples), if epochs were timed.
    pub epoch_seconds: Option<f64>,
    /// Samples per epoch.
    pub samples: usize,
    /// Matrix-product GFLOP/s over the epoch (2 x multiply-adds, forward + 2 backward).
    pub gflops: f64,
    /// Per-layer breakdown.
    pub layers: Vec<LayerTiming>,
}

/// Benchmarks a spec's training on the interpreter.
pub fn bench_interp(spec_text: &str, options: &BenchOptions) -> Result<BenchReport, String> {
    let started = Instant::now();
    let mut sources = SourceMap::new();
    let id = sources.add("bench.net", spec_text.to_string());
    let compiled = crate::compile(&sources, id, &[], &Limits::of_this_machine());
    let Some((program, _)) = compiled.program else {
        return Err(crate::diag::render_plain(&sources, &compiled.diagnostics));
    };
    let graph = graph::build(&program);
    let mut interp: Interpreter<f32> = Interpreter::new(graph, program.train.seed);
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;

    let batch = options.batch.unwrap_or(program.train.batch).max(1);
    let (input_width, output_width) = (interp.graph.input_width, interp.graph.output_width);
    let samples = options.samples.max(batch);
    let mut rng = Rng::new(1, 0);
    let features = Array2::from_shape_fn((samples, input_width), |_| rng.uniform() as f32);
    let labels: Vec<usize> = (0..samples)
        .map(|_| rng.below(output_width.max(2)).min(output_width.max(1) - 1))
        .collect();
    let lr = program.train.optimizer.lr;

    // Per-layer profile.
    let nodes = interp.graph.nodes.len();
    let mut seconds = vec![0.0; nodes];
    let (mut fwd, mut bwd, mut upd) = (0.0, 0.0, 0.0);
    let steps = options.profile_steps.max(1);
    for step in 0..steps + 2 {
        let start = (step * batch) % (samples - batch + 1);
        let x = features.slice(ndarray::s![start..start + batch, ..]);
        let t = crate::data::targets(&labels[start..start + batch], output_width);
        interp.set_batch(x, t.view());
        let ctx = Context {
            training: true,
            step: step as u64,
            lr,
        };
        let (f, b, u) = (
            interp.graph.forward.clone(),
            interp.graph.backward.clone(),
            interp.graph.update.clone(),
        );
        let mut scratch = vec![0.0; nodes];
        let timings: &mut [f64] = if step >= 2 { &mut seconds } else { &mut scratch };
        let t0 = Instant::now();
        interp.run_timed(&f, &ctx, timings);
        let t1 = Instant::now();
        interp.run_timed(&b, &ctx, timings);
        let t2 = Instant::now();
        interp.updates += 1;
        interp.run_timed(&u, &ctx, timings);
        let t3 = Instant::now();
        if step >= 2 {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            upd += (t3 - t2).as_secs_f64();
        }
    }
    let per_step = |s: f64| s / steps as f64 * 1e3;
    let forward_end = interp.graph.forward.iter().map(|n| n.index()).max().unwrap_or(0);
    let mut layers: Vec<LayerTiming> = interp
        .graph
        .layers
        .iter()
        .map(|l| LayerTiming {
            name: l.name.clone(),
            kind: l.kind.to_string(),
            forward_ms: 0.0,
            backward_ms: 0.0,
        })
        .collect();
    for (h, node) in interp.graph.nodes.iter() {
        let Some(layer) = node.layer else { continue };
        let ms = per_step(seconds[h.index()]);
        if h.index() <= forward_end && !matches!(node.op, Op::Update { .. }) {
            layers[layer].forward_ms += ms;
        } else {
            layers[layer].backward_ms += ms;
        }
    }

    // Whole epochs.
    let mut epoch_seconds = None;
    if options.repeats > 0 {
        let mut best = f64::INFINITY;
        for epoch in 0..=options.repeats {
            let mut order: Vec<usize> = (0..samples).collect();
            Rng::new(2, epoch as u64).shuffle(&mut order);
            let t0 = Instant::now();
            for (step, rows) in order.chunks(batch).enumerate() {
                if rows.len() < batch {
                    break;
                }
                let x = features.select(Axis(0), rows);
                let ls: Vec<usize> = rows.iter().map(|&r| labels[r]).collect();
                let t = crate::data::targets(&ls, output_width);
                interp.set_batch(x.view(), t.view());
                interp.train_step(&Context {
                    training: true,
                    step: step as u64,
                    lr,
                });
            }
            let dt = t0.elapsed().as_secs_f64();
            if epoch > 0 {
                best = best.min(dt);
            }
        }
        epoch_seconds = Some(best);
    }
    let step_ms = per_step(fwd + bwd + upd);
    let full_batches = (samples / batch) * batch;
    let samples_per_second = match epoch_seconds {
        Some(s) => full_batches as f64 / s,
        None => batch as f64 / (step_ms / 1e3),
    };
    let macs = interp.graph.forward_macs_per_sample() as f64;
    let gflops = 2.0 * 3.0 * macs * samples_per_second / 1e9;
    Ok(BenchReport {
        backend: "interp".to_string(),
        batch,
        compile_ms,
        step_ms,
        forward_ms: per_step(fwd),
        backward_ms: per_step(bwd),
        update_ms: per_step(upd),
        samples_per_second,
        epoch_seconds,
        samples,
        gflops,
        layers,
    })
}

/// The human-readable table of a report.
pub fn render(report: &BenchReport) -> String {
    let mut out = format!(
        "backend {}  batch {}  compile {:.2} ms\nstep {:.3} ms (forward {:.3}, backward {:.3}, update {:.3})\n",
        report.backend,
        report.batch,
        report.compile_ms,
        report.step_ms,
        report.forward_ms,
        report.backward_ms,
        report.update_ms
    );
    if let Some(e) = report.epoch_seconds {
        out.push_str(&format!(
            "epoch of {} samples: {:.3} s (best of timed epochs)\n",
            report.samples, e
        ));
    }
    out.push_str(&format!(
        "{:.0} samples/s, {:.1} GFLOP/s in matrix products\n\n",
        report.samples_per_second, report.gflops
    ));
    let w = report.layers.iter().map(|l| l.name.len()).max().unwrap_or(5).max(5);
    out.push_str(&format!(
        "{:<w$}  {:<8}  {:>10}  {:>11}\n",
        "layer", "kind", "forward ms", "backward ms"
    ));
    for l in &report.layers {
        out.push_str(&format!(
            "{:<w$}  {:<8}  {:>10.3}  {:>11.3}\n",
            l.name, l.kind, l.forward_ms, l.backward_ms
        ));
    }
    out
}
