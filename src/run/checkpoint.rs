//! `checkpoint.safetensors`: parameters, optimizer state, the best epoch's parameters and the
//! training counters, enough to resume a run bit for bit.

use crate::back::engine::Engine;
use crate::diag::{Code, Diagnostic};
use crate::report::history::EpochRecord;
use crate::run::weights;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The checkpoint's file name in a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// The metadata key of a checkpoint's [`State`] (what tells a checkpoint from weights).
pub const STATE_KEY: &str = "netc.checkpoint";

/// Counters and history saved in checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// The spec hash of the run: checkpoints only resume under the same spec.
    pub spec_hash: String,
    /// 0-based epoch in progress (or next).
    pub epoch: usize,
    /// Steps already done in that epoch.
    pub step_in_epoch: usize,
    /// Steps done in all epochs.
    pub global_step: u64,
    /// Optimizer updates done (the engine's counter).
    pub updates: u64,
    /// This epoch's summed loss (times rows).
    pub loss_sum: f64,
    /// This epoch's correctly classified rows.
    pub correct: usize,
    /// Per weight tensor: sums over this epoch's steps of mean |grad| and update ratio.
    #[serde(default)]
    pub grad_sums: Vec<(f64, f64)>,
    /// This epoch's rows so far.
    pub seen: usize,
    /// Seconds of this epoch's steps so far.
    pub epoch_seconds: f64,
    /// The finished epochs.
    pub history: Vec<EpochRecord>,
    /// Best monitored value and its 1-based epoch.
    pub best: Option<(f64, usize)>,
    /// Epochs since the best one.
    pub bad_epochs: usize,
    /// Early stopping ended the run.
    pub stopped_early: bool,
    /// Seconds from start of the run, all sessions.
    pub wall_seconds: f64,
    /// Seconds of training steps, all sessions.
    pub train_seconds: f64,
    /// Rows trained on, all sessions.
    pub samples_trained: u64,
    /// The loss of the run's first step: divergence is measured against it.
    #[serde(default)]
    pub first_loss: Option<f64>,
}

impl State {
    /// The state of a run that has not started.
    pub fn new(spec_hash: String) -> State {
        State {
            spec_hash,
            epoch: 0,
            step_in_epoch: 0,
            global_step: 0,
            updates: 0,
            loss_sum: 0.0,
            grad_sums: Vec::new(),
            correct: 0,
            seen: 0,
            epoch_seconds: 0.0,
            history: Vec::new(),
            best: None,
            bad_epochs: 0,
            stopped_early: false,
            wall_seconds: 0.0,
            train_seconds: 0.0,
            samples_trained: 0,
            first_loss: None,
        }
    }
}

/// Writes the checkpoint of `engine` and `state` into the run directory.
pub fn save(
    out_dir: &Path,
    engine: &dyn Engine,
    state: &State,
    best: Option<&[Array2<f32>]>,
) -> Result<(), Box<Diagnostic>> {
    let graph = engine.graph();
    let params = engine.params();
    let optimizer_state = engine.state();
    let mut tensors: Vec<weights::TensorOut> = Vec::new();
    for (i, p) in graph.params.iter().enumerate() {
        tensors.push(weights::param_out(&p.name, p, &params[i]));
        for (k, s) in optimizer_state[i].iter().enumerate() {
            tensors.push(weights::param_out(&format!("state.{k}.{}", p.name), p, s));
        }
        if let Some(best) = best {
            tensors.push(weights::param_out(&format!("best.{}", p.name), p, &best[i]));
        }
    }
    let mut meta = BTreeMap::new();
    meta.insert(
        STATE_KEY.to_string(),
        serde_json::to_string(state).expect("state serializes"),
    );
    crate::run::artifacts::write_with(&out_dir.join(CHECKPOINT), |out| {
        weights::encode_to(out, &tensors, &meta)
    })
}

/// Restores `engine` from the run directory's checkpoint; returns the training state and the
/// best epoch's parameters, if they were kept.
#[allow(clippy::type_complexity)]
pub fn load(
    out_dir: &Path,
    engine: &mut dyn Engine,
    spec_hash: &str,
) -> Result<(State, Option<Vec<Array2<f32>>>), Box<Diagnostic>> {
    let path = out_dir.join(CHECKPOINT);
    if !path.exists() && out_dir.join(crate::run::artifacts::SPEC).is_file() {
        return Err(Box::new(
            Diagnostic::general(
                Code::BadRunDirectory,
                format!(
                    "cannot resume: the run in `{}` was stopped before its first checkpoint",
                    out_dir.display()
                ),
            )
            .in_file(out_dir)
            .with_hint(format!(
                "start it again: netc train SPEC --out {} --force",
                out_dir.display()
            )),
        ));
    }
    let bytes = weights::read_file(&path, |e| {
        Diagnostic::general(
            Code::BadRunDirectory,
            format!("cannot resume: `{}` cannot be read: {e}", path.display()),
        )
        .in_file(&path)
        .with_hint("pass the run directory that an interrupted `netc train` named")
    })?;
    let (tensors, meta) = weights::decode(&bytes, &path)?;
    let state: State = meta
        .get(STATE_KEY)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            Diagnostic::general(
                Code::BadRunDirectory,
                format!("`{}` holds no training state", path.display()),
            )
            .in_file(&path)
            .with_hint("resume from a directory written by `netc train`")
        })?;
    if state.spec_hash != spec_hash {
        return Err(Diagnostic::general(
            Code::BadRunDirectory,
            format!(
                "cannot resume: `{}` was trained from a different spec (a different program: a value other than the epochs differs)",
                out_dir.display()
            ),
        )
        .in_file(out_dir)
        .with_hint("resume with a spec (and --set options) that give the same program; only --epochs may grow; or start a new run")
        .into());
    }
    let graph = engine.graph().clone();
    let slots = engine.state().first().map_or(0, Vec::len);
    let mut params = Vec::new();
    let mut optimizer_state = Vec::new();
    let mut best = Vec::new();
    for p in &graph.params {
        let tensor = |name: &str| weights::param_from(&tensors, name, p, &path);
        params.push(tensor(&p.name)?);
        let slots_of = (0..slots)
            .map(|k| tensor(&format!("state.{k}.{}", p.name)))
            .collect::<Result<Vec<_>, _>>()?;
        optimizer_state.push(slots_of);
        if tensors.contains_key(&format!("best.{}", p.name)) {
            best.push(tensor(&format!("best.{}", p.name))?);
        }
    }
    engine.set_params(&params);
    engine.set_state(&optimizer_state);
    engine.set_updates(state.updates);
    let best = (best.len() == graph.params.len()).then_some(best);
    Ok((state, best))
}

/// Refuses, before any work, a `--resume` path that is no run directory: missing, or a file.
pub fn check_resumable(dir: &Path) -> Result<(), Box<Diagnostic>> {
    let refuse = |message: String, hint: &str| {
        Box::new(
            Diagnostic::general(Code::BadRunDirectory, message)
                .in_file(dir)
                .with_hint(hint),
        )
    };
    if !dir.exists() {
        return Err(refuse(
            format!("cannot resume: `{}` does not exist", dir.display()),
            "pass the run directory that an interrupted `netc train` named; to start a run there, use --out",
        ));
    }
    if !dir.is_dir() {
        return Err(refuse(
            format!("cannot resume: `{}` is a file, not a run directory", dir.display()),
            "pass the run directory (the one holding checkpoint.safetensors), not a file in it",
        ));
    }
    Ok(())
}

/// Checks a loaded checkpoint's counters against each other and against the run: the epochs
/// done fit the history and the run's `epochs` (`steps` steps of `rows` rows per epoch).
pub fn check_counters(
    state: &State,
    out_dir: &Path,
    epochs: usize,
    steps: usize,
    rows: usize,
) -> Result<(), Box<Diagnostic>> {
    let path = out_dir.join(CHECKPOINT);
    let damaged = |what: String| {
        Box::new(
            Diagnostic::general(
                Code::BadRunDirectory,
                format!("cannot resume: `{}` is inconsistent: {what}", path.display()),
            )
            .in_file(&path)
            .with_hint(format!(
                "the checkpoint is damaged or was not written by this netc; start the run again: netc train SPEC --out {} --force",
                out_dir.display()
            )),
        )
    };
    if state.history.len() != state.epoch {
        return Err(damaged(format!(
            "it claims {} finished epochs but records {}",
            state.epoch,
            state.history.len()
        )));
    }
    let expected = (state.epoch * steps + state.step_in_epoch) as u64;
    if state.step_in_epoch >= steps.max(1) || state.global_step != expected || state.updates > state.global_step {
        return Err(damaged(format!(
            "step {} of an epoch of {steps} steps and {} steps in all do not fit {} finished epochs",
            state.step_in_epoch, state.global_step, state.epoch
        )));
    }
    if let Some((_, best)) = state.best
        && (best == 0 || best > state.epoch)
    {
        return Err(damaged(format!(
            "its best epoch {best} is not one of the {} finished epochs",
            state.epoch
        )));
    }
    if state.seen > rows || state.correct > state.seen {
        return Err(damaged(format!(
            "{} rows seen and {} classified correctly in an epoch of {rows} rows",
            state.seen, state.correct
        )));
    }
    if state.epoch > epochs || (state.epoch == epochs && state.step_in_epoch > 0) {
        return Err(Box::new(
            Diagnostic::general(
                Code::BadRunDirectory,
                format!(
                    "cannot resume: `{}` already trained {} epochs, more than the {epochs} asked for",
                    out_dir.display(),
                    state.epoch
                ),
            )
            .in_file(out_dir)
            .with_hint(format!("resume with --epochs {} or more", state.epoch.max(1))),
        ));
    }
    Ok(())
}
