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
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let compiled = Command::new(&cc)
        .current_dir(&dir)
        .args([
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
        ])
        .arg(&source)
        .args(["clf.o", "-lm"])
        .output()
        .expect("cc runs");
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
    let o = Command::new(dir.join("api_test")).output().expect("api_test runs");
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).starts_with("digits_sgd "), "{}", text(&o.stdout));
    let _ = std::fs::remove_dir_all(&dir);
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
        let spec_text = format!("model m{case} {{\n  {body}\n}}\ntrain {{\n  data \"x.csv\" validation 10%\n}}\n");
        let spec = dir.join(format!("m{case}.net"));
        std::fs::write(&spec, &spec_text).expect("write");
        let mut sources = SourceMap::new();
        let id = sources.add("m.net", spec_text.clone());
        let checked = netc::compile(&sources, id, &[], &Limits { memory_bytes: 1 << 30 })
            .checked
            .expect("compiles");
        let graph = netc::graph::build(&checked);
        let mut interp: Interpreter<f32> = Interpreter::new(graph.clone(), 40 + case as u64);
        let mut rng = Rng::new(case as u64, 1);
        // Random parameters (larger than the initial ones) and a non-trivial normalization.
        for p in &mut interp.params {
            p.mapv_inplace(|_| (rng.normal() * 0.7) as f32);
        }
        let width = graph.input_width;
        let normalization = netc::data::Normalization {
            shift: (0..width).map(|i| i as f32 * 0.3 - 0.5).collect(),
            scale: (0..width).map(|i| 0.5 + i as f32 * 0.25).collect(),
        };
        let tensors = netc::run::weights::model_tensors(&graph, &interp.params, &normalization);
        let weights = dir.join(format!("m{case}.safetensors"));
        std::fs::write(&weights, netc::run::weights::encode(&tensors, Default::default())).expect("write");
        let exe = dir.join(format!("model{case}"));
        build_executable(&spec, &weights, &exe, &["--emit", "exe"], &format!("case {case}"));
        // 37 rows: several 16-row chunks and a remainder.
        let raw = Array2::from_shape_fn((37, width), |_| (rng.normal() * 2.0) as f32);
        let rows = dir.join(format!("rows{case}.csv"));
        std::fs::write(&rows, csv(&raw)).expect("write");
        let out = Command::new(&exe).arg(&rows).output().expect("exe runs");
        assert!(out.status.success(), "case {case}: {}", text(&out.stderr));
        let got = parse_lines(&text(&out.stdout));
        let mut normalized = raw.clone();
        normalization.apply(&mut normalized);
        let t = Array2::zeros((37, graph.output_width));
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
        for (r, (line, want)) in got.iter().zip(expected.rows()).enumerate() {
            let probabilities = netc::report::metrics::class_probabilities(want);
            assert_eq!(
                line[0] as usize,
                netc::report::metrics::predicted_class(want),
                "case {case} row {r}: class"
            );
            for (g, w) in line[1..].iter().zip(&probabilities) {
                assert!(
                    (g - *w as f64).abs() <= 2e-5 * (1.0 + w.abs() as f64),
                    "case {case} row {r}: {g} vs {w}\n{spec_text}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
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
