//! Convolutional and residual networks through every command: check, fmt, train, eval,
//! predict, sweep, diagnose and bench (build: `tests/aot.rs`), on the default backend.

mod common;
use common::*;

/// A residual CNN on the built-in digits: batchnorm (running statistics in eval and predict),
/// a projection shortcut, a labelled skip, pooling, prelu per channel, dropout.
const SPEC: &str = "model cnn {
  input 1 8 8
  conv stem: 8 kernel 3 pad same no_bias
  batchnorm relu
  residual relu {
    conv 8 kernel 3 pad same no_bias
    batchnorm relu
    conv 8 kernel 3 pad same no_bias
    batchnorm
  }
  residual down: relu shortcut project {
    conv 16 kernel 3 stride 2 pad same prelu
  }
  add down
  maxpool 2
  dropout 0.1
  global_avgpool
  dense out: 10 softmax
  loss cross_entropy
}

train {
  data digits validation 15%
  optimizer adam lr 3e-3
  regularize l2 1e-4
  batch 32 epochs 4 seed 7
}
";

#[test]
fn a_residual_cnn_goes_through_every_command() {
    let dir = temp_dir("cli-cnn");
    let spec = dir.join("cnn.net");
    std::fs::write(&spec, SPEC).expect("write spec");

    let check = netc(&["check", s(&spec)]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let fmt = netc(&["fmt", "--check", s(&spec)]);
    assert!(fmt.status.success(), "{}{}", text(&fmt.stdout), text(&fmt.stderr));

    let run = dir.join("run");
    let train = netc(&["train", s(&spec), "-q", "--out", s(&run)]);
    assert!(train.status.success(), "{}", text(&train.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).expect("report")).expect("json");
    let trained = report["train"]["accuracy"].as_f64().expect("train accuracy");
    assert!(trained > 0.8, "4 epochs reach {trained}");

    // PyTorch's names and layouts.
    let weights = run.join("weights.safetensors");
    let bytes = std::fs::read(&weights).expect("weights");
    let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let shape = |name: &str| tensors.tensor(name).map(|t| t.shape().to_vec()).unwrap_or_default();
    assert_eq!(shape("stem.weight"), [8, 1, 3, 3]);
    assert_eq!(shape("batchnorm1.running_var"), [8]);
    assert_eq!(shape("down.project.weight"), [16, 8, 1, 1]);
    assert_eq!(shape("down.project_bn.running_mean"), [16]);
    assert_eq!(shape("conv4.slope"), [16]);
    assert_eq!(shape("out.weight"), [10, 16]);
    let running: Vec<f32> = tensors
        .tensor("batchnorm1.running_var")
        .expect("running variance")
        .data()
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(
        running.iter().any(|&v| v != 1.0),
        "the running variance followed the batches"
    );

    // eval uses the running statistics; predict on the test rows gives the same accuracy.
    let eval_report = dir.join("eval.json");
    let eval = netc(&["eval", s(&spec), "--weights", s(&weights), "--report", s(&eval_report)]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&eval_report).expect("eval report")).expect("json");
    let accuracy = eval["accuracy"].as_f64().expect("accuracy");
    assert_eq!(accuracy, report["test"]["accuracy"].as_f64().expect("test accuracy"));
    let all = netc::data::digits().expect("digits");
    let test = all.select(&((1797 - netc::data::DIGITS_TEST_ROWS)..1797).collect::<Vec<_>>());
    let rows: String = test
        .features
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let rows_path = dir.join("test.csv");
    std::fs::write(&rows_path, rows).expect("write rows");
    let predict = netc(&["predict", s(&spec), "--weights", s(&weights), s(&rows_path)]);
    assert!(predict.status.success(), "{}", text(&predict.stderr));
    let classes: Vec<usize> = text(&predict.stdout)
        .lines()
        .map(|l| l.split(' ').next().expect("class").parse().expect("a class"))
        .collect();
    let correct = classes.iter().zip(&test.labels).filter(|(p, l)| p == l).count();
    assert_eq!(correct as f64 / test.len() as f64, accuracy);

    // A sweep over the dropout rate.
    let sweep_dir = dir.join("sweep");
    let sweep = netc(&[
        "sweep",
        s(&spec),
        "--vary",
        "model.dropout1.rate=0.1,0.2",
        "--set",
        "train.epochs=1",
        "--out",
        s(&sweep_dir),
    ]);
    assert!(sweep.status.success(), "{}", text(&sweep.stderr));
    let table = std::fs::read_to_string(sweep_dir.join("sweep.md")).expect("sweep table");
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with("| 0.1") || l.starts_with("| 0.2"))
            .count(),
        2,
        "{table}"
    );

    let diagnose = netc(&["diagnose", s(&run)]);
    assert!(diagnose.status.success(), "{}", text(&diagnose.stderr));
    assert!(!text(&diagnose.stdout).is_empty());

    let bench = netc(&["bench", s(&spec), "--samples", "256", "--repeats", "1"]);
    assert!(bench.status.success(), "{}", text(&bench.stderr));
    let bench_out = text(&bench.stdout);
    for layer in ["stem", "batchnorm1", "down", "out"] {
        assert!(
            bench_out.contains(layer),
            "bench's per-layer table names `{layer}`:\n{bench_out}"
        );
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A CSV whose rows do not hold C x H x W values is refused at train time with the file and
/// both sizes.
#[test]
fn image_data_of_the_wrong_width_names_file_and_shape() {
    let dir = temp_dir("cli-cnn-width");
    let data = dir.join("rows.csv");
    std::fs::write(&data, "1,2,3,4,5,0\n6,7,8,9,10,1\n").expect("write data");
    let spec = dir.join("s.net");
    std::fs::write(
        &spec,
        "model m {\n  input 1 2 2\n  conv 2 relu kernel 2\n  dense 2 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"rows.csv\"\n}\n",
    )
    .expect("write spec");
    let o = netc(&["train", s(&spec), "-q", "--out", s(&dir.join("run"))]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("E0105"), "{err}");
    assert!(err.contains("rows.csv"), "{err}");
    assert!(err.contains("5 features per sample"), "{err}");
    assert!(err.contains("1x2x2 (4 values, read row-major)"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
