//! Helpers shared by the integration tests (each test crate uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `netc` binary from the repository root, with a fixed memory limit (so diagnostics
/// do not depend on the machine) and no data directory from the environment.
pub fn netc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NETC_MEMORY_LIMIT", "8G")
        .env_remove("NETC_DATA_DIR")
        .output()
        .expect("netc runs")
}

/// A fresh, empty temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netc-{}-{name}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A path as `&str` for command arguments.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `netc build SPEC --weights WEIGHTS -o EXE` with `flags` (e.g. `--emit exe`), which must
/// succeed; `what` names the case in the failure.
pub fn build_executable(spec: &Path, weights: &Path, exe: &Path, flags: &[&str], what: &str) {
    let mut args = vec!["build", s(spec), "--weights", s(weights), "-o", s(exe)];
    args.extend_from_slice(flags);
    let o = netc(&args);
    assert!(o.status.success(), "{what}: {}", text(&o.stderr));
}
