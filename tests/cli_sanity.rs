//! What training and benchmarking check before and while they run, so that nothing ends in
//! "completed" (or an abort) where an error or a warning was due: a finite but exploding loss,
//! a validation split that rounds to nothing, data that cannot teach the model, a benchmark
//! batch that does not fit in memory.

mod common;
use common::*;

use std::path::Path;

/// A digits spec with `optimizer` and `extra` lines in its train section.
fn digits_spec(dir: &Path, name: &str, optimizer: &str, extra: &str) -> std::path::PathBuf {
    let spec = dir.join(format!("{name}.net"));
    let text = format!(
        "model {name} {{\n  input 64\n  dense h1: 32 relu\n  dense out: 10 softmax\n  loss cross_entropy\n}}\n\
         train {{\n  data digits validation 15%\n  optimizer {optimizer}\n  batch 32 epochs 3 seed 1\n{extra}}}\n"
    );
    std::fs::write(&spec, text).expect("write spec");
    spec
}

/// A CSV spec: `rows` as `data.csv`, a model with `classes` softmax outputs.
fn csv_spec(dir: &Path, rows: &str, inputs: usize, classes: usize) -> std::path::PathBuf {
    std::fs::write(dir.join("data.csv"), rows).expect("write data");
    let spec = dir.join("csv.net");
    let text = format!(
        "model m {{\n  input {inputs}\n  dense {classes} softmax\n  loss cross_entropy\n}}\n\
         train {{\n  data \"data.csv\"\n  epochs 2 batch 4\n}}\n"
    );
    std::fs::write(&spec, text).expect("write spec");
    spec
}

#[test]
fn a_finite_loss_that_explodes_is_divergence() {
    let dir = temp_dir("sanity-explode");
    // sgd at lr 1e6 stays finite for a while (the loss reaches ~1e10 and more) but learns
    // nothing: it used to run to "completed" with exit 0.
    let spec = digits_spec(&dir, "boom", "sgd lr 1e6", "");
    let out = netc(&["train", s(&spec), "-q", "--out", s(&dir.join("run"))]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[E0109]"), "{stderr}");
    assert!(stderr.contains("the loss grew from"), "{stderr}");
    assert!(stderr.contains("`--set train.optimizer.lr=1e5`"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn divergence_suggests_a_learning_rate_as_a_user_would_type_it() {
    let dir = temp_dir("sanity-lr");
    let spec = digits_spec(&dir, "huge", "sgd lr 1e30", "");
    let out = netc(&["train", s(&spec), "-q", "--out", s(&dir.join("run"))]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[E0109]"), "{stderr}");
    // Not `1.0000000000000001e29`, not `0e0`.
    assert!(stderr.contains("`--set train.optimizer.lr=1e29`"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_validation_split_that_rounds_to_no_rows_is_refused() {
    let dir = temp_dir("sanity-validation");
    let spec = digits_spec(&dir, "tiny_split", "adam lr 1e-3", "  early_stop val_loss patience 2\n")
        .to_string_lossy()
        .into_owned();
    let text_spec = std::fs::read_to_string(&spec)
        .expect("read")
        .replace("validation 15%", "validation 0.01%");
    std::fs::write(&spec, text_spec).expect("write");
    let out = netc(&["train", &spec, "-q", "--out", s(&dir.join("run"))]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[E0104]"), "{stderr}");
    assert!(stderr.contains("rounds to 0 rows"), "{stderr}");
    assert!(stderr.contains("at least 0.04%"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn training_data_missing_classes_is_a_warning() {
    let dir = temp_dir("sanity-classes");
    let rows: String = (0..16).map(|i| format!("{},{},{}\n", i, 16 - i, i % 2)).collect();
    let spec = csv_spec(&dir, &rows, 2, 10);
    let out = netc(&["train", s(&spec), "-q", "--out", s(&dir.join("run"))]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a warning, not an error: {stderr}");
    assert!(stderr.contains("warning[W0106]"), "{stderr}");
    assert!(
        stderr.contains("cover 2 of the model's 10 classes: no row has label 2, 3, 4"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn constant_features_are_a_warning() {
    let dir = temp_dir("sanity-constant");
    let rows: String = (0..16).map(|i| format!("0.5,0.5,{}\n", i % 3)).collect();
    let spec = csv_spec(&dir, &rows, 2, 3);
    let out = netc(&["train", s(&spec), "-q", "--out", s(&dir.join("run"))]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("warning[W0107]"), "{stderr}");
    assert!(!stderr.contains("W0106"), "every class is there: {stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_benchmark_batch_too_large_for_memory_is_refused_before_allocating() {
    // It used to abort with SIGABRT ("memory allocation of 25600000000 bytes failed").
    let out = netc(&["bench", "examples/digits.net", "--batch", "100000000"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[E0107]"), "{stderr}");
    assert!(stderr.contains("of memory, more than the"), "{stderr}");
    let out = netc(&["bench", "examples/digits.net", "--samples", "100000000000"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

/// E0017's estimate against what training really holds at its peak: a model whose memory is
/// its parameters (17 million, with Adam's state, the best epoch's copy and the checkpoints),
/// so the figure a user is told is not half of what the machine must have. The estimate used
/// to be 2.2x below the peak.
#[test]
fn the_memory_estimate_covers_the_peak_of_training() {
    let dir = temp_dir("sanity-memory");
    let spec = dir.join("wide.net");
    let text_spec = "model wide {\n  input 64\n  dense h1: 4096 relu\n  dense h2: 4096 relu\n  dense out: 10 softmax\n  loss cross_entropy\n}\n\
                     train {\n  data digits validation 15%\n  optimizer adam lr 1e-4\n  batch 256 epochs 2 seed 1\n  early_stop val_loss patience 3 restore_best\n}\n";
    std::fs::write(&spec, text_spec).expect("write spec");
    let loaded = netc::run::spec::load_spec(&spec, &[]).unwrap_or_else(|_| panic!("the spec checks"));
    let checked = &loaded.run.checked;
    let estimate = netc::check::memory_estimate(checked.program(), checked.shapes()) as f64;
    let run = dir.join("run");
    let out = netc(&["train", s(&spec), "-q", "--out", s(&run)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).expect("report")).expect("json");
    let Some(peak) = report["peak_memory_bytes"].as_f64() else {
        // Not Linux: nothing to compare against.
        return;
    };
    assert!(estimate >= 0.9 * peak, "estimate {estimate} bytes, peak {peak} bytes");
    assert!(
        estimate <= 2.0 * peak,
        "estimate {estimate} bytes, peak {peak} bytes: too cautious"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
