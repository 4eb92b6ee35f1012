//! The acceptance figures on real MNIST (`../shared/data/mnist`, or `$NETC_DATA_DIR/mnist`).
//!
//! Skipped with a notice when the files are absent, unless `NETC_REQUIRE_MNIST` is set (CI sets
//! it, so there a missing data set fails instead of passing silently).

use std::path::PathBuf;
use std::process::Command;

fn data_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("NETC_DATA_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|d| d.join("mnist/train-images-idx3-ubyte.gz").is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("NETC_REQUIRE_MNIST").is_none(),
            "NETC_REQUIRE_MNIST is set but the MNIST files are missing"
        );
        eprintln!("skipped: MNIST files not found (set NETC_DATA_DIR)");
    }
    found
}

fn train(spec: &str, data: &PathBuf) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("netc-mnist-{}-{}", spec.replace('/', "_"), std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["train", spec, "-q", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(dir.join("run"))
        .arg("--report")
        .arg(&report)
        .output()
        .expect("netc runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    let _ = std::fs::remove_dir_all(&dir);
    value
}

/// The lecture's claim: ten sigmoid layers (xavier, sgd 0.1) stay near chance on the training
/// data after 3 epochs; the same stack with relu (he) exceeds 95%.
#[test]
fn deep_sigmoid_stays_near_chance_while_deep_relu_learns() {
    let Some(data) = data_dir() else { return };
    let sigmoid = train("examples/deep_sigmoid.net", &data);
    let relu = train("examples/deep_relu.net", &data);
    let s = sigmoid["train"]["accuracy"].as_f64().expect("accuracy");
    let r = relu["train"]["accuracy"].as_f64().expect("accuracy");
    assert!(s < 0.2, "10-layer sigmoid training accuracy {s}");
    assert!(r > 0.95, "10-layer relu training accuracy {r}");
}

#[test]
fn mnist_mlp_reaches_98_percent() {
    let Some(data) = data_dir() else { return };
    let report = train("examples/mnist_mlp.net", &data);
    let accuracy = report["test"]["accuracy"].as_f64().expect("accuracy");
    assert!(accuracy >= 0.98, "mnist_mlp test accuracy {accuracy}");
}
