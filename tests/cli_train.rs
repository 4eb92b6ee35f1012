//! `netc train`, `eval` and `predict` from the command line, end to end.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file exists")).expect("valid JSON")
}

#[test]
fn digits_trains_to_95_percent_and_writes_the_run_directory() {
    let dir = temp_dir("digits");
    let out = dir.join("run");
    let report = dir.join("report.json");
    let o = netc(&["train", "examples/digits.net", "--out", s(&out), "--report", s(&report)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("epoch   1/40"),
        "one line per epoch when not on a terminal:\n{stdout}"
    );
    let r = json(&report);
    let test_accuracy = r["test"]["accuracy"].as_f64().expect("test accuracy");
    assert!(test_accuracy >= 0.95, "digits test accuracy {test_accuracy}");
    for key in [
        "train",
        "validation",
        "test",
        "epochs_run",
        "best_epoch",
        "stop_reason",
        "wall_seconds",
        "samples_per_second",
    ] {
        assert!(r.get(key).is_some(), "report lacks {key}");
    }
    // The run directory.
    assert_eq!(
        std::fs::read_to_string(out.join("spec.net")).expect("spec"),
        std::fs::read_to_string("examples/digits.net").expect("example")
    );
    let settings = json(&out.join("settings.json"));
    assert_eq!(settings["program"]["train"]["batch"], 32);
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).expect("metrics");
    assert!(metrics.starts_with("epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n"));
    assert_eq!(
        metrics.lines().count(),
        1 + r["epochs_run"].as_u64().expect("epochs") as usize
    );
    let svg = std::fs::read_to_string(out.join("curves.svg")).expect("curves");
    assert!(
        svg.contains("<svg") && svg.contains("validation"),
        "curves.svg has both curves"
    );
    assert_eq!(json(&out.join("report.json")), r);

    // The weights file follows the safetensors layout (8-byte length, JSON header, f32 data).
    let bytes = std::fs::read(out.join("weights.safetensors")).expect("weights");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("JSON header");
    assert_eq!(header["h1.weight"]["dtype"], "F32");
    assert_eq!(header["h1.weight"]["shape"], serde_json::json!([128, 64]));
    assert_eq!(header["__metadata__"]["format"], "pt");

    // eval reproduces the report's test accuracy exactly.
    let eval_report = dir.join("eval.json");
    let o = netc(&[
        "eval",
        "examples/digits.net",
        "--weights",
        s(&out.join("weights.safetensors")),
        "--report",
        s(&eval_report),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let e = json(&eval_report);
    assert_eq!(e["accuracy"], r["test"]["accuracy"]);
    assert_eq!(e["confusion"].as_array().expect("matrix").len(), 10);
    assert!(text(&o.stdout).contains("precision"));
    let o = netc(&[
        "eval",
        "examples/digits.net",
        "--weights",
        s(&out.join("weights.safetensors")),
        "--split",
        "val",
    ]);
    assert!(
        text(&o.stdout).starts_with("validation: 216 samples"),
        "{}",
        text(&o.stdout)
    );

    // predict: one line per row, class first; JSON too.
    let rows = dir.join("rows.csv");
    std::fs::write(&rows, "0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0\n0,0,0,12,13,5,0,0,0,0,0,11,16,9,0,0,0,0,3,15,16,6,0,0,0,7,15,16,16,2,0,0,0,0,1,16,16,3,0,0,0,0,1,16,16,6,0,0,0,0,1,16,16,6,0,0,0,0,0,11,16,10,0,0\n").expect("rows");
    let o = netc(&[
        "predict",
        "examples/digits.net",
        "--weights",
        s(&out.join("weights.safetensors")),
        s(&rows),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let lines: Vec<String> = text(&o.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("0 ") && lines[1].starts_with("1 "), "{lines:?}");
    assert_eq!(lines[0].split(' ').count(), 11);
    let o = netc(&[
        "predict",
        "examples/digits.net",
        "--weights",
        s(&out.join("weights.safetensors")),
        s(&rows),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v[1]["class"], 1);
    let sum: f64 = v[0]["probabilities"]
        .as_array()
        .expect("probs")
        .iter()
        .map(|p| p.as_f64().expect("number"))
        .sum();
    assert!((sum - 1.0).abs() < 1e-4);

    // Weights that do not match the spec are refused, naming the tensor.
    let o = netc(&[
        "eval",
        "examples/optimizer_sgd.net",
        "--weights",
        s(&out.join("weights.safetensors")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("h1.weight"), "{}", text(&o.stderr));
    let o = netc(&["predict", "examples/digits.net", "--weights", s(&rows), s(&rows)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("not a valid safetensors file"),
        "{}",
        text(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn set_overrides_are_checked_like_the_file() {
    let dir = temp_dir("set");
    let o = netc(&[
        "train",
        "examples/digits.net",
        "--set",
        "train.optimizer.lr=0",
        "--out",
        s(&dir.join("a")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains("E0007") && stderr.contains("--set train.optimizer.lr"),
        "{stderr}"
    );
    let o = netc(&["train", "examples/digits.net", "--set", "model.h1.widht=3"]);
    assert!(
        text(&o.stderr).contains("did you mean `model.h1.width`?"),
        "{}",
        text(&o.stderr)
    );
    let o = netc(&["train", "examples/digits.net", "--set", "nonsense"]);
    assert_eq!(o.status.code(), Some(1));
    let out = dir.join("b");
    let o = netc(&[
        "train",
        "examples/digits.net",
        "--set",
        "model.h1.width=16",
        "--epochs",
        "2",
        "-q",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let settings = json(&out.join("settings.json"));
    assert_eq!(settings["program"]["model"]["layers"][0]["kind"]["Dense"]["width"], 16);
    assert_eq!(settings["overrides"][1], "train.epochs=2");
    assert_eq!(json(&out.join("report.json"))["epochs_run"], 2);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn bad_data_files_name_the_place() {
    let dir = temp_dir("bad-data");
    // Trains a two-feature spec on `rows` and expects an error containing `message`.
    let refused = |file: &str, rows: &str, message: &str| {
        std::fs::write(dir.join(file), rows).expect("write");
        let spec = dir.join(format!("{file}.net"));
        let text_spec = format!(
            "model m {{\n  input 2\n  dense 2 softmax\n  loss cross_entropy\n}}\ntrain {{\n  data \"{file}\"\n}}\n"
        );
        std::fs::write(&spec, text_spec).expect("write");
        let o = netc(&["train", s(&spec), "--out", s(&dir.join("run"))]);
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o.stderr).contains(message), "{}", text(&o.stderr));
    };
    refused(
        "bad.csv",
        "1,2,0\n3,oops,1\n",
        "bad.csv`, row 2, column 2: `oops` is not a number",
    );
    refused(
        "labels.csv",
        "1,2,0\n3,4,7\n",
        "has label 7, but the output layer has 2 units",
    );
    // MNIST that is not there: the error says where netc looked.
    let o = netc(&["train", "examples/mnist_mlp.net", "--data-dir", s(&dir.join("nowhere"))]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains("nowhere/mnist") && stderr.contains("--data-dir"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Ctrl-C finishes the step, checkpoints and exits; `--resume` ends with the weights of an
/// uninterrupted run.
#[test]
fn ctrl_c_checkpoints_and_resume_matches_an_uninterrupted_run() {
    let dir = temp_dir("sigint");
    let args = [
        "--set",
        "train.batch=4",
        "--set",
        "train.early_stop.patience=100",
        "--epochs",
        "6",
        "--seed",
        "9",
    ];
    let whole = dir.join("whole");
    let mut full: Vec<&str> = vec!["train", "examples/digits.net", "-q", "--out", s(&whole)];
    full.extend(args);
    assert_eq!(netc(&full).status.code(), Some(0));

    let parts = dir.join("parts");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netc"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["train", "examples/digits.net", "--out", s(&parts)])
        .args(args);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // Wait for the first finished epoch, then interrupt the second.
    loop {
        let line = lines.next().expect("netc prints epoch lines").expect("utf-8");
        if line.starts_with("epoch   1/6") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = child.wait().expect("netc exits");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(parts.join("checkpoint.safetensors").is_file());

    let mut resume: Vec<&str> = vec!["train", "examples/digits.net", "-q", "--resume", s(&parts)];
    resume.extend(args);
    let o = netc(&resume);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let a = std::fs::read(whole.join("weights.safetensors")).expect("whole");
    let b = std::fs::read(parts.join("weights.safetensors")).expect("parts");
    assert!(a == b, "the resumed run's weights differ from the uninterrupted run's");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
