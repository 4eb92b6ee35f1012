//! Hostile spec text end to end: huge, binary and endless inputs are refused by every command
//! that reads a spec; thousands of errors on one long line give bounded output in every
//! `--format`; a byte-order mark is accepted; control characters never reach the terminal raw;
//! settings given twice say so.

mod common;
use common::*;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SPEC: &str = "model m {\n  input 64\n  dense 10 softmax\n  loss cross_entropy\n}\ntrain {\n  data digits\n}\n";

/// Every command that reads a spec, with the arguments it needs besides the spec.
fn spec_commands(dir: &std::path::Path) -> Vec<Vec<String>> {
    let out = dir.join("out").display().to_string();
    let weights = dir.join("w.safetensors").display().to_string();
    [
        vec!["check"],
        vec!["fmt", "--check"],
        vec!["train", "--out", &out],
        vec!["eval", "--weights", &weights],
        vec!["build", "--weights", &weights, "--output", "m"],
        vec!["bench"],
        vec!["sweep", "--vary", "train.batch=8,16", "--out", &out],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_string).collect())
    .collect()
}

fn run_on(command: &[String], spec: &str) -> std::process::Output {
    let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
    args.insert(1, spec);
    netc(&args)
}

#[test]
fn huge_binary_and_endless_specs_are_refused_by_every_command() {
    let dir = temp_dir("huge");
    // A sparse 2 GiB file: no disk space used, and netc must not read it.
    let huge = dir.join("huge.net");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(2 << 30))
        .expect("sparse file");
    let binary = dir.join("binary.net");
    std::fs::write(&binary, b"model m {\0\0\0}\n").expect("write");
    for command in spec_commands(&dir) {
        let started = Instant::now();
        let out = run_on(&command, s(&huge));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            stderr.contains("error[E0101]") && stderr.contains("too large for a spec"),
            "{command:?}: {stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{command:?} read the file");

        let out = run_on(&command, s(&binary));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            stderr.contains("error[E0103]") && stderr.contains("is a binary file") && stderr.contains("offset 9"),
            "{command:?}: {stderr}"
        );
    }
    // An endless device: read up to the limit, then refused.
    let out = netc(&["check", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("too large for a spec"),
        "{}",
        text(&out.stderr)
    );

    // Standard input past the limit.
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netc runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'#'; 1 << 20];
        for _ in 0..8 {
            // netc stops reading at the limit: a broken pipe is the expected end.
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().expect("netc ends");
    writer.join().expect("writer");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("standard input is too large for a spec"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ten_thousand_stray_braces_give_bounded_output_in_every_format() {
    let dir = temp_dir("braces");
    let spec = dir.join("braces.net");
    std::fs::write(&spec, format!("{SPEC}{}\n", "}".repeat(10_000))).expect("write");
    for format in ["human", "json", "github"] {
        let started = Instant::now();
        let out = netc(&["check", "--format", format, s(&spec)]);
        let elapsed = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "{format}");
        let size = out.stdout.len() + out.stderr.len();
        assert!(size < 200_000, "{format}: {size} bytes of output");
        assert!(elapsed < Duration::from_secs(10), "{format}: {elapsed:?}");
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(
            all.contains("9950 more unbalanced braces are not reported"),
            "{format}: {all}"
        );
    }
    let out = netc(&["check", "--format", "json", s(&spec)]);
    let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(items.len(), 50);
}

#[test]
fn long_lines_are_windowed_and_messages_shortened() {
    let dir = temp_dir("long");
    let spec = dir.join("wide.net");
    let digits = "9".repeat(100_000);
    std::fs::write(&spec, SPEC.replace("dense 10", &format!("dense {digits}"))).expect("write");
    let out = netc(&["check", s(&spec)]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.len() < 5_000, "{} bytes", stderr.len());
    assert!(stderr.contains("is too large (at most 1099511627776)"), "{stderr}");
    assert!(stderr.contains("wide.net:3:9"), "{stderr}");
    assert!(!stderr.contains("e.g. `inf`"), "{stderr}");
}

#[test]
fn a_byte_order_mark_is_accepted_and_dropped_by_fmt() {
    let dir = temp_dir("bom");
    let spec = dir.join("bom.net");
    std::fs::write(&spec, format!("\u{feff}{SPEC}")).expect("write");
    let out = netc(&["check", s(&spec)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("netc runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("\u{feff}{SPEC}").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("netc ends");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), SPEC);
    // An error on the first line has the column of the first character after the mark.
    std::fs::write(&spec, "\u{feff}modle m {\n}\n").expect("write");
    let stderr = text(&netc(&["check", s(&spec)]).stderr);
    assert!(stderr.contains("bom.net:1:1"), "{stderr}");
    assert!(!stderr.contains('\u{feff}'), "{stderr}");
}

#[test]
fn control_characters_never_reach_the_output_raw() {
    let dir = temp_dir("control");
    // The file's name holds an escape sequence too.
    let spec = dir.join("esc\u{1b}[2J.net");
    std::fs::write(&spec, SPEC.replace("  dense", "  \u{1b}]0;owned\u{7}\u{1b}[2Jdense")).expect("write");
    for format in ["human", "json", "github"] {
        let out = netc(&["check", "--format", format, s(&spec)]);
        assert_eq!(out.status.code(), Some(1), "{format}");
        for stream in [&out.stdout, &out.stderr] {
            assert!(
                !stream.contains(&0x1b) && !stream.contains(&0x07),
                "{format}: {}",
                text(stream)
            );
        }
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(all.contains("\\u{1b}"), "{format}: {all}");
    }
}

#[test]
fn settings_given_twice_say_so() {
    let dir = temp_dir("twice");
    let spec = dir.join("spec.net");
    std::fs::write(&spec, SPEC).expect("write");
    let out_dir = dir.join("out");
    let out = netc(&[
        "train",
        s(&spec),
        "--out",
        s(&out_dir),
        "--set",
        "train.batch=8",
        "--set",
        "train.batch=16",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[E0011]: `train.batch` is set twice"), "{stderr}");
    assert!(!stderr.contains("names nothing"), "{stderr}");

    let out = netc(&[
        "sweep",
        s(&spec),
        "--out",
        s(&out_dir),
        "--vary",
        "train.batch=8,16",
        "--vary",
        "train.batch=32",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error[E0107]: `--vary train.batch` is given twice"),
        "{stderr}"
    );
    assert!(!stderr.contains("did you mean"), "{stderr}");
}
