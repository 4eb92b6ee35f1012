//! The lecture's tools: `netc diagnose` on real runs (poor training, overfitting, healthy) and `netc sweep`.

mod common;
use common::*;

fn diagnose(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let o = netc(&["diagnose", s(dir), "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .expect("JSON")
        .as_array()
        .expect("array")
        .clone()
}

fn kinds(findings: &[serde_json::Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["kind"].as_str().expect("kind").to_string())
        .collect()
}

#[test]
fn the_lectures_procedure() {
    let dir = temp_dir("diagnose");
    // Eight sigmoid layers with sgd: poor training, vanishing gradients (seen with --grad-stats).
    let deep = dir.join("deep.net");
    std::fs::write(
        &deep,
        "model deep8 {\n  input 64\n  repeat 8 { dense 64 sigmoid init xavier }\n  dropout 0.1\n  dense 10 softmax\n  loss cross_entropy\n}\n\ntrain {\n  data digits validation 15%\n  optimizer sgd lr 0.1\n  batch 32 epochs 3 seed 1\n}\n",
    )
    .expect("write");
    assert!(
        netc(&["train", s(&deep), "-q", "--grad-stats", "--out", s(&dir.join("deep"))])
            .status
            .success()
    );
    let metrics = std::fs::read_to_string(dir.join("deep/metrics.csv")).expect("metrics");
    assert!(
        metrics
            .lines()
            .next()
            .expect("header")
            .contains("grad_dense1,update_ratio_dense1")
    );
    assert!(dir.join("deep/gradients.svg").is_file());
    let findings = diagnose(&dir.join("deep"));
    assert_eq!(
        kinds(&findings),
        ["poor_training", "vanishing_gradients", "dropout_hurts_training"]
    );
    let advice = findings[0]["advice"].to_string();
    assert!(advice.contains("relu") && advice.contains("adam"), "{advice}");

    // A large network on a fifth of the data, no regularization: overfitting.
    let over = dir.join("over.net");
    let example = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits.net"))
        .expect("example");
    let text_over = example
        .replace("validation 15%", "validation 80%")
        .replace("  early_stop val_loss patience 8 restore_best\n", "")
        .replace("  regularize l2 1e-4\n", "")
        .replace("  dropout 0.2\n", "");
    std::fs::write(&over, text_over).expect("write");
    assert!(
        netc(&["train", s(&over), "-q", "--out", s(&dir.join("over"))])
            .status
            .success()
    );
    let findings = diagnose(&dir.join("over"));
    assert_eq!(kinds(&findings), ["overfitting"]);
    let advice = findings[0]["advice"].to_string();
    assert!(
        advice.contains("early_stop") && advice.contains("l2") && advice.contains("dropout"),
        "{advice}"
    );

    // The example itself: healthy.
    assert!(
        netc(&["train", "examples/digits.net", "-q", "--out", s(&dir.join("good"))])
            .status
            .success()
    );
    assert_eq!(kinds(&diagnose(&dir.join("good"))), ["healthy"]);

    // Not a run directory: a clear error.
    let o = netc(&["diagnose", s(&dir.join("nothing"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("metrics.csv"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sweep_trains_every_combination() {
    let dir = temp_dir("sweep");
    let report = dir.join("r.csv");
    let o = netc(&[
        "sweep",
        "examples/digits.net",
        "--vary",
        "model.h1.width=8,64",
        "--vary",
        "train.optimizer.schedule=constant,step(5, 0.5)",
        "--epochs",
        "3",
        "--out",
        s(&dir.join("out")),
        "--report",
        s(&report),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert_eq!(table.lines().count(), 2 + 4, "{table}");
    assert!(table.contains("| 64 | step(5, 0.5) |"), "{table}");
    let csv = std::fs::read_to_string(&report).expect("report");
    assert!(
        csv.starts_with("model.h1.width,train.optimizer.schedule,train_accuracy"),
        "{csv}"
    );
    assert!(csv.contains("\"step(5, 0.5)\""), "{csv}");
    for f in ["sweep.md", "sweep.json", "sweep.csv", "sweep.svg"] {
        assert!(dir.join("out").join(f).is_file(), "{f}");
    }
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/sweep.json")).expect("json")).expect("valid");
    assert_eq!(rows.len(), 4);
    assert_ne!(
        rows[0]["train_loss"], rows[2]["train_loss"],
        "the width changes the result"
    );
    // An invalid value is refused before anything trains.
    let o = netc(&[
        "sweep",
        "examples/digits.net",
        "--vary",
        "train.optimizer=adam,sgdd",
        "--out",
        s(&dir.join("bad")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("did you mean `sgd`?"));
    assert!(!dir.join("bad").exists(), "nothing was trained");
    let _ = std::fs::remove_dir_all(&dir);
}
