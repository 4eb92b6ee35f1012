//! The JIT against the interpreter: forward outputs, gradients and updated parameters agree on
//! randomly generated networks (every layer kind, activation, loss, optimizer, dropout mode,
//! regularizer; odd widths and batch sizes).

use ndarray::Array2;
use netc::back::engine::Engine;
use netc::back::interp::{Context, Interpreter};
use netc::back::jit::Jit;
use netc::check::Limits;
use netc::diag::source::SourceMap;
use netc::graph;
use netc::rng::Rng;
use proptest::prelude::*;

fn program(text: &str) -> netc::check::Checked {
    let mut sources = SourceMap::new();
    let id = sources.add("g.net", text.to_string());
    let compiled = netc::compile(&sources, id, &[], &Limits { memory_bytes: 1 << 30 });
    let rendered = netc::diag::render_plain(&sources, &compiled.diagnostics);
    compiled
        .checked
        .unwrap_or_else(|| panic!("spec does not compile:\n{rendered}\n{text}"))
}

/// Elementwise agreement: within `rtol` of the element, plus `atol` times the tensor's largest
/// magnitude (summation order and FMA change cancelling sums by that much).
fn close_scaled(a: &Array2<f32>, b: &Array2<f32>, what: &str, rtol: f32, atol: f32) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.dim(), b.dim(), "{} shapes", what);
    let scale = a.iter().chain(b.iter()).fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        let tol = rtol * (x.abs().max(y.abs())) + atol * scale + 1e-7;
        prop_assert!(
            x == y || (x - y).abs() <= tol || (x.is_nan() && y.is_nan()),
            "{} element {}: jit {} vs interp {} (tol {})",
            what,
            i,
            x,
            y,
            tol
        );
    }
    Ok(())
}

fn close(a: &Array2<f32>, b: &Array2<f32>, what: &str, rtol: f32) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.dim(), b.dim(), "{} shapes", what);
    let scale = a.iter().chain(b.iter()).fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        // The absolute floor covers dot products whose terms cancel to a tiny result.
        let tol = rtol * (x.abs().max(y.abs())) + rtol * 0.1 * scale + 1e-6;
        prop_assert!(
            x == y || (x - y).abs() <= tol || (x.is_nan() && y.is_nan()),
            "{} element {}: jit {} vs interp {} (tol {})",
            what,
            i,
            x,
            y,
            tol
        );
    }
    Ok(())
}

/// Runs `steps` training steps on both engines and compares everything after each.
fn differential(text: &str, batch: usize, steps: usize, seed: u64) -> Result<(), TestCaseError> {
    let p = program(text);
    let g = graph::build(&p);
    let (iw, ow) = (g.input_width, g.output_width);
    let mut interp: Interpreter<f32> = Interpreter::new(g.clone(), seed);
    let mut jit = Jit::new(g, seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
    close(&Engine::params(&jit)[0], &interp.params[0], "initial weights", 0.0)?;
    let mut rng = Rng::new(seed, 77);
    let lr = p.program().train.optimizer.lr;
    for step in 0..steps {
        let x = Array2::from_shape_fn((batch, iw), |_| (rng.normal() * 1.5) as f32);
        let t = match p.program().model.loss {
            netc::ir::Loss::CrossEntropy => {
                let mut t = Array2::zeros((batch, ow));
                for r in 0..batch {
                    t[[r, rng.below(ow)]] = 1.0;
                }
                t
            }
            netc::ir::Loss::BinaryCrossEntropy => {
                Array2::from_shape_fn((batch, ow), |_| if rng.uniform() < 0.5 { 0.0 } else { 1.0 })
            }
            netc::ir::Loss::Mse => Array2::from_shape_fn((batch, ow), |_| rng.normal() as f32),
        };
        let ctx = Context {
            training: true,
            step: step as u64,
            lr,
        };
        Engine::set_batch(&mut interp, x.view(), t.view());
        Engine::set_batch(&mut jit, x.view(), t.view());
        let li = Engine::forward(&mut interp, &ctx);
        let lj = Engine::forward(&mut jit, &ctx);
        prop_assert!(
            (li - lj).abs() <= 1e-4 * li.abs().max(1.0),
            "step {}: loss jit {} vs interp {}",
            step,
            lj,
            li
        );
        close(
            &jit.output(),
            &Engine::output(&interp),
            &format!("step {step} output"),
            2e-5,
        )?;
        Engine::backward(&mut interp, &ctx);
        Engine::backward(&mut jit, &ctx);
        for p in 0..interp.params.len() {
            let name = &interp.graph.params[p].name;
            close(
                &jit.gradient(p),
                &Engine::gradient(&interp, p),
                &format!("step {step} gradient of {name}"),
                1e-4,
            )?;
        }
        let before = interp.params.clone();
        Engine::update(&mut interp, &ctx);
        Engine::update(&mut jit, &ctx);
        // Compare the steps taken. Adaptive optimizers divide each gradient element by its own
        // size, so an element that is a cancelling sum (FMA vs separate rounding) differs by a
        // small fraction of the tensor's largest step; allow 0.1% of it.
        for (p, (jit_param, old)) in Engine::params(&jit).iter().zip(&before).enumerate() {
            let name = &interp.graph.params[p].name;
            let (jit_step, interp_step) = (jit_param - old, &interp.params[p] - old);
            close_scaled(
                &jit_step,
                &interp_step,
                &format!("step {step} update of {name}"),
                1e-3,
                1e-3,
            )?;
        }
        // Keep the two on exactly the same parameters, so errors cannot compound.
        let ip = interp.params.clone();
        Engine::set_params(&mut jit, &ip);
        let is = Engine::state(&interp);
        Engine::set_state(&mut jit, &is);
    }
    // Evaluation mode (dropout scaling) too.
    let x = Array2::from_shape_fn((batch, iw), |_| rng.normal() as f32);
    let t = Array2::zeros((batch, ow));
    let ctx = Context {
        training: false,
        step: 0,
        lr,
    };
    Engine::set_batch(&mut interp, x.view(), t.view());
    Engine::set_batch(&mut jit, x.view(), t.view());
    Engine::forward(&mut interp, &ctx);
    Engine::forward(&mut jit, &ctx);
    close(&jit.output(), &Engine::output(&interp), "evaluation output", 2e-5)
}

#[test]
fn a_fixed_mlp_matches() {
    let text = "model m {\n  input 17\n  dense h: 33 relu\n  dropout 0.3\n  dense 5 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"x.csv\" validation 10%\n  optimizer adam lr 0.01\n}\n";
    differential(text, 7, 3, 1).expect("matches");
}

const SPLIT: &str = "model m {\n  input 300\n  dense h: 260 tanh\n  dropout 0.2\n  dense 10 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"x.csv\" validation 10%\n  optimizer adam lr 0.01\n}\n";

/// Products big enough to be split across both cores (half of the output rows each, or of the
/// inner dimension for a few rows), elementwise kernels and their column sums split by rows, and
/// a large parameter updated in two halves, against the interpreter.
#[test]
fn products_split_across_cores_match() {
    differential(SPLIT, 130, 2, 3).expect("matches");
    // A few rows: the weights are read in place (no packing), in two halves of the inner
    // dimension.
    differential(SPLIT, 1, 2, 3).expect("matches");
    differential(SPLIT, 3, 2, 3).expect("matches");
}

/// One core or two: the same parameters, bit for bit, after training steps at batch sizes that
/// split every kind of work, and the same batch-1 outputs.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let g = graph::build(&program(SPLIT));
    let (iw, ow) = (g.input_width, g.output_width);
    let mut engines: Vec<Jit> = [1, 2]
        .map(|threads| Jit::with_threads(g.clone(), 5, threads).expect("compiles"))
        .into();
    let mut rng = Rng::new(5, 1);
    for (step, batch) in [130usize, 64, 3, 1, 200].into_iter().enumerate() {
        let x = Array2::from_shape_fn((batch, iw), |_| rng.normal() as f32);
        let mut t = Array2::zeros((batch, ow));
        for r in 0..batch {
            t[[r, rng.below(ow)]] = 1.0;
        }
        let ctx = Context {
            training: true,
            step: step as u64,
            lr: 0.01,
        };
        for jit in &mut engines {
            jit.set_batch(x.view(), t.view());
            jit.train_step(&ctx);
        }
        assert_eq!(
            Engine::params(&engines[0]),
            Engine::params(&engines[1]),
            "after step {step} (batch {batch})"
        );
    }
    let x = Array2::from_shape_fn((1, iw), |_| rng.normal() as f32);
    let ctx = Context {
        training: false,
        step: 0,
        lr: 0.0,
    };
    let outputs: Vec<Array2<f32>> = engines
        .iter_mut()
        .map(|jit| {
            jit.set_batch(x.view(), Array2::zeros((1, ow)).view());
            jit.forward(&ctx);
            jit.output()
        })
        .collect();
    assert_eq!(outputs[0], outputs[1]);
}

fn layer() -> impl Strategy<Value = String> {
    let width = prop::sample::select(vec![1usize, 2, 3, 4, 5, 8, 17, 31]);
    let act = prop::sample::select(vec![
        "linear",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu(0.2)",
        "prelu(0.1)",
        "elu(0.7)",
        "softmax",
    ]);
    prop_oneof![
        (
            width.clone(),
            act,
            prop::option::of(prop::sample::select(vec!["l1 0.01", "l2 0.05", "l1 0.002 l2 0.01"]))
        )
            .prop_map(|(w, a, r)| format!("dense {w} {a} init normal(0.5) {}", r.unwrap_or(""))),
        (prop::sample::select(vec![1usize, 2, 3]), width.clone(), prop::bool::ANY).prop_map(|(p, w, z)| format!(
            "maxout {} pieces {p}{}",
            p * w,
            if z && p > 1 { " fixed_zero" } else { "" }
        )),
        (
            prop::sample::select(vec!["0.1", "0.5"]),
            prop::sample::select(vec!["inverted", "scale_at_test"])
        )
            .prop_map(|(r, m)| format!("dropout {r} {m}")),
    ]
}

fn network() -> impl Strategy<Value = (String, usize)> {
    let input = prop::sample::select(vec![1usize, 3, 4, 17, 33]);
    let output = prop::sample::select(vec![
        ("dense 3 softmax", "cross_entropy"),
        ("dense 2 softmax", "cross_entropy"),
        ("dense 1 sigmoid", "binary_cross_entropy"),
        ("dense 4 sigmoid", "binary_cross_entropy"),
        ("dense 3 linear", "mse"),
        ("dense 5 tanh", "mse"),
    ]);
    let optimizer = prop::sample::select(vec![
        "sgd lr 0.05",
        "momentum lr 0.05 lambda 0.8",
        "nesterov lr 0.05",
        "adagrad lr 0.05",
        "rmsprop lr 0.01 alpha 0.9",
        "adam lr 0.01",
    ]);
    let batch = prop::sample::select(vec![1usize, 2, 5, 7, 16, 33]);
    (input, prop::collection::vec(layer(), 0..4), output, optimizer, batch, prop::option::of(prop::sample::select(vec!["l2 0.01", "l1 0.001"]))).prop_map(
        |(input, layers, (out, loss), opt, batch, reg)| {
            let body: String = layers.iter().map(|l| format!("  {l}\n")).collect();
            let reg = reg.map(|r| format!("  regularize {r}\n")).unwrap_or_default();
            (
                format!("model r {{\n  input {input}\n{body}  {out}\n  loss {loss}\n}}\ntrain {{\n  data \"x.csv\" validation 10%\n  optimizer {opt}\n{reg}}}\n"),
                batch,
            )
        },
    )
}

proptest! {
    // A fixed seed keeps CI deterministic; set NETC_PROPTEST_SEED to explore other networks.
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            std::env::var("NETC_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261125),
        ),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_networks_match_the_interpreter((text, batch) in network(), seed in 0u64..1000) {
        differential(&text, batch, 3, seed)?;
    }
}

#[test]
fn the_cranelift_matrix_product_matches_ndarray() {
    let mut rng = Rng::new(5, 5);
    for &(m, k, n) in &[
        (1, 1, 1),
        (1, 784, 256),
        (3, 17, 13),
        (4, 8, 8),
        (5, 9, 33),
        (128, 64, 10),
        (7, 3, 1),
    ] {
        let a = Array2::from_shape_fn((m, k), |_| rng.normal() as f32);
        let b = Array2::from_shape_fn((k, n), |_| rng.normal() as f32);
        let mm = netc::back::jit::CompiledMatmul::new(k, n).expect("compiles");
        let mut c = vec![0.0f32; m * n];
        mm.run(
            a.as_slice().expect("contiguous"),
            b.as_slice().expect("contiguous"),
            &mut c,
        );
        let expected = a.dot(&b);
        for (i, (x, y)) in c.iter().zip(expected.iter()).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (k as f32).sqrt() * (1.0 + y.abs()),
                "{m}x{k}x{n} element {i}: {x} vs {y}"
            );
        }
    }
}

/// Evaluating a batch gives the same bits whatever the engine ran before (buffer capacity,
/// stale values in its buffers).
#[test]
fn results_do_not_depend_on_earlier_batches() {
    let text = "model m {\n  input 64\n  dense h1: 32 relu\n  dropout 0.3\n  dense h2: 32 prelu\n  dense out: 10 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"x.csv\" validation 10%\n  optimizer momentum lr 0.05\n}\n";
    let p = program(text);
    let mut rng = Rng::new(3, 3);
    let small = Array2::from_shape_fn((64, 64), |_| rng.uniform() as f32);
    let small_t = Array2::from_shape_fn((64, 10), |(r, c)| if r % 10 == c { 1.0 } else { 0.0 });
    let big = Array2::from_shape_fn((200, 64), |_| rng.uniform() as f32);
    let big_t = Array2::from_shape_fn((200, 10), |(r, c)| if r % 10 == c { 1.0 } else { 0.0 });
    let eval = Context {
        training: false,
        step: 0,
        lr: 0.0,
    };
    let train = Context {
        training: true,
        step: 1,
        lr: 0.05,
    };
    let mut fresh = Jit::new(graph::build(&p), 1).expect("jit");
    fresh.set_batch(big.view(), big_t.view());
    let a = fresh.forward(&eval);
    let out_a = fresh.output();
    let mut used = Jit::new(graph::build(&p), 1).expect("jit");
    used.set_batch(big.view(), big_t.view());
    used.forward(&eval);
    used.set_batch(small.view(), small_t.view());
    used.forward(&train);
    used.backward(&train);
    used.set_batch(big.view(), big_t.view());
    let b = used.forward(&eval);
    assert_eq!(a.to_bits(), b.to_bits(), "loss {a} vs {b}");
    assert!(out_a == used.output());
}
