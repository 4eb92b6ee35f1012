//! Every failure of the command line is a diagnostic with a stable code, in every `--format`:
//! unreadable files, `netc bench` like every other command, and each command code (`E01xx`)
//! exercised end to end.

mod common;
use common::*;

use std::process::{Command, Output};

/// The JSON array `--format json` printed on stdout.
fn json_array(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {}", text(&out.stdout)))
        .as_array()
        .expect("an array")
        .clone()
}

/// Runs netc and expects exit code 1 with `code` on stderr; returns stderr.
fn fails_with(args: &[&str], code: &str) -> String {
    let out = netc(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains(&format!("error[{code}]")), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    stderr
}

#[test]
fn unreadable_files_are_file_level_entries_in_every_format() {
    let dir = temp_dir("unreadable");
    let not_utf8 = dir.join("latin1.net");
    std::fs::write(&not_utf8, b"model m { input 2 } # caf\xe9\n").expect("write");
    let missing = dir.join("missing.net");
    let cases = [
        (s(&missing), "E0101", "cannot read"),
        (s(&dir), "E0101", "cannot read"),
        (s(&not_utf8), "E0103", "is not UTF-8 text"),
    ];
    for (path, code, message) in cases {
        let out = netc(&["check", "--format", "json", path]);
        assert_eq!(out.status.code(), Some(1), "{path}");
        let items = json_array(&out);
        assert_eq!(items.len(), 1, "{path}: {items:?}");
        let item = &items[0];
        assert_eq!(item["file"], path);
        assert!(item["line"].is_null() && item["column"].is_null() && item["end"].is_null());
        assert_eq!(item["severity"], "error");
        assert_eq!(item["code"], code);
        assert!(item["message"].as_str().expect("message").contains(message), "{item}");
        assert!(item["hint"].is_string(), "{item}");

        let out = netc(&["check", "--format", "github", path]);
        assert_eq!(out.status.code(), Some(1), "{path}");
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with(&format!("::error file={path},title={code}::")),
            "{path}: {stdout}"
        );
        assert_eq!(stdout.lines().count(), 1, "{stdout}");

        let stderr = fails_with(&["check", path], code);
        assert!(stderr.contains("checked 1 file: 1 error, 0 warnings"), "{stderr}");
    }
    // A readable file next to a missing one: both are reported, in order.
    let out = netc(&[
        "check",
        "--format",
        "json",
        s(&missing),
        "tests/ui/unknown_activation.net",
    ]);
    let items = json_array(&out);
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["code"], "E0101");
    assert_eq!(items[1]["code"], "E0008");
    assert_eq!(items[1]["fixes"][0]["replacement"], "relu");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn bench_loads_the_spec_like_every_command() {
    let stderr = fails_with(&["bench", "tests/ui/unknown_activation.net"], "E0008");
    assert!(stderr.contains("tests/ui/unknown_activation.net:3:16"), "{stderr}");
    assert!(!stderr.contains("bench.net"), "{stderr}");
    assert!(stderr.contains("nothing was run"), "{stderr}");

    let quick = ["--backend", "interp", "--repeats", "0", "--samples", "64"];
    let mut args = vec!["bench", "examples/digits.net"];
    args.extend(quick);
    args.extend(["--set", "train.batch=16", "--set", "model.h1.width=8"]);
    let out = netc(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("batch 16"), "{stdout}");
    // A misspelt path is checked like the file.
    let mut args = vec!["bench", "examples/digits.net"];
    args.extend(quick);
    args.extend(["--set", "model.h1.widht=8"]);
    let stderr = fails_with(&args, "E0024");
    assert!(stderr.contains("did you mean `model.h1.width`?"), "{stderr}");
}

#[test]
fn flag_values_are_checked() {
    let stderr = fails_with(&["bench", "examples/digits.net", "--batch", "0"], "E0107");
    assert!(stderr.contains("--batch and --samples must be at least 1"), "{stderr}");
    let stderr = fails_with(&["train", "examples/digits.net", "--set", "nonsense"], "E0107");
    assert!(stderr.contains("`--set nonsense` has no `=`"), "{stderr}");
    let stderr = fails_with(&["sweep", "examples/digits.net", "--vary", "novalues"], "E0107");
    assert!(stderr.contains("`--vary novalues` has no `=`"), "{stderr}");
}

#[test]
fn data_problems_have_their_codes() {
    let dir = temp_dir("data-codes");
    let train = |file: &str, rows: &[u8]| {
        std::fs::write(dir.join(file), rows).expect("write");
        let spec = dir.join(format!("{file}.net"));
        std::fs::write(
            &spec,
            format!(
                "model m {{\n  input 2\n  dense 2 softmax\n  loss cross_entropy\n}}\ntrain {{\n  data \"{file}\"\n}}\n"
            ),
        )
        .expect("write");
        spec
    };
    let spec = train("cells.csv", b"1,2,0\n3,oops,1\n");
    fails_with(&["train", s(&spec), "--out", s(&dir.join("run"))], "E0104");
    let spec = train("latin1.csv", b"1,2,0\n3,\xe9,1\n");
    fails_with(&["train", s(&spec), "--out", s(&dir.join("run"))], "E0103");
    let spec = train("labels.csv", b"1,2,0\n3,4,7\n");
    let stderr = fails_with(&["train", s(&spec), "--out", s(&dir.join("run"))], "E0105");
    assert!(
        stderr.contains("has label 7, but the output layer has 2 units"),
        "{stderr}"
    );
    let missing = dir.join("missing.net");
    std::fs::write(
        &missing,
        "model m {\n  input 2\n  dense 2 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"nowhere.csv\"\n}\n",
    )
    .expect("write");
    let stderr = fails_with(&["train", s(&missing), "--out", s(&dir.join("run"))], "E0101");
    assert!(stderr.contains("nowhere.csv"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn outputs_that_cannot_be_written() {
    let dir = temp_dir("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let out = file.join("run");
    let stderr = fails_with(&["train", "examples/digits.net", "-q", "--out", s(&out)], "E0102");
    assert!(stderr.contains("cannot create the run directory"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn runs_weights_and_run_directories() {
    let dir = temp_dir("run-codes");
    let run = dir.join("run");
    let o = netc(&["train", "examples/digits.net", "-q", "--epochs", "1", "--out", s(&run)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let weights = run.join("weights.safetensors");

    // Weights that are not weights, or not this spec's.
    let rows = dir.join("rows.csv");
    std::fs::write(&rows, "1,2,3\n").expect("write");
    let stderr = fails_with(
        &["predict", "examples/digits.net", "--weights", s(&rows), s(&rows)],
        "E0106",
    );
    assert!(stderr.contains("not a valid safetensors file"), "{stderr}");
    let stderr = fails_with(&["eval", "examples/mnist_mlp.net", "--weights", s(&weights)], "E0106");
    assert!(stderr.contains("h1.weight"), "{stderr}");
    // Rows of the wrong width; with --format json the diagnostics go to stdout as JSON.
    let stderr = fails_with(
        &["predict", "examples/digits.net", "--weights", s(&weights), s(&rows)],
        "E0105",
    );
    assert!(stderr.contains("values per row, but the model takes 64"), "{stderr}");
    let out = netc(&[
        "predict",
        "examples/digits.net",
        "--weights",
        s(&weights),
        s(&rows),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let items = json_array(&out);
    assert_eq!(items[0]["code"], "E0105");
    assert_eq!(items[0]["file"], s(&rows));
    let out = netc(&[
        "predict",
        "tests/ui/unknown_activation.net",
        "--weights",
        s(&weights),
        s(&rows),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_array(&out)[0]["code"], "E0008");

    // Run directories diagnose cannot use.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let stderr = fails_with(&["diagnose", s(&empty)], "E0108");
    assert!(stderr.contains("metrics.csv"), "{stderr}");
    let out = netc(&["diagnose", s(&empty), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let items = json_array(&out);
    assert_eq!(items[0]["code"], "E0108");
    assert!(items[0]["file"].as_str().expect("file").ends_with("metrics.csv"));
    assert!(netc(&["diagnose", s(&run)]).status.success());
    // A run directory from before settings.json had a version is refused, saying to retrain.
    let settings_path = run.join("settings.json");
    let mut settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings_path).expect("settings")).expect("JSON");
    assert_eq!(settings["version"], 2);
    settings.as_object_mut().expect("object").remove("version");
    std::fs::write(&settings_path, settings.to_string()).expect("write");
    let stderr = fails_with(&["diagnose", s(&run)], "E0108");
    assert!(stderr.contains("older netc") && stderr.contains("retrain"), "{stderr}");
    // Resuming a run that has no checkpoint.
    let stderr = fails_with(&["train", "examples/digits.net", "-q", "--resume", s(&empty)], "E0108");
    assert!(stderr.contains("cannot resume"), "{stderr}");

    // No C compiler: the object file is fine, linking needs one.
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["build", "examples/digits.net", "--weights", s(&weights), "-o"])
        .arg(dir.join("build").join("digits"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NETC_MEMORY_LIMIT", "8G")
        .env("CC", dir.join("no-such-compiler"))
        .output()
        .expect("netc runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[E0110]: cannot run the C compiler"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn divergence_is_reported_with_its_code() {
    let dir = temp_dir("diverge");
    let spec = dir.join("diverge.net");
    let text_spec = std::fs::read_to_string("examples/digits.net")
        .expect("example")
        .replace("optimizer adam lr 2e-3", "optimizer sgd lr 1e30");
    std::fs::write(&spec, text_spec).expect("write");
    let stderr = fails_with(&["train", s(&spec), "-q", "--out", s(&dir.join("run"))], "E0109");
    assert!(stderr.contains("training diverged at epoch 1"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Each command code has a CLI test in one of the `tests/cli*.rs` files (netc's own bugs
/// excepted: no input can cause one; `diag`'s unit tests pin how they render).
#[test]
fn every_command_code_is_exercised() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut tests = String::new();
    for entry in std::fs::read_dir(&root).expect("tests/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("cli") && name.ends_with(".rs") {
            tests += &std::fs::read_to_string(&path).expect("a test file");
        }
    }
    for code in netc::diag::Code::COMMAND {
        if *code == netc::diag::Code::Internal {
            continue;
        }
        let exercised = [
            format!("\"{}\")", code.as_str()),
            format!("error[{}]", code.as_str()),
            format!("warning[{}]", code.as_str()),
        ]
        .iter()
        .any(|needle| tests.contains(needle.as_str()));
        assert!(exercised, "no CLI test exercises {}", code.as_str());
    }
}
