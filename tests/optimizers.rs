//! Each optimizer and schedule over three steps, against values computed by hand (the formulas
//! of docs/language.md evaluated independently), and the dropout identities of the lecture.

use ndarray::{Array2, arr2};
use netc::back::interp::{Context, Interpreter};
use netc::check::Limits;
use netc::diag::source::SourceMap;
use netc::graph;
use netc::ir::{OptimizerKind, Schedule};
use netc::ops::UpdateOp;

const GRADIENTS: [f64; 3] = [0.5, -0.25, 0.1];

fn three_steps(kind: OptimizerKind) -> Vec<f64> {
    let mut w = arr2(&[[1.0f64]]);
    let mut state = vec![Array2::zeros((1, 1)); kind.state_slots()];
    GRADIENTS
        .iter()
        .enumerate()
        .map(|(t, &g)| {
            UpdateOp::apply(&mut w, &mut state, &arr2(&[[g]]), kind, 0.1, t as u64 + 1);
            w[[0, 0]]
        })
        .collect()
}

fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-12, "{what}: got {actual:?}, expected {expected:?}");
    }
}

#[test]
fn sgd() {
    assert_close(&three_steps(OptimizerKind::Sgd), &[0.95, 0.975, 0.965], "sgd");
}

#[test]
fn momentum() {
    assert_close(
        &three_steps(OptimizerKind::Momentum { lambda: 0.9 }),
        &[0.95, 0.93, 0.902],
        "momentum",
    );
}

#[test]
fn nesterov() {
    assert_close(
        &three_steps(OptimizerKind::Nesterov { lambda: 0.9 }),
        &[0.905, 0.912, 0.8768],
        "nesterov",
    );
}

#[test]
fn adagrad() {
    assert_close(
        &three_steps(OptimizerKind::Adagrad { eps: 1e-8 }),
        &[0.900000002, 0.9447213607499958, 0.9271123429335608],
        "adagrad",
    );
}

#[test]
fn rmsprop() {
    assert_close(
        &three_steps(OptimizerKind::Rmsprop { alpha: 0.9, eps: 1e-8 }),
        &[0.6837722539831608, 0.8312142014424062, 0.7702147770302944],
        "rmsprop",
    );
}

#[test]
fn adam() {
    assert_close(
        &three_steps(OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }),
        &[0.9000000019999999, 0.8733662987078462, 0.841841943025716],
        "adam",
    );
}

#[test]
fn schedules() {
    let step = Schedule::Step { every: 2, gamma: 0.5 };
    let rates: Vec<f64> = (0..5).map(|e| step.rate(0.1, e)).collect();
    assert_close(&rates, &[0.1, 0.1, 0.05, 0.05, 0.025], "step");
    let exp = Schedule::Exponential { gamma: 0.9 };
    let rates: Vec<f64> = (0..3).map(|e| exp.rate(0.1, e)).collect();
    assert_close(&rates, &[0.1, 0.09000000000000001, 0.08100000000000002], "exponential");
    assert_eq!(Schedule::Constant.rate(0.1, 7), 0.1);
}

fn interpreter(model: &str, seed: u64) -> Interpreter<f64> {
    let text = format!("model d {{\n{model}\n  loss mse\n}}\ntrain {{\n  data \"unused.csv\" validation 10%\n}}\n");
    let mut sources = SourceMap::new();
    let id = sources.add("d.net", text);
    let compiled = netc::compile(&sources, id, &[], &Limits { memory_bytes: 1 << 30 });
    let checked = compiled.checked.expect("compiles");
    Interpreter::new(graph::build(&checked), seed)
}

fn forward(interp: &mut Interpreter<f64>, x: &Array2<f64>, training: bool, step: u64) -> Array2<f64> {
    let t = Array2::zeros((x.nrows(), interp.graph.output_width));
    interp.set_batch(x.view(), t.view());
    interp.forward(&Context {
        training,
        step,
        lr: 0.0,
    });
    interp.value(interp.graph.output).clone()
}

/// The lecture's ensemble argument: for a linear network, scaling the weights by (1-p) at test
/// time gives exactly the average output over all 2^n dropout masks, weighted by their
/// probabilities.
#[test]
fn weight_scaling_equals_the_exact_average_over_all_masks_for_a_linear_network() {
    for mode in ["scale_at_test", "inverted"] {
        let (p_in, p_hidden) = (0.3, 0.6);
        let mut interp = interpreter(
            &format!(
                "  input 4\n  dropout {p_in} {mode}\n  dense 3 linear init normal(0.7)\n  dropout {p_hidden} {mode}\n  dense 2 linear init normal(0.7)"
            ),
            3,
        );
        let x = arr2(&[[0.5, -1.0, 2.0, 0.25]]);
        let test_time = forward(&mut interp, &x, false, 0);
        let (w1, b1, w2, b2) = (
            interp.params[0].clone(),
            interp.params[1].clone(),
            interp.params[2].clone(),
            interp.params[3].clone(),
        );
        let keep_scale = |p: f64| if mode == "inverted" { 1.0 / (1.0 - p) } else { 1.0 };
        let mut average = Array2::<f64>::zeros((1, 2));
        for mask in 0u32..(1 << 7) {
            let mut probability = 1.0;
            let mut bit = |i: u32, p: f64| {
                let kept = mask >> i & 1 == 1;
                probability *= if kept { 1.0 - p } else { p };
                if kept { keep_scale(p) } else { 0.0 }
            };
            let m_in = Array2::from_shape_fn((1, 4), |(_, j)| bit(j as u32, p_in));
            let m_hidden = Array2::from_shape_fn((1, 3), |(_, j)| bit(4 + j as u32, p_hidden));
            let h = (&x * &m_in).dot(&w1) + &b1;
            let y = (&h * &m_hidden).dot(&w2) + &b2;
            average = average + y * probability;
        }
        for (a, b) in test_time.iter().zip(average.iter()) {
            assert!(
                (a - b).abs() < 1e-6,
                "{mode}: test-time output {test_time} vs exact ensemble average {average}"
            );
        }
    }
}

/// Both dropout modes give the same expected activations: the training-time average over many
/// masks matches the test-time output of the same mode, and the two modes' test outputs agree
/// after the inverted mode's weights are interpreted as scaled.
#[test]
fn inverted_and_scale_at_test_have_the_same_expectation() {
    for mode in ["inverted", "scale_at_test"] {
        let mut interp = interpreter(
            &format!("  input 5\n  dropout 0.4 {mode}\n  dense 2 linear init normal(0.5)"),
            11,
        );
        let x = arr2(&[[1.0, 2.0, -1.0, 0.5, 3.0]]);
        let test_time = forward(&mut interp, &x, false, 0);
        let draws = 40_000;
        let mut mean = Array2::<f64>::zeros((1, 2));
        for step in 0..draws {
            mean = mean + forward(&mut interp, &x, true, step);
        }
        mean /= draws as f64;
        for (a, b) in test_time.iter().zip(mean.iter()) {
            assert!(
                (a - b).abs() < 0.02 * (1.0 + b.abs()),
                "{mode}: test {test_time} vs mean of training passes {mean}"
            );
        }
    }
}
