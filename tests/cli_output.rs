//! Standard output and standard error that fail: a closed pipe ends netc quietly with status 141
//! (never 0: the output is incomplete), any other write failure on standard output is E0102
//! with exit 1, and a failing standard error never turns into a panic (`src/console.rs`).

mod common;
use common::*;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn netc_with(args: &[&str], stdout: Stdio, stderr: Stdio) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NETC_MEMORY_LIMIT", "8G")
        .stdout(stdout)
        .stderr(stderr)
        .output()
        .expect("netc runs")
}

fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full exists on Linux")
}

#[test]
fn a_full_standard_output_is_an_error_not_a_truncated_success() {
    for args in [
        &["check", "--format", "json", "examples/digits.net"][..],
        &["check", "--summary", "examples/digits.net"],
        &["fmt", "-"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::piped())
            .stdout(dev_full())
            .stderr(Stdio::piped())
            .spawn()
            .expect("netc runs");
        // `check` does not read its standard input and may be gone before this write: a
        // closed pipe here is no failure of the test.
        let _ = child.stdin.take().expect("stdin").write_all(
            b"model m {\n  input 4\n  dense 2 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"x.csv\"\n}\n",
        );
        let out = child.wait_with_output().expect("netc ends");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error[E0102]: cannot write to standard output"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_closed_pipe_ends_quietly_with_status_141() {
    // More output than a pipe buffers, so the write after the reader leaves fails.
    let spec: String = (0..20_000).map(|i| format!("# comment line {i}\n")).collect::<String>()
        + "model m {\n  input 4\n  dense 2 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"x.csv\"\n}\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netc runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(spec.as_bytes()));
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("some output");
    // The read end is dropped here, as `head` does.
    writer.join().expect("writer").expect("stdin written");
    let out = child.wait_with_output().expect("netc ends");
    assert_eq!(out.status.code(), Some(141), "stderr: {}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "quiet: {}", text(&out.stderr));
}

#[test]
fn a_failing_standard_error_is_no_panic() {
    let out = netc_with(
        &["check", "tests/ui/unknown_activation.net"],
        Stdio::null(),
        Stdio::from(dev_full()),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the spec has errors: exit 1, not a panic's 101"
    );
    let dir = temp_dir("stderr-full");
    let run = dir.join("run");
    let out = netc_with(
        &["train", "examples/digits.net", "--epochs", "1", "--out", s(&run)],
        Stdio::null(),
        Stdio::from(dev_full()),
    );
    assert_eq!(out.status.code(), Some(0), "training itself succeeds");
    assert!(run.join("weights.safetensors").exists());
}

/// `netc predict ... >&-`: Rust's runtime puts `/dev/null` on a closed standard output, so the
/// result used to vanish with exit 0. A shell's `> /dev/null` (write-only) still discards.
#[test]
fn a_closed_standard_output_is_an_error() {
    let netc = env!("CARGO_BIN_EXE_netc");
    let sh = |redirect: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("exec \"$0\" fmt - {redirect}"))
            .arg(netc)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh starts")
    };
    for (redirect, code) in [(">&-", 1), ("> /dev/null", 0)] {
        let mut child = sh(redirect);
        let spec = b"model m {\n  input 2\n  dense 2 softmax\n  loss cross_entropy\n}\n";
        let _ = child.stdin.take().expect("stdin").write_all(spec);
        let out = child.wait_with_output().expect("wait");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{redirect}: {stderr}");
        if code == 1 {
            assert!(stderr.contains("error[E0102]") && stderr.contains("closed"), "{stderr}");
        }
    }
}
