//! Fusion plan snapshots: for each example spec and standard workload, the kernels the fusion
//! pass plans for the forward, backward and update pieces. A fusion that is lost (bias +
//! activation + dropout no longer one map kernel, a bias gradient no longer a column sum of the
//! open kernel, a loss no longer fused with its gradient) changes a snapshot and fails the test.
//! After an intended change: `INSTA_UPDATE=always cargo test --test fusion`, then review the diff.

use netc::check::Limits;
use netc::diag::source::SourceMap;
use std::path::Path;

const LIMITS: Limits = Limits { memory_bytes: 8 << 30 };

fn plan_of(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path).expect("spec is readable");
    let mut sources = SourceMap::new();
    let id = sources.add(relative.to_string(), text);
    let compiled = netc::compile(&sources, id, &[], &LIMITS);
    let checked = compiled.checked.expect("the spec checks clean");
    let graph = netc::graph::build(&checked);
    netc::passes::fuse::plan(&graph).describe(&graph)
}

macro_rules! plan_snapshots {
    ($($name:ident => $path:literal,)*) => {
        $(
            #[test]
            fn $name() {
                insta::assert_snapshot!(stringify!($name), plan_of($path));
            }
        )*
    };
}

plan_snapshots! {
    digits => "examples/digits.net",
    activations => "examples/activations.net",
    maxout => "examples/maxout.net",
    deep_sigmoid => "examples/deep_sigmoid.net",
    mnist_mlp => "examples/mnist_mlp.net",
    optimizer_momentum => "examples/optimizer_momentum.net",
    workload_mlp => "benches/workloads/mlp.net",
    lecture_maxout_fixed_zero => "examples/lecture/maxout_fixed_zero.net",
    lecture_dropout_linear => "examples/lecture/dropout_linear.net",
    digits_cnn => "examples/digits_cnn.net",
    mnist_resnet => "examples/mnist_resnet.net",
}

/// Losses and layers no example uses: sigmoid cross-entropy, mean squared error on a hidden
/// softmax, maxout before a linear output.
#[test]
fn other_losses() {
    for (name, model) in [
        (
            "binary_cross_entropy",
            "input 9\n  dense 5 tanh\n  dense 4 leaky_relu(0.1)\n  dense 1 sigmoid\n  loss binary_cross_entropy",
        ),
        (
            "mse_softmax",
            "input 2\n  dense 3 softmax\n  dropout 0.5\n  dense 5 softmax\n  loss mse",
        ),
        (
            "mse_maxout",
            "input 6\n  dense 8 relu\n  maxout 10 pieces 2\n  loss mse",
        ),
    ] {
        let text = format!(
            "model m {{\n  {model}\n}}\ntrain {{\n  data \"x.csv\"\n  optimizer adam lr 1e-3 regularize l2 1e-4\n}}\n"
        );
        let mut sources = SourceMap::new();
        let id = sources.add(format!("{name}.net"), text);
        let compiled = netc::compile(&sources, id, &[], &LIMITS);
        let rendered = netc::diag::render_plain(&sources, &compiled.diagnostics);
        let checked = compiled.checked.unwrap_or_else(|| panic!("{name}: {rendered}"));
        let graph = netc::graph::build(&checked);
        insta::assert_snapshot!(name, netc::passes::fuse::plan(&graph).describe(&graph));
    }
}
