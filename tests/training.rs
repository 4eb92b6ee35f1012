//! Training through the library: determinism, resume equivalence, divergence.

mod common;
use common::*;

use netc::data::DataDirs;
use netc::run::train::{Outcome, Progress, Run, TrainOptions, train};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn run_of(dir: &Path, text: &str, sets: &[&str]) -> Run {
    let spec = dir.join("spec.net");
    std::fs::write(&spec, text).expect("write spec");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    match netc::run::spec::load_spec(&spec, &sets) {
        Ok(loaded) => loaded.run,
        Err(failure) => panic!("{failure:?}"),
    }
}

fn options(dir: &Path, out: &str) -> TrainOptions {
    options_on(dir, out, netc::run::train::Backend::Interp)
}

fn options_on(dir: &Path, out: &str, backend: netc::run::train::Backend) -> TrainOptions {
    TrainOptions {
        data_dirs: DataDirs::default(),
        spec_dir: dir.to_path_buf(),
        out: Some(dir.join(out)),
        force: false,
        spec: None,
        resume: None,
        report: None,
        progress: Progress::Quiet,
        interrupt: Arc::new(AtomicBool::new(false)),
        stop_after_steps: None,
        grad_stats: false,
        backend,
    }
}

const SPEC: &str = "model d {
  input 64
  dense h1: 32 relu
  dropout 0.3
  dense h2: 32 prelu
  dense out: 10 softmax
  loss cross_entropy
}
train {
  data digits validation 200
  optimizer momentum lr 0.05 lambda 0.9 schedule step(2, 0.5)
  regularize l2 1e-4
  batch 64 epochs 5 seed 3
  early_stop val_loss patience 2 restore_best
}
";

/// A small residual CNN with the same data and training settings: batchnorm's running
/// statistics are saved, checkpointed and resumed like parameters, and augmentation draws the
/// same images on resume.
const CNN_SPEC: &str = "model c {
  input 1 8 8
  conv c1: 4 kernel 3 pad same no_bias
  batchnorm relu
  maxpool 2
  residual relu {
    conv 4 kernel 3 pad same prelu
    batchnorm momentum 0.2
  }
  dropout 0.2
  dense out: 10 softmax
  loss cross_entropy
}
train {
  data digits validation 200
  optimizer momentum lr 0.05 lambda 0.9 schedule step(2, 0.5)
  regularize l2 1e-4
  batch 64 epochs 5 seed 3
  early_stop val_loss patience 2 restore_best
  augment shift 1 flip
}
";

fn finished(
    outcome: Outcome,
) -> (
    netc::run::train::Report,
    Vec<netc::run::train::EpochRecord>,
    Vec<ndarray::Array2<f32>>,
) {
    match outcome {
        Outcome::Finished {
            report,
            history,
            params,
            ..
        } => (report, history, params),
        Outcome::Interrupted { .. } => panic!("the run was not meant to be interrupted"),
    }
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    for (backend, (kind, spec)) in [netc::run::train::Backend::Interp, netc::run::train::Backend::Jit]
        .into_iter()
        .flat_map(|b| [("mlp", SPEC), ("cnn", CNN_SPEC)].map(|s| (b, s)))
    {
        let dir = temp_dir(&format!("determinism-{kind}-{}", backend.name()));
        let run = run_of(&dir, spec, &[]);
        let (_, _, a) = finished(train(&run, &options_on(&dir, "a", backend)).expect("trains"));
        let (_, _, b) = finished(train(&run, &options_on(&dir, "b", backend)).expect("trains"));
        assert!(a == b, "{}: two runs with one seed differ", backend.name());
        let other = run_of(&dir, spec, &["train.seed=4"]);
        let (_, _, c) = finished(train(&other, &options_on(&dir, "c", backend)).expect("trains"));
        assert!(a != c, "another seed gives the same weights");
        let bytes_a = std::fs::read(dir.join("a/weights.safetensors")).expect("weights a");
        let bytes_b = std::fs::read(dir.join("b/weights.safetensors")).expect("weights b");
        assert!(bytes_a == bytes_b, "weights files differ");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

#[test]
fn augmentation_changes_training_the_same_way_on_every_backend() {
    let dir = temp_dir("augment");
    let plain = CNN_SPEC.replace("  augment shift 1 flip\n", "");
    assert_ne!(plain, CNN_SPEC);
    let augmented = run_of(&dir, CNN_SPEC, &["train.epochs=1"]);
    let (_, _, a) = finished(train(&augmented, &options(&dir, "augmented")).expect("trains"));
    let (_, _, j) =
        finished(train(&augmented, &options_on(&dir, "jit", netc::run::train::Backend::Jit)).expect("trains"));
    let shift_only = run_of(&dir, CNN_SPEC, &["train.epochs=1", "train.augment.flip=false"]);
    let (_, _, f) = finished(train(&shift_only, &options(&dir, "shift-only")).expect("trains"));
    let unaugmented = run_of(&dir, &plain, &["train.epochs=1"]);
    let (_, _, p) = finished(train(&unaugmented, &options(&dir, "plain")).expect("trains"));
    assert!(a != p, "augmentation did not change the weights");
    assert!(a != f, "flip did not change the weights");
    let far = a
        .iter()
        .zip(&j)
        .flat_map(|(x, y)| x.iter().zip(y.iter()))
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0f32, f32::max);
    assert!(far < 1e-3, "interpreter and JIT see different images: {far}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

fn resumes_to_the_same_weights(backend: netc::run::train::Backend, kind: &str, spec: &str) {
    let dir = temp_dir(&format!("resume-{kind}-{}", backend.name()));
    let run = run_of(&dir, spec, &[]);
    let (report, history, uninterrupted) = finished(train(&run, &options_on(&dir, "whole", backend)).expect("trains"));

    // Stop mid-epoch twice (after steps 30 and 61; 20 steps per epoch), resuming each time.
    let mut opts = options_on(&dir, "parts", backend);
    opts.stop_after_steps = Some(30);
    match train(&run, &opts).expect("trains") {
        Outcome::Interrupted { epoch, step, .. } => assert_eq!((epoch, step), (2, 10)),
        Outcome::Finished { .. } => panic!("expected an interruption"),
    }
    let mut resume = options_on(&dir, "unused", backend);
    resume.out = None;
    resume.resume = Some(dir.join("parts"));
    resume.stop_after_steps = Some(61);
    assert!(matches!(
        train(&run, &resume).expect("resumes"),
        Outcome::Interrupted { .. }
    ));
    resume.stop_after_steps = None;
    let (resumed_report, resumed_history, resumed) = finished(train(&run, &resume).expect("resumes"));
    assert!(
        uninterrupted == resumed,
        "resumed weights differ from an uninterrupted run"
    );
    assert_eq!(report.test, resumed_report.test);
    assert_eq!(report.best_epoch, resumed_report.best_epoch);
    let strip = |h: &[netc::run::train::EpochRecord]| {
        h.iter()
            .map(|r| (r.epoch, r.train_loss, r.val_loss))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&history), strip(&resumed_history), "{}", backend.name());

    // A different spec refuses to resume that directory.
    let other = run_of(&dir, spec, &["train.optimizer.lr=0.01"]);
    let err = train(&other, &resume).expect_err("different spec");
    assert!(err.message.contains("different spec"), "{}", err.message);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    for (kind, spec) in [("mlp", SPEC), ("cnn", CNN_SPEC)] {
        resumes_to_the_same_weights(netc::run::train::Backend::Interp, kind, spec);
        resumes_to_the_same_weights(netc::run::train::Backend::Jit, kind, spec);
    }
}

#[test]
fn divergence_names_epoch_step_and_layer() {
    let dir = temp_dir("diverge");
    let text = SPEC.replace(
        "optimizer momentum lr 0.05 lambda 0.9 schedule step(2, 0.5)",
        "optimizer sgd lr 1e30",
    );
    let run = run_of(&dir, &text, &[]);
    let err = train(&run, &options(&dir, "out")).expect_err("diverges");
    assert!(err.message.contains("diverged at epoch 1, step"), "{}", err.message);
    assert!(err.message.contains("layer `"), "{}", err.message);
    assert!(
        err.hint.as_deref().unwrap_or("").contains("train.optimizer.lr="),
        "{:?}",
        err.hint
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    let dir = temp_dir("early");
    // With patience 1 this seed stops at epoch 11 of 40, one after its best.
    let text = SPEC
        .replace("patience 2", "patience 1")
        .replace("epochs 5", "epochs 40");
    let run = run_of(&dir, &text, &[]);
    let (report, history, _) = finished(train(&run, &options(&dir, "out")).expect("trains"));
    assert_eq!(report.stop_reason, "early_stop");
    let best = report.best_epoch.expect("a best epoch");
    assert_eq!(history.len(), best + 1, "patience 1 stops one epoch after the best");
    let best_val = history[best - 1].val_loss.expect("validation");
    assert!(
        (report.validation.expect("validation").loss - best_val).abs() < 1e-6,
        "the best epoch's weights are restored"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
