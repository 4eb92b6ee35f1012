//! The hostile corpus (`tests/hostile/`, written by `make_corpus.py`): specs, data files and
//! weights as a hostile new user, a broken disk or a Windows editor would hand them to netc.
//! Every file goes through the commands that read its kind, and every run must end with exit
//! code 0 or 1 (never a panic, an abort or a signal), within a bounded time and output size,
//! with a diagnostic when it fails, and with no raw control characters in what it prints.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bounds: a hang or an output that grows with the input's square breaks them, a slow
/// debug build does not.
const TIME_LIMIT: Duration = Duration::from_secs(60);
const OUTPUT_LIMIT: usize = 256 * 1024;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

fn files(kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(corpus().join(kind))
        .expect("the corpus folder")
        .map(|e| e.expect("an entry").path())
        .collect();
    out.sort();
    assert!(out.len() >= 10, "the {kind} corpus is there");
    out
}

/// Runs netc with a time limit and checks the outcome; returns a line describing a failure.
fn run(args: &[&str]) -> Option<String> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .env("NETC_PROGRESS", "plain")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netc starts");
    let (mut out, mut err) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let read_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut b).ok();
        b
    });
    let read_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut b).ok();
        b
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Some(format!("{args:?}: still running after {TIME_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (stdout, stderr) = (read_out.join().expect("stdout"), read_err.join().expect("stderr"));
    let stderr_text = text(&stderr);
    let short = |t: &str| t.chars().take(600).collect::<String>();
    if !matches!(status.code(), Some(0 | 1)) {
        return Some(format!("{args:?}: exit {status:?}: {}", short(&stderr_text)));
    }
    if stderr_text.contains("panicked") {
        return Some(format!("{args:?}: a panic: {}", short(&stderr_text)));
    }
    // A failure says why: a diagnostic on stderr, the JSON or GitHub form of one on stdout, or
    // (`fmt --check`) the files that would change.
    let said = stderr_text.contains("error[")
        || text(&stdout).contains("\"code\"")
        || text(&stdout).contains("would reformat");
    if status.code() == Some(1) && !said {
        return Some(format!(
            "{args:?}: exit 1 without a diagnostic: {}",
            short(&stderr_text)
        ));
    }
    if stdout.len() + stderr.len() > OUTPUT_LIMIT {
        return Some(format!("{args:?}: {} bytes of output", stdout.len() + stderr.len()));
    }
    let raw = |b: &[u8]| {
        b.iter()
            .any(|&c| c < 0x20 && !matches!(c, b'\n' | b'\t' | b'\r') || c == 0x7f)
    };
    if raw(&stderr) {
        return Some(format!(
            "{args:?}: raw control characters on stderr: {}",
            short(&stderr_text)
        ));
    }
    None
}

fn check_all(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn hostile_specs_are_refused_cleanly_by_every_command_that_reads_a_spec() {
    let dir = temp_dir("hostile-specs");
    let mut failures = Vec::new();
    for (i, spec) in files("specs").iter().enumerate() {
        let spec = s(spec);
        let out = dir.join(format!("run-{i}"));
        for args in [
            vec!["check", spec],
            vec!["check", "--format", "json", spec],
            vec!["check", "--summary", spec],
            vec!["fmt", "--check", spec],
            vec!["bench", spec, "--samples", "64", "--repeats", "0", "--batch", "8"],
            vec!["train", spec, "-q", "--epochs", "1", "--out", s(&out)],
        ] {
            failures.extend(run(&args));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    check_all(failures);
}

#[test]
fn hostile_data_files_are_refused_cleanly_by_train_and_predict() {
    let dir = temp_dir("hostile-data");
    let root = corpus();
    let good = root.join("weights/good.safetensors");
    let labels = root.join("data/labels.idx");
    let mut failures = Vec::new();
    for (i, data) in files("data").iter().enumerate() {
        let name = data.file_name().and_then(|n| n.to_str()).expect("a name");
        let source = if name.contains(".idx") || name.contains(".npy") {
            format!("\"{}\" labels \"{}\"", data.display(), labels.display())
        } else {
            format!("\"{}\"", data.display())
        };
        let spec_text = std::fs::read_to_string(root.join("good.net"))
            .expect("good.net")
            .replace("\"../data/good.csv\"", &source);
        let spec = dir.join(format!("spec-{i}.net"));
        std::fs::write(&spec, spec_text).expect("write spec");
        let out = dir.join(format!("run-{i}"));
        failures.extend(run(&["train", s(&spec), "-q", "--out", s(&out)]));
        failures.extend(run(&["predict", s(&spec), "--weights", s(&good), s(data)]));
        failures.extend(run(&["eval", s(&spec), "--weights", s(&good)]));
    }
    std::fs::remove_dir_all(&dir).ok();
    check_all(failures);
}

#[test]
fn hostile_weights_are_refused_cleanly_by_eval_predict_and_build() {
    let dir = temp_dir("hostile-weights");
    let root = corpus();
    let spec = root.join("good.net");
    let rows: String = (0..8).map(|i| format!("0.{i},0.5,0.25,1\n")).collect();
    let features = dir.join("features.csv");
    std::fs::write(&features, rows).expect("write features");
    let mut failures = Vec::new();
    for (i, weights) in files("weights").iter().enumerate() {
        let w = s(weights);
        failures.extend(run(&["eval", s(&spec), "--weights", w]));
        failures.extend(run(&["predict", s(&spec), "--weights", w, s(&features)]));
        let exe = dir.join(format!("model{i}"));
        failures.extend(run(&[
            "build",
            s(&spec),
            "--weights",
            w,
            "-o",
            s(&exe),
            "--emit",
            "obj,header",
        ]));
    }
    std::fs::remove_dir_all(&dir).ok();
    check_all(failures);
}
