//! Finite-difference checks (f64) of every op's derivative: each activation, maxout, dropout in
//! both modes, each loss, L1 and L2, and the image layers (convolutions with every padding,
//! pooling, batchnorm, residual blocks with both shortcuts, add, concat) in whole networks. The analytic gradient of every parameter element must match
//! the central difference of (data loss + penalty).

use ndarray::Array2;
use netc::back::interp::{Context, Interpreter};
use netc::check::Limits;
use netc::diag::source::SourceMap;
use netc::graph;
use netc::rng::Rng;

fn program(model: &str, loss: &str, train_extra: &str) -> netc::check::Checked {
    let text = format!(
        "model g {{\n{model}\n  loss {loss}\n}}\ntrain {{\n  data \"unused.csv\" validation 10%\n  optimizer sgd lr 0.1\n  {train_extra}\n}}\n"
    );
    let mut sources = SourceMap::new();
    let id = sources.add("g.net", text);
    let compiled = netc::compile(&sources, id, &[], &Limits { memory_bytes: 1 << 30 });
    let rendered = netc::diag::render_plain(&sources, &compiled.diagnostics);
    compiled
        .checked
        .unwrap_or_else(|| panic!("spec does not compile:\n{rendered}"))
}

fn targets(loss: &str, batch: usize, width: usize, rng: &mut Rng) -> Array2<f64> {
    match loss {
        "cross_entropy" => {
            let mut t = Array2::zeros((batch, width));
            for r in 0..batch {
                t[[r, rng.below(width)]] = 1.0;
            }
            t
        }
        "binary_cross_entropy" => {
            Array2::from_shape_fn((batch, width), |_| if rng.uniform() < 0.5 { 0.0 } else { 1.0 })
        }
        _ => Array2::from_shape_fn((batch, width), |_| rng.uniform() * 2.0 - 1.0),
    }
}

/// Total loss (data + penalty) in training mode at a fixed step (fixed dropout masks).
fn total_loss(interp: &mut Interpreter<f64>, ctx: &Context) -> f64 {
    interp.forward(ctx) + interp.penalty()
}

fn check(model: &str, loss: &str, train_extra: &str) {
    let program = program(model, loss, train_extra);
    let g = graph::build(&program);
    let (input_width, output_width) = (g.input_width, g.output_width);
    let mut interp: Interpreter<f64> = Interpreter::new(g, 5);
    let mut rng = Rng::new(99, 0);
    let batch = 3;
    let x = Array2::from_shape_fn((batch, input_width), |_| rng.normal());
    let t = targets(loss, batch, output_width, &mut rng);
    interp.set_batch(x.view(), t.view());
    let ctx = Context {
        training: true,
        step: 7,
        lr: 0.0,
    };
    total_loss(&mut interp, &ctx);
    interp.backward(&ctx);
    let analytic: Vec<Array2<f64>> = interp
        .graph
        .grads
        .clone()
        .iter()
        .map(|&n| interp.value(n).clone())
        .collect();
    let h = 1e-6;
    for (p, analytic) in analytic.iter().enumerate() {
        // Running statistics follow the batches; the loss does not depend on them in training.
        if !interp.graph.params[p].kind.is_trainable() {
            continue;
        }
        let name = interp.graph.params[p].name.clone();
        let cols = interp.params[p].ncols();
        for i in 0..interp.params[p].len() {
            let at = [i / cols, i % cols];
            let original = interp.params[p][at];
            interp.params[p][at] = original + h;
            let plus = total_loss(&mut interp, &ctx);
            interp.params[p][at] = original - h;
            let minus = total_loss(&mut interp, &ctx);
            interp.params[p][at] = original;
            let numeric = (plus - minus) / (2.0 * h);
            let a = analytic[at];
            let scale = a.abs().max(numeric.abs()).max(1e-4);
            assert!(
                (a - numeric).abs() / scale < 1e-5,
                "{model} / {loss}: d loss / d {name}[{i}]: analytic {a}, numeric {numeric}"
            );
        }
    }
}

#[test]
fn dense_linear_with_mse() {
    check("  input 4\n  dense 3 linear", "mse", "");
}

#[test]
fn every_activation() {
    for act in [
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu(0.1)",
        "elu(1.0)",
        "elu(0.5)",
        "prelu(0.25)",
        "prelu(-0.3)",
        "softmax",
    ] {
        check(
            &format!("  input 4\n  dense h: 5 {act} init normal(0.8)\n  dense 2 linear"),
            "mse",
            "",
        );
    }
}

#[test]
fn maxout_passes_gradient_through_the_winner() {
    check(
        "  input 4\n  maxout 6 pieces 3 init normal(1.0)\n  dense 2 softmax",
        "cross_entropy",
        "",
    );
    check(
        "  input 3\n  maxout 4 pieces 2\n  maxout 4 pieces 2\n  dense 2 linear",
        "mse",
        "",
    );
    check(
        "  input 3\n  maxout 9 pieces 3 fixed_zero init normal(1.0)\n  dense 2 linear",
        "mse",
        "",
    );
}

#[test]
fn dropout_in_both_modes() {
    check(
        "  input 6\n  dropout 0.3\n  dense 8 tanh\n  dropout 0.5\n  dense 3 softmax",
        "cross_entropy",
        "",
    );
    check(
        "  input 6\n  dropout 0.3 scale_at_test\n  dense 8 tanh\n  dropout 0.5 scale_at_test\n  dense 3 softmax",
        "cross_entropy",
        "",
    );
}

#[test]
fn every_loss() {
    check("  input 4\n  dense 6 relu\n  dense 3 softmax", "cross_entropy", "");
    check(
        "  input 4\n  dense 6 relu\n  dense 3 sigmoid",
        "binary_cross_entropy",
        "",
    );
    check(
        "  input 4\n  dense 6 relu\n  dense 1 sigmoid",
        "binary_cross_entropy",
        "",
    );
    check("  input 4\n  dense 6 relu\n  dense 3 sigmoid", "mse", "");
    check("  input 4\n  dense 6 relu\n  dense 3 softmax", "mse", "");
}

#[test]
fn l1_and_l2_regularizers_skip_biases() {
    check(
        "  input 4\n  dense 5 tanh\n  dense 3 softmax",
        "cross_entropy",
        "regularize l2 0.3",
    );
    check(
        "  input 4\n  dense 5 tanh\n  dense 3 softmax",
        "cross_entropy",
        "regularize l1 0.2",
    );
    check(
        "  input 4\n  dense 5 tanh l1 0.1 l2 0.05\n  dense 3 softmax l2 0.4",
        "cross_entropy",
        "regularize l1 0.01",
    );
    // The penalty never includes biases.
    let p = program("  input 2\n  dense 2 linear bias 3", "mse", "regularize l2 1");
    let g = graph::build(&p);
    let mut interp: Interpreter<f64> = Interpreter::new(g, 1);
    interp.params[0].fill(0.0);
    assert_eq!(interp.penalty(), 0.0, "biases are not regularized");
}

#[test]
fn deep_mixed_network() {
    check(
        "  input 5\n  dense 6 relu\n  dense 6 leaky_relu(0.2)\n  maxout 6 pieces 2\n  dropout 0.2\n  dense 4 prelu\n  dense 3 softmax",
        "cross_entropy",
        "regularize l2 0.01",
    );
}

#[test]
fn convolutions_with_every_padding_and_stride() {
    for (conv, act) in [
        ("conv c: 3 kernel 3", "relu"),
        ("conv c: 2 kernel 2 stride 2", "tanh"),
        ("conv c: 2 kernel 3 stride 2 pad same", "elu(1.0)"),
        ("conv c: 3 kernel 1", "linear"),
        ("conv c: 2 kernel 5 pad 2 no_bias", "sigmoid"),
        ("conv c: 2 kernel 4 pad same", "prelu(0.2)"),
    ] {
        check(
            &format!("  input 2 5 7\n  {conv} {act} init normal(0.5)\n  dense 3 softmax"),
            "cross_entropy",
            "",
        );
    }
}

#[test]
fn pooling_and_global_pooling() {
    check(
        "  input 2 6 5\n  conv 3 tanh kernel 3 pad same\n  maxpool 2\n  dense 3 softmax",
        "cross_entropy",
        "",
    );
    check(
        "  input 1 7 7\n  conv 2 relu kernel 2\n  maxpool 3 stride 2 pad 1\n  avgpool 2 stride 1 pad same\n  dense 2 linear",
        "mse",
        "",
    );
    check(
        "  input 2 5 5\n  conv 4 elu(1.0) kernel 3\n  global_avgpool\n  dense 3 softmax",
        "cross_entropy",
        "",
    );
}

#[test]
fn batchnorm_on_images_and_features() {
    check(
        "  input 2 4 4\n  conv 3 kernel 3 pad same no_bias init normal(0.7)\n  batchnorm relu\n  dense 3 softmax",
        "cross_entropy",
        "",
    );
    check(
        "  input 5\n  dense 6 linear\n  batchnorm tanh momentum 0.3 eps 1e-3\n  dense 2 linear",
        "mse",
        "",
    );
    check(
        "  input 1 4 4\n  conv 2 kernel 3 pad same no_bias\n  batchnorm prelu(0.1)\n  global_avgpool\n  dense 2 softmax",
        "cross_entropy",
        "",
    );
}

#[test]
fn residual_blocks_with_both_shortcuts_add_and_concat() {
    check(
        "  input 2 6 6\n  conv 3 kernel 3 pad same\n  residual relu {\n    conv 3 kernel 3 pad same no_bias\n    batchnorm relu\n    conv 3 kernel 3 pad same\n  }\n  residual shortcut project {\n    conv 4 kernel 3 stride 2 pad same\n    batchnorm\n  }\n  dense 3 softmax",
        "cross_entropy",
        "regularize l2 0.1",
    );
    check(
        "  input 5\n  dense 4 tanh\n  residual elu(1.0) { dense 4 tanh; dense 4 }\n  residual shortcut project { dense 3 sigmoid }\n  dense 2 linear",
        "mse",
        "regularize l1 0.05",
    );
    check(
        "  input 1 5 5\n  conv a: 2 tanh kernel 3 pad same\n  conv b: 3 tanh kernel 3 pad same\n  concat a\n  conv 2 relu kernel 1\n  add a tanh\n  dense 3 softmax",
        "cross_entropy",
        "",
    );
}

#[test]
fn dropout_and_maxout_on_images() {
    check(
        "  input 2 4 4\n  conv 3 relu kernel 3 pad same\n  dropout 0.3\n  maxout 6 pieces 2\n  dense 3 softmax",
        "cross_entropy",
        "regularize l2 0.05",
    );
}
