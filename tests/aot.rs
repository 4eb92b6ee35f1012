//! `netc build`: the executable against `netc predict` and `netc eval`, the generated code
//! against the interpreter on random networks, the C API from C, malformed input, and
//! reproducible bytes.

mod common;
use common::*;

use ndarray::Array2;
use netc::back::engine::Engine;
use netc::back::interp::{Context, Interpreter};
use netc::check::Limits;
use netc::diag::source::SourceMap;
use netc::rng::Rng;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn csv(rows: &Array2<f32>) -> String {
    rows.rows()
        .into_iter()
        .map(|r| r.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(",") + "\n")
        .collect()
}

fn parse_lines(out: &str) -> Vec<Vec<f64>> {
    out.lines()
        .map(|l| l.split(' ').map(|v| v.parse().expect("number")).collect())
        .collect()
}

/// Trains digits briefly, builds it, and checks the executable against predict and eval.
#[test]
fn the_executable_agrees_with_predict_and_eval() {
    let dir = temp_dir("digits");
    let run = dir.join("run");
    assert!(
        netc(&["train", "examples/digits.net", "-q", "--epochs", "8", "--out", s(&run)])
            .status
            .success()
    );
    let weights = run.join("weights.safetensors");
    let exe = dir.join("digits_model");
    let o = netc(&["build", "examples/digits.net", "--weights", s(&weights), "-o", s(&exe)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for ext in ["", ".o", ".h"] {
        assert!(
            PathBuf::from(format!("{}{ext}", exe.display())).is_file(),
            "missing {ext}"
        );
    }

    // All 1,797 digit rows, raw (the executable normalizes like training did).
    let all = netc::data::digits().expect("digits");
    let rows_path = dir.join("rows.csv");
    std::fs::write(&rows_path, csv(&all.features)).expect("write");
    let exe_out = Command::new(&exe).arg(&rows_path).output().expect("exe runs");
    assert!(exe_out.status.success(), "{}", text(&exe_out.stderr));
    let predict = netc(&[
        "predict",
        "examples/digits.net",
        "--weights",
        s(&weights),
        s(&rows_path),
    ]);
    assert!(predict.status.success());
    let (a, b) = (parse_lines(&text(&exe_out.stdout)), parse_lines(&text(&predict.stdout)));
    assert_eq!(a.len(), 1797);
    assert_eq!(a.len(), b.len());
    for (r, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x[0], y[0], "row {r}: class");
        for (u, v) in x[1..].iter().zip(&y[1..]) {
            assert!((u - v).abs() <= 1e-5, "row {r}: {u} vs {v}");
        }
    }
    // Test accuracy of the executable equals `netc eval`.
    let test = all.select(&((1797 - netc::data::DIGITS_TEST_ROWS)..1797).collect::<Vec<_>>());
    let test_path = dir.join("test.csv");
    std::fs::write(&test_path, csv(&test.features)).expect("write");
    let exe_out = Command::new(&exe).arg(&test_path).output().expect("exe runs");
    let classes: Vec<usize> = text(&exe_out.stdout)
        .lines()
        .map(|l| l.split(' ').next().expect("class").parse().expect("int"))
        .collect();
    let correct = classes.iter().zip(&test.labels).filter(|(p, l)| p == l).count();
    let report = dir.join("eval.json");
    assert!(
        netc(&[
            "eval",
            "examples/digits.net",
            "--weights",
            s(&weights),
            "--report",
            s(&report)
        ])
        .status
        .success()
    );
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(
        correct as f64 / test.len() as f64,
        eval["accuracy"].as_f64().expect("accuracy")
    );

    // JSON output, stdin input, --help.
    let mut child = Command::new(&exe)
        .args(["--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        csv(&test.features.slice(ndarray::s![0..3, ..]).to_owned()).as_bytes(),
    )
    .expect("write");
    let out = child.wait_with_output().expect("exe runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    assert_eq!(v.as_array().map(Vec::len), Some(3));
    let help = Command::new(&exe).arg("--help").output().expect("exe runs");
    assert!(text(&help.stdout).contains("rows of 64 numbers"));

    // Malformed input: clear errors, exit 1, never a crash.
    let bad: &[(&str, &str)] = &[
        ("1,2,3\n", "3 values, but the model takes 64"),
        (&format!("{}x\n", "1,".repeat(63)), "is not a number"),
        ("", "no input rows"),
        (&format!("{}\n", vec!["1"; 100_000].join(",")), "more than 64 values"),
    ];
    for (i, (input, message)) in bad.iter().enumerate() {
        let path = dir.join(format!("bad{i}.csv"));
        std::fs::write(&path, input).expect("write");
        let o = Command::new(&exe).arg(&path).output().expect("exe runs");
        assert_eq!(o.status.code(), Some(1), "case {i}");
        assert!(text(&o.stderr).contains(message), "case {i}: {}", text(&o.stderr));
    }
    let o = Command::new(&exe)
        .arg(dir.join("missing.csv"))
        .output()
        .expect("exe runs");
    assert_eq!(o.status.code(), Some(1));
    std::fs::write(dir.join("bad.npy"), b"\x93NUMPY garbage").expect("write");
    let o = Command::new(&exe).arg(dir.join("bad.npy")).output().expect("exe runs");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    std::fs::write(
        dir.join("short-ubyte"),
        [0u8, 0, 8, 2, 0, 0, 0, 5, 0, 0, 0, 64, 1, 2, 3],
    )
    .expect("write");
    let o = Command::new(&exe)
        .arg(dir.join("short-ubyte"))
        .output()
        .expect("exe runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("truncated"), "{}", text(&o.stderr));

    // An IDX file of the same rows gives the same predictions as CSV.
    let mut idx = vec![0u8, 0, 0x0D, 2];
    idx.extend((3u32).to_be_bytes());
    idx.extend((64u32).to_be_bytes());
    for v in test.features.slice(ndarray::s![0..3, ..]).iter() {
        idx.extend(v.to_be_bytes());
    }
    std::fs::write(dir.join("rows.idx"), &idx).expect("write");
    let o = Command::new(&exe).arg(dir.join("rows.idx")).output().expect("exe runs");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 3);

    // Reproducible: building again gives identical bytes.
    let again = dir.join("again").join("digits_model");
    build_executable(Path::new("examples/digits.net"), &weights, &again, &[], "again");
    for ext in ["", ".o"] {
        let x = std::fs::read(format!("{}{ext}", exe.display())).expect("first");
        let y = std::fs::read(format!("{}{ext}", again.display())).expect("second");
        assert!(x == y, "{ext} differs between two builds");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_c_program_calls_the_api() {
    let dir = temp_dir("capi");
    let run = dir.join("run");
    assert!(
        netc(&[
            "train",
            "examples/optimizer_sgd.net",
            "-q",
            "--epochs",
            "1",
            "--out",
            s(&run)
        ])
        .status
        .success()
    );
    let base = dir.join("clf");
    let flags = ["--emit", "obj,header", "--batch-max", "100"];
    build_executable(
        Path::new("examples/optimizer_sgd.net"),
        &run.join("weights.safetensors"),
        &base,
        &flags,
        "clf",
    );
    assert!(!base.exists(), "no executable was asked for");
    let header = std::fs::read_to_string(dir.join("clf.h")).expect("header");
    assert!(header.contains("int clf_predict(const float *inputs, size_t rows, float *outputs);"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/api_test.c");
    let source = source.to_str().expect("a UTF-8 path");
    compile_c(
        &dir,
        &[
            "-O2",
            "-DHEADER=\"clf.h\"",
            "-DSYMBOL=clf",
            "-DINPUT_WIDTH=CLF_INPUT_WIDTH",
            "-DOUTPUT_WIDTH=CLF_OUTPUT_WIDTH",
            "-DBATCH_MAX=CLF_BATCH_MAX",
            "-DERROR_NULL=CLF_ERROR_NULL",
            "-DERROR_ROWS=CLF_ERROR_ROWS",
            "-DOK_CODE=CLF_OK",
            "-I.",
            "-o",
            "api_test",
            source,
            "clf.o",
            "-lm",
            "-lpthread",
        ],
    );
    let o = Command::new(dir.join("api_test")).output().expect("api_test runs");
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).starts_with("digits_sgd "), "{}", text(&o.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Builds `spec_text` (a spec with a `model` and a `train` section) with the parameters
/// `set_params` gives and a per-feature normalization, runs the executable on `rows` random
/// rows (several 16-row chunks and a remainder, for `rows` over 32), and compares its outputs
/// (printed as JSON, 9 significant digits) with the interpreter's on the training graph in
/// evaluation mode, on normalized rows. The class must agree unless two outputs tie to within
/// the tolerance.
fn check_executable(
    dir: &Path,
    name: &str,
    spec_text: &str,
    seed: u64,
    rows: usize,
    set_params: impl FnOnce(&netc::graph::Graph, &mut [Array2<f32>], &mut Rng),
) -> Result<(), String> {
    let spec = dir.join(format!("{name}.net"));
    std::fs::write(&spec, spec_text).expect("write");
    let mut sources = SourceMap::new();
    let id = sources.add("m.net", spec_text.to_string());
    // The limit `netc` runs with in these tests (`common::netc`).
    let compiled = netc::compile(&sources, id, &[], &Limits { memory_bytes: 8 << 30 });
    let rendered = netc::diag::render_plain(&sources, &compiled.diagnostics);
    let checked = compiled
        .checked
        .ok_or_else(|| format!("{name} does not compile:\n{rendered}\n{spec_text}"))?;
    let graph = netc::graph::build(&checked);
    let mut interp: Interpreter<f32> = Interpreter::new(graph.clone(), seed);
    let mut rng = Rng::new(seed, 1);
    set_params(&graph, &mut interp.params, &mut rng);
    let width = graph.input_width;
    let normalization = netc::data::Normalization {
        shift: (0..width).map(|i| (i % 11) as f32 * 0.3 - 0.5).collect(),
        scale: (0..width).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect(),
    };
    let tensors = netc::run::weights::model_tensors(&graph, &interp.params, &normalization);
    let weights = dir.join(format!("{name}.safetensors"));
    std::fs::write(&weights, netc::run::weights::encode(&tensors, Default::default())).expect("write");
    let exe = dir.join(name);
    let o = netc(&[
        "build",
        s(&spec),
        "--weights",
        s(&weights),
        "-o",
        s(&exe),
        "--emit",
        "exe",
    ]);
    if !o.status.success() {
        return Err(format!("{name}: netc build failed: {}\n{spec_text}", text(&o.stderr)));
    }
    let raw = Array2::from_shape_fn((rows, width), |_| (rng.normal() * 2.0) as f32);
    let rows_path = dir.join(format!("{name}.csv"));
    std::fs::write(&rows_path, csv(&raw)).expect("write");
    let out = Command::new(&exe)
        .args(["--format", "json"])
        .arg(&rows_path)
        .output()
        .expect("exe runs");
    if !out.status.success() {
        return Err(format!(
            "{name}: the executable failed: {}\n{spec_text}",
            text(&out.stderr)
        ));
    }
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{name}: {e}"))?;
    let got = got.as_array().ok_or("a JSON array")?;
    let mut normalized = raw.clone();
    normalization.apply(&mut normalized);
    let t = Array2::zeros((rows, graph.output_width));
    Engine::set_batch(&mut interp, normalized.view(), t.view());
    Engine::forward(
        &mut interp,
        &Context {
            training: false,
            step: 0,
            lr: 0.0,
        },
    );
    let expected = Engine::output(&interp);
    if got.len() != rows {
        return Err(format!("{name}: {} rows out of {rows}", got.len()));
    }
    let tolerance = |w: f32| 2e-5 * (1.0 + w.abs() as f64);
    for (r, (row, want)) in got.iter().zip(expected.rows()).enumerate() {
        let values: Vec<f64> = row["probabilities"]
            .as_array()
            .ok_or("probabilities")?
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect();
        let probabilities = netc::report::metrics::class_probabilities(want);
        for (g, &w) in values.iter().zip(&probabilities) {
            // A NaN fails too.
            let close = (g - w as f64).abs() <= tolerance(w);
            if !close {
                return Err(format!("{name} row {r}: {g} vs {w}\n{spec_text}"));
            }
        }
        let class = row["class"].as_u64().ok_or("class")? as usize;
        let best = netc::report::metrics::predicted_class(want);
        let tie = (probabilities[class] - probabilities[best]).abs() as f64 <= 2.0 * tolerance(probabilities[best]);
        if class != best && !tie {
            return Err(format!("{name} row {r}: class {class} vs {best}\n{spec_text}"));
        }
    }
    Ok(())
}

fn spec_of(name: &str, body: &str) -> String {
    format!("model {name} {{\n  {body}\n}}\ntrain {{\n  data \"x.csv\" validation 10%\n}}\n")
}

/// The generated inference code against the interpreter (evaluation mode) on networks with
/// every layer kind, activation, dropout mode and loss, odd widths, and normalization folded in.
#[test]
fn compiled_models_match_the_interpreter() {
    let specs = [
        "input 5\n  dense 7 relu\n  dropout 0.3 scale_at_test\n  dense 3 softmax\n  loss cross_entropy",
        "input 3\n  dropout 0.2\n  maxout 12 pieces 3\n  dense 17 prelu(0.2)\n  dense 2 softmax\n  loss cross_entropy",
        "input 9\n  dense 5 tanh\n  dense 6 elu(0.5)\n  dense 4 leaky_relu(0.1)\n  dense 1 sigmoid\n  loss binary_cross_entropy",
        "input 4\n  dense 33 sigmoid\n  dense 3 linear\n  loss mse",
        "input 6\n  dense 8 relu\n  maxout 10 pieces 2\n  loss mse",
        "input 4\n  maxout 9 pieces 3 fixed_zero\n  maxout 6 pieces 2 fixed_zero\n  dense 2 softmax\n  loss cross_entropy",
        "input 2\n  dense 3 softmax\n  dense 5 softmax\n  loss mse",
    ];
    let dir = temp_dir("random");
    for (case, body) in specs.iter().enumerate() {
        // Random parameters, larger than the initial ones.
        let random = |_: &netc::graph::Graph, params: &mut [Array2<f32>], rng: &mut Rng| {
            for p in params {
                p.mapv_inplace(|_| (rng.normal() * 0.7) as f32);
            }
        };
        let spec = spec_of(&format!("m{case}"), body);
        check_executable(&dir, &format!("model{case}"), &spec, 40 + case as u64, 37, random).expect("matches");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Networks large enough for the two-core paths, against the interpreter: products split by
/// columns (their weights in two blocks) and convolutions by output rows at small batches (1
/// and 5 rows), batches split by rows between the cores (37 rows, and 300: a call of 256 and one
/// of 44), and pooling four outputs at a time (column strides 1 and 2, widths that are not
/// multiples of four).
#[test]
fn split_and_vectorized_kernels_match_the_interpreter() {
    let specs = [
        "input 120\n  dense 300 relu\n  dense 130 tanh\n  dense 5 softmax\n  loss cross_entropy",
        "input 2 14 17\n  conv 16 relu kernel 5\n  maxpool 3 stride 1\n  avgpool 2\n  conv 12 relu kernel 3 pad same\n  maxpool 2 stride 1\n  dense 70 relu\n  dense 4 softmax\n  loss cross_entropy",
    ];
    let dir = temp_dir("split");
    for (case, body) in specs.iter().enumerate() {
        for rows in [1, 5, 37, 300] {
            let spec = spec_of(&format!("split{case}"), body);
            check_executable(
                &dir,
                &format!("split{case}_{rows}"),
                &spec,
                90 + case as u64,
                rows,
                trained_ish,
            )
            .expect("matches");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The driver's fast paths (`fast_float`, `fixed6` in `driver.c`) against `strtof` and
/// `printf("%.6f")` bit for bit and byte for byte: the driver compiled with
/// `-DNETC_DRIVER_SELFTEST` checks millions of random decimals and floats, ties included.
#[test]
fn the_drivers_fast_paths_agree_with_libc() {
    let dir = temp_dir("driver-selftest");
    let prelude = "#define _POSIX_C_SOURCE 200809L\n#include <stddef.h>\nstatic int fake_predict(const float *in, size_t rows, float *out) { (void)in; (void)rows; (void)out; return 0; }\nstatic const char *fake_text(void) { return \"\"; }\n#define MODEL_PREDICT fake_predict\n#define MODEL_NAME fake_text\n#define MODEL_HASH fake_text\n#define MODEL_INPUT_WIDTH 3\n#define MODEL_INPUT_SHAPE \"\"\n#define MODEL_OUTPUT_WIDTH 2\n#define MODEL_BATCH_MAX 256\n#define MODEL_PROBABILITIES 1\n#define MODEL_PROGRAM \"selftest\"\n";
    let driver =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/back/aot/driver.c")).expect("driver.c");
    std::fs::write(dir.join("selftest.c"), format!("{prelude}{driver}")).expect("write");
    compile_c(
        &dir,
        &[
            "-O2",
            "-std=c99",
            "-DNETC_DRIVER_SELFTEST",
            "-o",
            "selftest",
            "selftest.c",
            "-lm",
        ],
    );
    let o = Command::new(dir.join("selftest")).output().expect("selftest runs");
    assert!(o.status.success(), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("0 failures"), "{}", text(&o.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Parameters as after some training: the initial filters and weights scaled by a random
/// factor and perturbed, biases and prelu slopes random, batchnorm's scale and shift away from
/// 1 and 0 and its running statistics away from their initial 0 and 1 (variances positive).
fn trained_ish(graph: &netc::graph::Graph, params: &mut [Array2<f32>], rng: &mut Rng) {
    use netc::graph::ParamKind;
    for (p, value) in graph.params.iter().zip(params) {
        let factor = 0.8 + rng.uniform() as f32;
        value.mapv_inplace(|v| match p.kind {
            ParamKind::Weight | ParamKind::Filter => v * factor + (rng.normal() * 0.02) as f32,
            ParamKind::Bias | ParamKind::Shift => (rng.normal() * 0.3) as f32,
            ParamKind::Slope => (rng.normal() * 0.3) as f32,
            ParamKind::Scale => (1.0 + rng.normal() * 0.3) as f32,
            ParamKind::RunningMean => (rng.normal() * 0.5) as f32,
            ParamKind::RunningVar => (0.2 + rng.normal().abs() * 2.0) as f32,
        });
    }
}

/// Convolutional networks: batchnorm folded into the convolution before it (with and without
/// a bias), kept as a per-channel affine elsewhere, residual blocks with identity and projected
/// shortcuts, concatenation, every pooling, padding valid, same and explicit, strides, prelu's
/// per-channel slopes, dropout, and a per-pixel input normalization before padded convolutions.
#[test]
fn convolutional_networks_match_the_interpreter() {
    let specs = [
        "input 1 8 8\n  conv c1: 4 relu kernel 3 pad same\n  conv 6 kernel 3 pad same no_bias\n  batchnorm relu\n  maxpool 2\n  dropout 0.25 scale_at_test\n  dense 7 relu\n  dense 3 softmax\n  loss cross_entropy",
        "input 3 9 7\n  conv 5 prelu(0.2) kernel 5 stride 2 pad 2\n  batchnorm\n  avgpool 3 stride 1 pad 1\n  conv 4 tanh kernel 2\n  global_avgpool\n  dense 2 softmax\n  loss cross_entropy",
        "input 2 6 6\n  conv stem: 4 kernel 3 pad same no_bias\n  batchnorm relu\n  residual relu {\n    conv 4 kernel 3 pad same no_bias\n    batchnorm relu\n    conv 4 kernel 3 pad same no_bias\n    batchnorm\n  }\n  residual relu shortcut project {\n    conv 6 kernel 3 stride 2 pad same no_bias\n    batchnorm relu\n    conv 6 kernel 3 pad same no_bias\n    batchnorm\n  }\n  global_avgpool\n  dense 3 softmax\n  loss cross_entropy",
        "input 2 5 5\n  conv a: 3 relu kernel 3 pad same\n  conv b: 2 elu(0.5) kernel 1\n  concat a\n  batchnorm leaky_relu(0.1)\n  maxpool 3 stride 2 pad same\n  flatten\n  dense 6\n  batchnorm relu\n  dense 1 sigmoid\n  loss binary_cross_entropy",
        "input 1 7 7\n  conv c1: 3 kernel 3 pad same\n  batchnorm b1:\n  conv 3 sigmoid kernel 1 pad 1\n  maxpool 3 stride 1\n  conv 3 kernel 3 pad same\n  add b1 relu\n  avgpool 2 pad same\n  dense 4 linear\n  loss mse",
        "input 2 4 4\n  dropout 0.3 scale_at_test\n  conv 3 relu kernel 4 pad 3\n  batchnorm\n  conv 2 kernel 1\n  dropout 0.2\n  maxpool 2 stride 1\n  dense 3 softmax\n  loss cross_entropy",
    ];
    let dir = temp_dir("cnn");
    for (case, body) in specs.iter().enumerate() {
        let spec = spec_of(&format!("cnn{case}"), body);
        check_executable(&dir, &format!("cnn{case}"), &spec, 70 + case as u64, 37, trained_ish).expect("matches");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An activation for a random layer.
fn random_activation(rng: &mut Rng) -> &'static str {
    const ACTIVATIONS: [&str; 8] = [
        "linear",
        "relu",
        "tanh",
        "sigmoid",
        "leaky_relu(0.1)",
        "elu(0.5)",
        "prelu(0.2)",
        "relu",
    ];
    ACTIVATIONS[rng.below(ACTIVATIONS.len())]
}

/// A random padding for a window `k`: valid, same, or 0 to `limit` on every side.
fn random_padding(rng: &mut Rng, limit: usize) -> netc::ir::Padding {
    use netc::ir::Padding;
    match rng.below(3) {
        0 => Padding::Valid,
        1 => Padding::Same,
        _ => Padding::Explicit(rng.below(limit + 1)),
    }
}

fn padding_text(p: netc::ir::Padding) -> String {
    format!(" pad {}", p.describe())
}

/// A random convolution over a `c x h x w` image (kernels 1 to 5, strides 1 and 2, any
/// padding, with or without a bias): its statement and output shape. Falls back to `same`
/// padding when the window would not fit.
fn random_conv(rng: &mut Rng, (c, h, w): (usize, usize, usize), label: &str) -> (String, (usize, usize, usize)) {
    use netc::ir::{Padding, Window};
    let filters = 1 + rng.below(6);
    let (k, stride) = (1 + rng.below(5), 1 + rng.below(2));
    let mut padding = random_padding(rng, 3);
    let g = match Window::new(c, h, w, k, stride, padding) {
        Ok(g) => g,
        Err(_) => {
            padding = Padding::Same;
            Window::new(c, h, w, k, stride, padding).expect("same padding always fits")
        }
    };
    let bias = if rng.below(3) == 0 { " no_bias" } else { "" };
    let line = format!(
        "conv {label}: {filters} {} kernel {k} stride {stride}{}{bias}",
        random_activation(rng),
        padding_text(padding)
    );
    (line, (filters, g.out_h, g.out_w))
}

/// A random convolutional network that checks clean (shapes are tracked so that every window
/// fits): up to six image layers of every kind, then flat layers and an output layer.
fn random_cnn(seed: u64) -> String {
    use netc::ir::Window;
    let mut rng = Rng::new(seed, 5);
    let mut shape = (1 + rng.below(3), 3 + rng.below(7), 3 + rng.below(7));
    let mut lines = vec![format!("input {} {} {}", shape.0, shape.1, shape.2)];
    // Earlier image layers that `add` and `concat` can name, with their shapes.
    let mut named: Vec<(String, (usize, usize, usize))> = Vec::new();
    let mut flat = false;
    for i in 0..1 + rng.below(6) {
        let label = format!("l{i}");
        let (c, h, w) = shape;
        let line = match rng.below(11) {
            0..=3 => {
                let (line, out) = random_conv(&mut rng, shape, &label);
                shape = out;
                line
            }
            4 => format!("batchnorm {label}: {}", random_activation(&mut rng)),
            5 => {
                let kind = if rng.below(2) == 0 { "maxpool" } else { "avgpool" };
                let k = 1 + rng.below(3.min(h.min(w)));
                let stride = 1 + rng.below(k);
                // Explicit padding below the window, so every window holds a pixel.
                let padding = random_padding(&mut rng, k - 1);
                let g = Window::new(c, h, w, k, stride, padding).expect("a window of at most the image fits");
                shape = (c, g.out_h, g.out_w);
                format!("{kind} {label}: {k} stride {stride}{}", padding_text(padding))
            }
            6 => {
                let project = rng.below(2) == 0;
                let (first, out) = if project {
                    let filters = 1 + rng.below(5);
                    let stride = 1 + rng.below(2);
                    let k = 1 + rng.below(3);
                    let g = Window::new(c, h, w, k, stride, netc::ir::Padding::Same).expect("same fits");
                    (
                        format!("conv {filters} kernel {k} stride {stride} pad same no_bias"),
                        (filters, g.out_h, g.out_w),
                    )
                } else {
                    (format!("conv {c} kernel {} pad same", 1 + 2 * rng.below(2)), shape)
                };
                let second = format!("conv {} kernel 3 pad same no_bias", out.0);
                shape = out;
                format!(
                    "residual {label}: {} shortcut {} {{\n    {first}\n    batchnorm {}\n    {second}\n    batchnorm\n  }}",
                    random_activation(&mut rng),
                    if project { "project" } else { "identity" },
                    random_activation(&mut rng),
                )
            }
            7 | 8 => {
                let same_size: Vec<&(String, (usize, usize, usize))> =
                    named.iter().filter(|(_, s)| (s.1, s.2) == (h, w)).collect();
                let same_shape: Vec<&(String, (usize, usize, usize))> =
                    named.iter().filter(|(_, s)| *s == shape).collect();
                if rng.below(2) == 0 && !same_size.is_empty() {
                    let (other, s) = same_size[rng.below(same_size.len())];
                    shape = (c + s.0, h, w);
                    format!("concat {label}: {other}")
                } else if !same_shape.is_empty() {
                    let (other, _) = same_shape[rng.below(same_shape.len())];
                    format!("add {label}: {other} {}", random_activation(&mut rng))
                } else {
                    format!("activation {label}: {}", random_activation(&mut rng))
                }
            }
            9 => {
                let mode = if rng.below(2) == 0 { "scale_at_test" } else { "inverted" };
                format!("dropout {label}: 0.{} {mode}", 1 + rng.below(5))
            }
            _ => {
                flat = true;
                format!("global_avgpool {label}:")
            }
        };
        lines.push(line);
        if flat {
            break;
        }
        named.push((label, shape));
    }
    // Flat layers: dense (with batchnorm after it, or dropout), then the output.
    for _ in 0..rng.below(3) {
        lines.push(match rng.below(3) {
            0 => format!("dense {} {}", 1 + rng.below(9), random_activation(&mut rng)),
            1 => format!(
                "dense {}\n  batchnorm {}",
                1 + rng.below(9),
                random_activation(&mut rng)
            ),
            _ => "dropout 0.2 scale_at_test".to_string(),
        });
    }
    let (output, loss) = match rng.below(4) {
        0 => ("dense 1 sigmoid", "binary_cross_entropy"),
        1 => ("dense 3 linear", "mse"),
        _ => ("dense 4 softmax", "cross_entropy"),
    };
    lines.push(output.to_string());
    lines.push(format!("loss {loss}"));
    spec_of("r", &lines.join("\n  "))
}

proptest::proptest! {
    // A fixed seed keeps CI deterministic; set NETC_PROPTEST_SEED to explore other networks.
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            std::env::var("NETC_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261207),
        ),
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Random convolutional networks with trained-ish parameters, compiled, against the
    /// interpreter on 1 to 40 rows.
    #[test]
    fn random_convolutional_networks_match_the_interpreter(seed in 0u64..1_000_000, rows in 1usize..40) {
        let dir = temp_dir(&format!("random-cnn-{seed}"));
        let result = check_executable(&dir, "r", &random_cnn(seed), seed, rows, trained_ish);
        let _ = std::fs::remove_dir_all(&dir);
        proptest::prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }
}

#[test]
fn bad_build_arguments_are_refused() {
    let dir = temp_dir("args");
    let o = netc(&[
        "build",
        "examples/digits.net",
        "--weights",
        s(&dir.join("none.safetensors")),
        "-o",
        s(&dir.join("x")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("cannot read weights"), "{}", text(&o.stderr));
    let o = netc(&[
        "build",
        "examples/digits.net",
        "--weights",
        "x",
        "-o",
        s(&dir.join("bad-name")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The inference graph of a model with scale-at-test and inverted dropout and a normalization:
/// no dropout node is left (its scale is in the weights), the plan the object is compiled from
/// has no dropout kernel, and the graph, evaluated by the interpreter on raw rows, and the
/// built executable both match the training graph in evaluation mode on normalized rows.
#[test]
fn the_inference_graph_folds_dropout_and_normalization() {
    let body = "input 6\n  dropout 0.2\n  dense 9 relu\n  dropout 0.5 scale_at_test\n  maxout 8 pieces 2\n  dropout 0.3 scale_at_test\n  dense 3 softmax\n  loss cross_entropy";
    let spec_text = format!("model folded {{\n  {body}\n}}\ntrain {{\n  data \"x.csv\" validation 10%\n}}\n");
    let dir = temp_dir("folded");
    let spec = dir.join("folded.net");
    std::fs::write(&spec, &spec_text).expect("write");
    let mut sources = SourceMap::new();
    let id = sources.add("folded.net", spec_text.clone());
    let checked = netc::compile(&sources, id, &[], &Limits { memory_bytes: 1 << 30 })
        .checked
        .expect("compiles");
    let graph = netc::graph::build(&checked);
    let mut rng = Rng::new(11, 3);
    let params: Vec<Array2<f32>> = graph
        .params
        .iter()
        .map(|p| Array2::from_shape_fn((p.rows, p.cols), |_| (rng.normal() * 0.7) as f32))
        .collect();
    let normalization = netc::data::Normalization {
        shift: (0..6).map(|i| i as f32 * 0.4 - 1.0).collect(),
        scale: (0..6).map(|i| 0.3 + i as f32 * 0.2).collect(),
    };

    let folded = netc::passes::inference::inference(&graph, &params, &normalization.shift, &normalization.scale);
    for (_, node) in folded.graph.nodes.iter() {
        assert!(
            !matches!(
                node.op,
                netc::graph::Op::Dropout(_) | netc::graph::Op::Arith(_) | netc::graph::Op::Loss(_)
            ),
            "{:?} is left in the inference graph",
            node.op
        );
    }
    assert_eq!((folded.graph.targets, folded.graph.loss), (None, None));
    let plan = netc::passes::fuse::plan(&folded.graph).describe(&folded.graph);
    assert_eq!(
        plan,
        "forward: 8 kernels
  gemm input#0 x dense1.weight -> dense1.matmul#2
  map [batch, 9]: dense1.add_row#4 + dense1.relu#5 -> dense1.relu#5
  gemm dense1.relu#5 x maxout1.weight -> maxout1.matmul#7
  map [batch, 8]: maxout1.add_row#9 -> maxout1.add_row#9
  row maxout -> maxout1.maxout#10
  gemm maxout1.maxout#10 x dense2.weight -> dense2.matmul#12
  map [batch, 3]: dense2.add_row#14 -> dense2.add_row#14
  row softmax -> dense2.softmax#15
backward: 0 kernels
update: 0 kernels
buffers: 15
"
    );

    let evaluate = |graph: &netc::graph::Graph, params: &[Array2<f32>], x: &Array2<f32>| {
        let mut interp: Interpreter<f32> = Interpreter::new(graph.clone(), 1);
        interp.params = params.to_vec();
        let t = Array2::zeros((x.nrows(), graph.output_width));
        Engine::set_batch(&mut interp, x.view(), t.view());
        Engine::forward(
            &mut interp,
            &Context {
                training: false,
                step: 0,
                lr: 0.0,
            },
        );
        Engine::output(&interp)
    };
    let raw = Array2::from_shape_fn((21, 6), |_| (rng.normal() * 2.0) as f32);
    let mut normalized = raw.clone();
    normalization.apply(&mut normalized);
    let want = evaluate(&graph, &params, &normalized);
    let got = evaluate(&folded.graph, &folded.params, &raw);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
    }

    let tensors = netc::run::weights::model_tensors(&graph, &params, &normalization);
    let weights = dir.join("folded.safetensors");
    std::fs::write(&weights, netc::run::weights::encode(&tensors, Default::default())).expect("write");
    let exe = dir.join("folded");
    build_executable(&spec, &weights, &exe, &["--emit", "exe"], "folded");
    let rows = dir.join("rows.csv");
    std::fs::write(&rows, csv(&raw)).expect("write");
    let out = Command::new(&exe).arg(&rows).output().expect("exe runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse_lines(&text(&out.stdout));
    assert_eq!(lines.len(), 21);
    for (line, w) in lines.iter().zip(want.rows()) {
        assert_eq!(line[0] as usize, netc::report::metrics::predicted_class(w));
        for (g, w) in line[1..].iter().zip(w) {
            assert!((g - *w as f64).abs() <= 2e-5 * (1.0 + w.abs() as f64), "{g} vs {w}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The JSON rows (class, probabilities) a command printed.
fn json_rows(out: &[u8]) -> Vec<(usize, Vec<f64>)> {
    let v: serde_json::Value = serde_json::from_slice(out).expect("a JSON array");
    v.as_array()
        .expect("an array")
        .iter()
        .map(|row| {
            let class = row["class"].as_u64().expect("class") as usize;
            let p = row["probabilities"]
                .as_array()
                .expect("probabilities")
                .iter()
                .map(|v| v.as_f64().expect("a number"))
                .collect();
            (class, p)
        })
        .collect()
}

/// `examples/digits_cnn.net` trained (by the interpreter, `--backend interp`: the reference),
/// built, and run on all 1,797 digits: the executable agrees with `netc predict`; the header and
/// `--help` state the image shape; a second build gives the same bytes.
#[test]
fn the_digits_cnn_executable_agrees_with_predict() {
    let dir = temp_dir("digits-cnn");
    let run = dir.join("run");
    let spec = Path::new("examples/digits_cnn.net");
    let o = netc(&[
        "train",
        s(spec),
        "-q",
        "--epochs",
        "2",
        "--backend",
        "interp",
        "--out",
        s(&run),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let weights = run.join("weights.safetensors");
    let exe = dir.join("digits_cnn");
    build_executable(spec, &weights, &exe, &[], "digits_cnn");
    let header = std::fs::read_to_string(dir.join("digits_cnn.h")).expect("header");
    assert!(
        header.contains("a 1x8x8 image (channels x height x width), row-major"),
        "{header}"
    );
    let help = Command::new(&exe).arg("--help").output().expect("exe runs");
    assert!(
        text(&help.stdout).contains("rows of 64 numbers (1x8x8 images: channel, then row, then column)"),
        "{}",
        text(&help.stdout)
    );

    let all = netc::data::digits().expect("digits");
    let rows_path = dir.join("rows.csv");
    std::fs::write(&rows_path, csv(&all.features)).expect("write");
    let exe_out = Command::new(&exe)
        .args(["--format", "json"])
        .arg(&rows_path)
        .output()
        .expect("exe runs");
    assert!(exe_out.status.success(), "{}", text(&exe_out.stderr));
    let predict = netc(&[
        "predict",
        s(spec),
        "--backend",
        "interp",
        "--weights",
        s(&weights),
        "--format",
        "json",
        s(&rows_path),
    ]);
    assert!(predict.status.success(), "{}", text(&predict.stderr));
    let (a, b) = (json_rows(&exe_out.stdout), json_rows(&predict.stdout));
    assert_eq!(a.len(), 1797);
    assert_eq!(a.len(), b.len());
    for (r, ((class_a, pa), (class_b, pb))) in a.iter().zip(&b).enumerate() {
        for (u, v) in pa.iter().zip(pb) {
            assert!((u - v).abs() <= 2e-5 * (1.0 + v.abs()), "row {r}: {u} vs {v}");
        }
        assert!(
            class_a == class_b || (pa[*class_a] - pb[*class_b]).abs() <= 4e-5,
            "row {r}: class {class_a} vs {class_b}"
        );
    }

    let again = dir.join("again").join("digits_cnn");
    build_executable(spec, &weights, &again, &[], "again");
    for ext in ["", ".o", ".h"] {
        let x = std::fs::read(format!("{}{ext}", exe.display())).expect("first");
        let y = std::fs::read(format!("{}{ext}", again.display())).expect("second");
        assert!(x == y, "{ext} differs between two builds");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the C compiler (`$CC`, default `cc`) in `dir` with `args`, and asserts that it succeeds.
fn compile_c(dir: &Path, args: &[&str]) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let compiled = Command::new(&cc).current_dir(dir).args(args).output().expect("cc runs");
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
}
