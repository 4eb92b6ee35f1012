//! One training step of the standard workloads (`../shared/bench/WORKLOADS.md`) on each backend,
//! and the latency of one forward pass of one sample (`infer1`). Whole-epoch figures against
//! PyTorch and JAX come from `benches/compare.sh`, which runs `netc bench` and the peers in one
//! go.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use netc::back::engine::Engine;
use netc::back::interp::Context;
use netc::diag::source::SourceMap;
use netc::run::train::{Backend, make_engine};

/// The engine of a workload and its learning rate.
fn engine(path: &str, backend: Backend) -> (Box<dyn Engine>, f64) {
    let text = std::fs::read_to_string(path).expect("workload spec");
    let mut sources = SourceMap::new();
    let id = sources.add(path, text);
    let checked = netc::compile(&sources, id, &[], &netc::run::limits::of_this_machine())
        .checked
        .expect("workload compiles");
    let lr = checked.program().train.optimizer.lr;
    (
        make_engine(backend, netc::graph::build(&checked), 0).expect("engine"),
        lr,
    )
}

fn batch(engine: &dyn Engine, rows: usize) -> (Array2<f32>, Array2<f32>) {
    let g = engine.graph();
    let x = Array2::from_shape_fn((rows, g.input_width), |(r, c)| ((r * 31 + c * 7) % 100) as f32 / 100.0);
    let t = Array2::from_shape_fn(
        (rows, g.output_width),
        |(r, c)| if r % g.output_width == c { 1.0 } else { 0.0 },
    );
    (x, t)
}

fn training_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(20);
    for (name, rows) in [("mlp", 128), ("deep", 64), ("wide", 256)] {
        for (backend_name, backend) in [("jit", Backend::Jit), ("interp", Backend::Interp)] {
            let (mut e, lr) = engine(&format!("benches/workloads/{name}.net"), backend);
            let (x, t) = batch(e.as_ref(), rows);
            e.set_batch(x.view(), t.view());
            let mut step = 0;
            group.bench_function(format!("{name} {backend_name}"), |b| {
                b.iter(|| {
                    step += 1;
                    e.train_step(&Context {
                        training: true,
                        step,
                        lr,
                    })
                })
            });
        }
    }
    group.finish();
}

fn inference(c: &mut Criterion) {
    let mut group = c.benchmark_group("infer1");
    for (backend_name, backend) in [("jit", Backend::Jit), ("interp", Backend::Interp)] {
        let (mut e, _) = engine("benches/workloads/mlp.net", backend);
        let (x, t) = batch(e.as_ref(), 1);
        let ctx = Context {
            training: false,
            step: 0,
            lr: 0.0,
        };
        group.bench_function(format!("mlp {backend_name}"), |b| {
            b.iter(|| {
                e.set_batch(x.view(), t.view());
                e.forward(&ctx)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, training_steps, inference);
criterion_main!(benches);
