//! Nothing lost, nothing silent: run directories are never shared or replaced silently, outputs
//! are checked before the work and never overwrite an input, in-place rewrites keep what a path
//! is, checkpoints are validated, and every way of stopping a run (SIGINT, SIGTERM, SIGHUP, a
//! diverging sweep run) keeps what finished.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A spec that trains on the built-in digits in a fraction of a second per epoch.
const TINY: &str = "model tiny {
  input 64
  dense h: 16 relu
  dense out: 10 softmax
  loss cross_entropy
}
train {
  data digits
  optimizer sgd lr 0.1
  batch 64 epochs 2 seed 1
}
";

fn tiny_spec(dir: &Path) -> PathBuf {
    let spec = dir.join("tiny.net");
    std::fs::write(&spec, TINY).expect("write spec");
    spec
}

/// Expects exit 1 with `error[CODE]` and `message` on stderr; returns stderr.
fn refused(o: &Output, code: &str, message: &str) -> String {
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("error[{code}]")), "{stderr}");
    assert!(stderr.contains(message), "expected `{message}`:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

fn spawn(args: &[&str], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(cwd)
        .env("NETC_MEMORY_LIMIT", "8G")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn an_existing_run_directory_is_refused_unless_force() {
    let dir = temp_dir("existing");
    let spec = tiny_spec(&dir);
    let out = dir.join("run");
    ok(&netc(&["train", s(&spec), "-q", "--out", s(&out)]));
    let weights = std::fs::read(out.join("weights.safetensors")).expect("weights");
    // Another spec, same --out: refused, nothing replaced.
    let other = dir.join("other.net");
    std::fs::write(&other, TINY.replace("seed 1", "seed 2")).expect("write");
    refused(
        &netc(&["train", s(&other), "-q", "--out", s(&out)]),
        "E0108",
        "already holds a run; nothing was replaced",
    );
    assert!(std::fs::read(out.join("weights.safetensors")).expect("weights") == weights);
    // Refused before the data is read.
    let no_data = dir.join("no-data.net");
    std::fs::write(&no_data, TINY.replace("data digits", "data \"missing.csv\"")).expect("write");
    refused(
        &netc(&["train", s(&no_data), "-q", "--out", s(&out)]),
        "E0108",
        "already holds a run",
    );
    // A directory holding anything else is refused too.
    let busy = dir.join("busy");
    std::fs::create_dir(&busy).expect("mkdir");
    std::fs::write(busy.join("notes.txt"), "mine").expect("write");
    refused(
        &netc(&["train", s(&spec), "-q", "--out", s(&busy)]),
        "E0108",
        "is not empty",
    );
    // An empty directory is fine; --force replaces a run (netc's files only).
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    ok(&netc(&["train", s(&spec), "-q", "--out", s(&empty)]));
    std::fs::write(out.join("notes.txt"), "mine").expect("write");
    ok(&netc(&["train", s(&other), "-q", "--out", s(&out), "--force"]));
    assert!(std::fs::read(out.join("weights.safetensors")).expect("weights") != weights);
    assert!(out.join("notes.txt").is_file());
    // A sweep's directory likewise.
    let sweep = dir.join("sweep");
    let vary = ["--vary", "train.seed=1,2"];
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = ["sweep", s(&spec), "--out", s(&sweep)].map(String::from).to_vec();
        a.extend(vary.iter().chain(extra).map(|x| x.to_string()));
        a
    };
    let run = |a: Vec<String>| netc(&a.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&run(args(&[])));
    refused(&run(args(&[])), "E0108", "already holds netc's results");
    ok(&run(args(&["--force"])));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn two_trainings_never_share_a_run_directory() {
    let dir = temp_dir("concurrent");
    let spec = tiny_spec(&dir);
    // One --out: exactly one of two concurrent trainings gets it.
    let out = dir.join("run");
    let children: Vec<Child> = (0..2)
        .map(|_| spawn(&["train", s(&spec), "-q", "--out", s(&out)], &dir))
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    let won = outputs.iter().filter(|o| o.status.code() == Some(0)).count();
    assert_eq!(
        won,
        1,
        "{:?}",
        outputs.iter().map(|o| text(&o.stderr)).collect::<Vec<_>>()
    );
    // No --out: trainings started in the same second get a directory each.
    let children: Vec<Child> = (0..4).map(|_| spawn(&["train", s(&spec), "-q"], &dir)).collect();
    for child in children {
        ok(&child.wait_with_output().expect("wait"));
    }
    let runs = std::fs::read_dir(dir.join("runs")).expect("runs/").count();
    assert_eq!(runs, 4, "each training has its own default run directory");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[cfg(unix)]
#[test]
fn fmt_writes_through_symlinks_and_keeps_mode_and_hard_links() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = temp_dir("fmt-links");
    let real = dir.join("real.net");
    let messy = TINY.replace("  dense", "dense");
    std::fs::write(&real, &messy).expect("write");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let link = dir.join("link.net");
    std::os::unix::fs::symlink("real.net", &link).expect("symlink");
    let hard = dir.join("hard.net");
    std::fs::hard_link(&real, &hard).expect("hard link");
    ok(&netc(&["fmt", s(&link)]));
    assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink());
    let formatted = std::fs::read_to_string(&real).expect("target");
    assert_eq!(formatted, TINY, "the symlink's target is formatted");
    assert_eq!(std::fs::read_to_string(&hard).expect("hard link"), TINY);
    let meta = std::fs::metadata(&real).expect("meta");
    assert_eq!((meta.mode() & 0o777, meta.nlink()), (0o600, 2));
    assert!(temp_files(&dir).is_empty());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn no_output_may_overwrite_an_input() {
    let dir = temp_dir("inputs");
    let spec = tiny_spec(&dir);
    let out = dir.join("run");
    ok(&netc(&["train", s(&spec), "-q", "--out", s(&out)]));
    let model = dir.join("model");
    std::fs::copy(out.join("weights.safetensors"), &model).expect("copy");
    let weights = std::fs::read(&model).expect("weights");
    let o = netc(&["build", s(&spec), "--weights", s(&model), "-o", s(&model)]);
    let stderr = refused(&o, "E0111", "is the weights");
    assert!(stderr.contains("error[E0111]: -o `"), "{stderr}");
    assert!(
        std::fs::read(&model).expect("weights") == weights,
        "the weights are intact"
    );
    // The header beside it too (through another path to the same file).
    let header = dir.join("model.h");
    std::fs::copy(&spec, &header).expect("copy");
    let o = netc(&[
        "build",
        s(&header),
        "--weights",
        s(&model),
        "-o",
        &format!("{}/./model", s(&dir)),
        "--emit",
        "obj,header",
    ]);
    refused(&o, "E0111", "is the spec");
    // --report naming the spec, the weights, a data file.
    let csv = dir.join("rows.csv");
    std::fs::write(&csv, "1,2,0\n3,4,1\n5,6,0\n7,8,1\n").expect("rows");
    let csv_spec = dir.join("csv.net");
    std::fs::write(
        &csv_spec,
        "model m {\n  input 2\n  dense 2 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"rows.csv\"\n  epochs 1\n}\n",
    )
    .expect("spec");
    let o = netc(&[
        "train",
        s(&csv_spec),
        "-q",
        "--out",
        s(&dir.join("r2")),
        "--report",
        s(&csv),
    ]);
    refused(&o, "E0111", "is a data file");
    assert!(!dir.join("r2").exists(), "nothing was trained");
    let o = netc(&[
        "train",
        s(&spec),
        "-q",
        "--out",
        s(&dir.join("r3")),
        "--report",
        s(&spec),
    ]);
    refused(&o, "E0111", "is the spec");
    let o = netc(&["eval", s(&spec), "--weights", s(&model), "--report", s(&model)]);
    refused(&o, "E0111", "is the weights");
    let o = netc(&[
        "bench",
        s(&spec),
        "--repeats",
        "0",
        "--samples",
        "64",
        "--report",
        s(&spec),
    ]);
    refused(&o, "E0111", "is the spec");
    // The spec inside the run directory it would be rewritten into.
    let o = netc(&["train", s(&out.join("spec.net")), "-q", "--out", s(&out), "--force"]);
    refused(&o, "E0111", "is the spec");
    assert_eq!(std::fs::read_to_string(&spec).expect("spec"), TINY);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn bad_output_paths_are_refused_before_any_work() {
    let dir = temp_dir("late-outputs");
    let spec = tiny_spec(&dir);
    // Under a file: no directory can be made there.
    let nowhere = spec.join("report.json");
    let out = dir.join("run");
    let o = netc(&["train", s(&spec), "-q", "--out", s(&out), "--report", s(&nowhere)]);
    refused(&o, "E0102", "cannot write --report");
    assert!(!out.exists(), "nothing was trained");
    let o = netc(&["train", s(&spec), "-q", "--out", s(&out), "--report", s(&dir)]);
    refused(&o, "E0102", "it is a directory");
    let sweep = dir.join("sweep");
    let o = netc(&[
        "sweep",
        s(&spec),
        "--vary",
        "train.seed=1,2",
        "--out",
        s(&sweep),
        "--report",
        s(&nowhere),
    ]);
    refused(&o, "E0102", "cannot write --report");
    assert!(!sweep.exists(), "nothing was trained");
    // A report in a directory that does not exist yet is fine (its directories are made).
    let later = dir.join("later");
    ok(&netc(&[
        "train",
        s(&spec),
        "-q",
        "--out",
        s(&later.join("run")),
        "--report",
        s(&later.join("r.json")),
    ]));
    assert!(later.join("r.json").is_file());
    ok(&netc(&["train", s(&spec), "-q", "--out", s(&out)]));
    let weights = out.join("weights.safetensors");
    let o = netc(&["eval", s(&spec), "--weights", s(&weights), "--report", s(&nowhere)]);
    refused(&o, "E0102", "cannot write --report");
    // -o naming a directory is found before compiling.
    let o = netc(&["build", s(&spec), "--weights", s(&weights), "-o", s(&out)]);
    refused(&o, "E0102", "it is a directory");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Rewrites the training state in a checkpoint's metadata with `edit`.
fn edit_checkpoint(path: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).expect("checkpoint");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8")) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    let meta = &mut header["__metadata__"]["netc.checkpoint"];
    let mut state: serde_json::Value = serde_json::from_str(meta.as_str().expect("state")).expect("JSON");
    edit(&mut state);
    *meta = serde_json::Value::String(state.to_string());
    let mut json = header.to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(&bytes[8 + n..]);
    std::fs::write(path, out).expect("write");
}

#[test]
fn checkpoint_counters_are_validated() {
    let dir = temp_dir("counters");
    let spec = tiny_spec(&dir);
    let out = dir.join("run");
    ok(&netc(&["train", s(&spec), "-q", "--out", s(&out)]));
    let checkpoint = out.join("checkpoint.safetensors");
    let good = std::fs::read(&checkpoint).expect("checkpoint");
    edit_checkpoint(&checkpoint, |state| state["epoch"] = 100_000.into());
    let o = netc(&["train", s(&spec), "-q", "--resume", s(&out)]);
    refused(&o, "E0108", "claims 100000 finished epochs but records 2");
    std::fs::write(&checkpoint, &good).expect("restore");
    edit_checkpoint(&checkpoint, |state| state["global_step"] = 7.into());
    let o = netc(&["train", s(&spec), "-q", "--resume", s(&out)]);
    refused(&o, "E0108", "is inconsistent");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn resume_compares_programs_and_extends_with_more_epochs() {
    let dir = temp_dir("resume");
    let spec = tiny_spec(&dir);
    let out = dir.join("run");
    ok(&netc(&["train", s(&spec), "-q", "--out", s(&out)]));
    // A comment and another layout are the same program; a larger --epochs extends the run.
    std::fs::write(
        &spec,
        format!("# tried on {}\n{}", "Tuesday", TINY.replace("  ", "    ")),
    )
    .expect("edit");
    ok(&netc(&["train", s(&spec), "-q", "--resume", s(&out), "--epochs", "3"]));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report")).expect("JSON");
    assert_eq!(report["epochs_run"], 3);
    ok(&netc(&["diagnose", s(&out)]));
    // The epochs changed in the spec's text, resumed from the run directory's own spec.
    std::fs::write(&spec, TINY.replace("epochs 2", "epochs 4")).expect("edit");
    ok(&netc(&["train", s(&spec), "-q", "--resume", s(&out)]));
    ok(&netc(&["diagnose", s(&out)]));
    let own = out.join("spec.net");
    ok(&netc(&["train", s(&own), "-q", "--resume", s(&out), "--epochs", "5"]));
    ok(&netc(&["diagnose", s(&out)]));
    assert_eq!(
        std::fs::read_to_string(&own).expect("spec.net"),
        TINY.replace("epochs 2", "epochs 4")
    );
    // Fewer epochs than were trained: said so.
    let o = netc(&["train", s(&spec), "-q", "--resume", s(&out), "--epochs", "1"]);
    refused(&o, "E0108", "already trained 5 epochs, more than the 1 asked for");
    // Another program is refused, naming that.
    let o = netc(&["train", s(&spec), "-q", "--resume", s(&out), "--set", "train.seed=5"]);
    refused(&o, "E0108", "different spec");
    // A missing directory is not created; a file is not a run directory.
    let missing = dir.join("missing");
    let o = netc(&["train", s(&spec), "-q", "--resume", s(&missing)]);
    refused(&o, "E0108", "does not exist");
    assert!(!missing.exists());
    let o = netc(&["train", s(&spec), "-q", "--resume", s(&out.join("weights.safetensors"))]);
    let stderr = refused(&o, "E0108", "is a file, not a run directory");
    assert!(!stderr.contains("--out"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_run_stopped_before_its_first_checkpoint_says_start_again() {
    let dir = temp_dir("first-checkpoint");
    let spec = tiny_spec(&dir);
    // What a run killed during its first epoch leaves: spec, settings and a temporary file.
    let out = dir.join("run");
    ok(&netc(&["train", s(&spec), "-q", "--out", s(&out), "--epochs", "1"]));
    for f in [
        "checkpoint.safetensors",
        "weights.safetensors",
        "report.json",
        "metrics.csv",
    ] {
        std::fs::remove_file(out.join(f)).expect("remove");
    }
    let stale = out.join(".checkpoint.safetensors.tmp-4194305");
    std::fs::write(&stale, "half a checkpoint").expect("stale");
    let o = netc(&["train", s(&spec), "-q", "--resume", s(&out)]);
    let stderr = refused(&o, "E0108", "was stopped before its first checkpoint");
    assert!(
        stderr.contains("start it again") && stderr.contains("--force"),
        "{stderr}"
    );
    ok(&netc(&["train", s(&spec), "-q", "--out", s(&out), "--force"]));
    if Path::new("/proc/self").exists() {
        assert!(!stale.exists(), "a dead process's temporary file is removed");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Starts a long training, waits for its first epoch, sends `signal`: the step finishes, a
/// checkpoint is saved, no temporary file is left, exit 130.
fn signal_checkpoints(signal: &str) {
    let dir = temp_dir(&format!("sig{signal}"));
    let spec = tiny_spec(&dir);
    let out = dir.join("run");
    let mut child = spawn(&["train", s(&spec), "--out", s(&out), "--epochs", "100000"], &dir);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        let line = lines.next().expect("netc prints epoch lines").expect("utf-8");
        if line.starts_with("epoch   1/100000") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let output = child.wait_with_output().expect("netc exits");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{signal}: {stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("--resume"),
        "{stderr}"
    );
    assert!(out.join("checkpoint.safetensors").is_file());
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn sigterm_checkpoints_like_ctrl_c() {
    signal_checkpoints("TERM");
}

#[test]
fn sighup_checkpoints_like_ctrl_c() {
    signal_checkpoints("HUP");
}

#[test]
fn a_diverging_sweep_run_is_a_row_and_the_sweep_goes_on() {
    let dir = temp_dir("sweep-diverge");
    let spec = tiny_spec(&dir);
    let out = dir.join("sweep");
    let o = netc(&[
        "sweep",
        s(&spec),
        "--vary",
        "train.optimizer.lr=1e30,0.1",
        "--out",
        s(&out),
    ]);
    ok(&o);
    assert!(text(&o.stderr).contains("diverged"), "{}", text(&o.stderr));
    let csv = std::fs::read_to_string(out.join("sweep.csv")).expect("sweep.csv");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[0].ends_with(",diverged") && rows[1].ends_with(",completed"),
        "{csv}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn an_interrupted_sweep_writes_the_table_of_what_finished() {
    let dir = temp_dir("sweep-interrupt");
    let spec = tiny_spec(&dir);
    let out = dir.join("sweep");
    let args = ["sweep", s(&spec), "--vary", "train.epochs=1,100000", "--out", s(&out)];
    let mut child = spawn(&args, &dir);
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    loop {
        let line = lines.next().expect("netc names each run").expect("utf-8");
        if line.starts_with("[2/2]") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("netc exits");
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("sweep interrupted after 2")), "{rest:?}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).expect("the table is written");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[0].ends_with(",completed") && rows[1].ends_with(",interrupted"),
        "{csv}"
    );
    assert!(out.join("sweep.md").is_file());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
