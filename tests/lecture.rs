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

/// A weights file's tensors, by name (the header also holds a hash of the spec text and its
/// overrides, which differs between equivalent specs).
fn tensors(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("weights");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut tensors: Vec<(String, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    tensors.sort();
    tensors
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
    // The schedule is a training setting: two networks compiled, each reused once.
    assert!(
        text(&o.stderr).contains("4 runs, 2 compiled networks"),
        "{}",
        text(&o.stderr)
    );
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
    // A run on reused kernels trains exactly like a run on its own.
    let alone = dir.join("alone");
    let o = netc(&[
        "train",
        "examples/digits.net",
        "-q",
        "--epochs",
        "3",
        "--set",
        "model.h1.width=64",
        "--set",
        "train.optimizer.schedule=step(5, 0.5)",
        "--out",
        s(&alone),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let reused = std::path::PathBuf::from(rows[3]["run_dir"].as_str().expect("run_dir"));
    assert!(
        tensors(&reused.join("weights.safetensors")) == tensors(&alone.join("weights.safetensors")),
        "the run on reused kernels differs"
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

/// Relu is maxout with two pieces, one fixed at zero: the same spec written either way trains to
/// the same bytes (same parameters, same initial values, same gradients), on both backends.
#[test]
fn maxout_with_a_zero_piece_is_relu() {
    let dir = temp_dir("maxout-relu");
    let spec = |hidden: &str| {
        format!(
            "model m {{\n  input 64\n  {hidden}\n  dropout 0.2\n  dense out: 10 softmax\n  loss cross_entropy\n}}\n\ntrain {{\n  data digits validation 15%\n  optimizer adam lr 1e-3\n  batch 32 epochs 2 seed 4\n}}\n"
        )
    };
    std::fs::write(dir.join("relu.net"), spec("dense h: 48 relu")).expect("write");
    std::fs::write(dir.join("maxout.net"), spec("maxout h: 96 pieces 2 fixed_zero")).expect("write");
    std::fs::write(dir.join("free.net"), spec("maxout h: 96 pieces 2")).expect("write");
    let weights = |name: &str, backend: &str| {
        let out = dir.join(format!("{name}-{backend}"));
        let o = netc(&[
            "train",
            s(&dir.join(format!("{name}.net"))),
            "-q",
            "--backend",
            backend,
            "--out",
            s(&out),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        tensors(&out.join("weights.safetensors"))
    };
    for backend in ["interp", "jit"] {
        let relu = weights("relu", backend);
        assert!(
            relu == weights("maxout", backend),
            "{backend}: fixed_zero maxout differs from relu"
        );
        assert!(
            relu != weights("free", backend),
            "{backend}: a free second piece learns something else"
        );
    }
    // The summary says which piece is fixed.
    let o = netc(&["check", "--summary", s(&dir.join("maxout.net"))]);
    assert!(
        text(&o.stdout).contains("maxout 96 pieces 2 fixed_zero      48    3120"),
        "{}",
        text(&o.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Dropout as an implicit ensemble: for a linear network the weight-scaled output is the average
/// over masks, so sampled averages converge to it (error ~ 1/sqrt(N)); for a nonlinear network
/// they converge to something else.
#[test]
fn dropout_weight_scaling_against_sampled_masks() {
    let dir = temp_dir("ensemble");
    let spec = |act: &str, out: &str, loss: &str| {
        format!(
            "model m {{\n  input 64\n  dropout 0.2 scale_at_test\n  dense 64 {act}\n  dropout 0.5\n  dense 32 {act}\n  dense 10 {out}\n  loss {loss}\n}}\n\ntrain {{\n  data digits validation 15%\n  optimizer adam lr 1e-3\n  batch 32 epochs 5 seed 2\n}}\n"
        )
    };
    let difference = |name: &str, samples: &str| {
        let report = dir.join(format!("{name}-{samples}.json"));
        let o = netc(&[
            "eval",
            s(&dir.join(format!("{name}.net"))),
            "--weights",
            s(&dir.join(name).join("weights.safetensors")),
            "--dropout-samples",
            samples,
            "--report",
            s(&report),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(text(&o.stdout).contains("dropout as an ensemble"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
        v["dropout_ensemble"]["mean_abs_difference"]
            .as_f64()
            .expect("difference")
    };
    for (name, act, out, loss) in [
        ("linear", "linear", "linear", "mse"),
        ("relu", "relu", "softmax", "cross_entropy"),
    ] {
        let path = dir.join(format!("{name}.net"));
        std::fs::write(&path, spec(act, out, loss)).expect("write");
        let o = netc(&["train", s(&path), "-q", "--out", s(&dir.join(name))]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let (few, many) = (difference("linear", "10"), difference("linear", "1000"));
    assert!(many < few / 5.0, "linear: {few} with 10 masks, {many} with 1000");
    let (few, many) = (difference("relu", "10"), difference("relu", "1000"));
    assert!(
        many > few / 3.0,
        "relu: {few} with 10 masks, {many} with 1000: no floor"
    );
    // No dropout layer: nothing to sample.
    let plain = dir.join("plain.net");
    std::fs::write(
        &plain,
        spec("relu", "softmax", "cross_entropy")
            .replace("  dropout 0.2 scale_at_test\n", "")
            .replace("  dropout 0.5\n", ""),
    )
    .expect("write");
    let o = netc(&[
        "eval",
        s(&plain),
        "--weights",
        s(&dir.join("relu/weights.safetensors")),
        "--dropout-samples",
        "10",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("no dropout layer"), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
