//! End-to-end tests of the `netc` binary: exit codes, output formats, fmt.

mod common;
use common::*;

use std::path::Path;

#[test]
fn check_exit_codes() {
    assert_eq!(netc(&["check", "examples/digits.net"]).status.code(), Some(0));
    assert_eq!(
        netc(&["check", "tests/ui/unknown_activation.net"]).status.code(),
        Some(1)
    );
    // Warnings pass unless denied.
    assert_eq!(netc(&["check", "examples/deep_sigmoid.net"]).status.code(), Some(0));
    assert_eq!(
        netc(&["check", "--deny-warnings", "examples/deep_sigmoid.net"])
            .status
            .code(),
        Some(1)
    );
    // Usage errors exit 2.
    assert_eq!(netc(&["check"]).status.code(), Some(2));
    assert_eq!(
        netc(&["check", "--format", "xml", "examples/digits.net"]).status.code(),
        Some(2)
    );
    assert_eq!(netc(&["frobnicate"]).status.code(), Some(2));
    // A missing file is bad input: exit 1 with the path named.
    let out = netc(&["check", "no/such/file.net"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no/such/file.net"));
}

#[test]
fn check_reports_all_files_and_counts() {
    let out = netc(&[
        "check",
        "tests/ui/unknown_activation.net",
        "tests/ui/range_dropout_rate.net",
    ]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("E0008") && stderr.contains("E0007"), "{stderr}");
    assert!(stderr.contains("checked 2 files: 2 errors, 0 warnings"), "{stderr}");
}

#[test]
fn json_format_has_the_contract_fields() {
    let out = netc(&[
        "check",
        "--format",
        "json",
        "tests/ui/unknown_activation.net",
        "examples/deep_sigmoid.net",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let items = value.as_array().expect("an array");
    assert_eq!(items.len(), 2);
    let first = &items[0];
    assert_eq!(first["file"], "tests/ui/unknown_activation.net");
    assert_eq!(first["line"], 3);
    assert_eq!(first["column"], 16);
    assert_eq!(first["end"]["line"], 3);
    assert_eq!(first["end"]["column"], 20);
    assert_eq!(first["severity"], "error");
    assert_eq!(first["code"], "E0008");
    assert_eq!(first["message"], "unknown activation `rleu`");
    assert_eq!(first["hint"], "did you mean `relu`?");
    assert_eq!(items[1]["severity"], "warning");
}

#[test]
fn github_format_prints_annotations() {
    let out = netc(&["check", "--format", "github", "tests/ui/unknown_activation.net"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout,
        "::error file=tests/ui/unknown_activation.net,line=3,col=16,endLine=3,endColumn=20,title=E0008::unknown activation `rleu` (help: did you mean `relu`?)\n"
    );
}

#[test]
fn summary_prints_the_layer_table() {
    let out = netc(&["check", "--summary", "examples/mnist_mlp.net"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("h1     dense 256 relu       256  200960  128.0 KiB"),
        "{stdout}"
    );
    assert!(stdout.contains("total parameters: 269322"), "{stdout}");
}

#[test]
fn summary_shows_every_image_shape() {
    let out = netc(&["check", "--summary", "examples/digits_cnn.net"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    // C x H x W per layer, the parameters (16 filters of 1x3x3 and their biases), the memory of
    // one batch of 32 outputs (16 * 8 * 8 * 32 * 4 bytes).
    assert!(
        stdout.contains("c1        conv 16 kernel 3 stride 1 pad same relu  16x8x8     160  128.0 KiB"),
        "{stdout}"
    );
    assert!(
        stdout.contains("maxpool1  maxpool 2 stride 2 pad valid             32x4x4       0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("h         dense 64 relu                                64   32832"),
        "{stdout}"
    );
    let resnet = text(&netc(&["check", "--summary", "examples/mnist_resnet.net"]).stdout);
    assert!(
        resnet.contains("residual4        residual shortcut project relu (+ residual3)       32x14x14     576"),
        "{resnet}"
    );
    assert!(
        resnet.contains("global_avgpool1  global_avgpool                                           64       0"),
        "{resnet}"
    );
    // ResNet-20's 0.27M parameters (running statistics are not counted).
    assert!(resnet.contains("total parameters: 272186"), "{resnet}");
}

#[test]
fn fmt_check_names_files_and_fmt_rewrites_them() {
    let dir = temp_dir("fmt");
    let messy = dir.join("messy.net");
    std::fs::write(
        &messy,
        "model m {\n    input 64\n   dense   10 softmax\n  loss cross_entropy }\ntrain { data digits }\n",
    )
    .expect("write");
    let path = messy.to_str().expect("utf-8 path");
    let out = netc(&["fmt", "--check", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("would reformat"), "{}", text(&out.stdout));
    assert_eq!(netc(&["fmt", path]).status.code(), Some(0));
    let formatted = std::fs::read_to_string(&messy).expect("read");
    assert_eq!(
        formatted,
        "model m {\n  input 64\n  dense 10 softmax\n  loss cross_entropy\n}\ntrain { data digits }\n"
    );
    assert_eq!(netc(&["fmt", "--check", path]).status.code(), Some(0));
    assert_eq!(netc(&["fmt", "--check", "examples/digits.net"]).status.code(), Some(0));
    // Files with syntax errors are not touched.
    let broken = dir.join("broken.net");
    std::fs::write(&broken, "model m {\n").expect("write");
    assert_eq!(netc(&["fmt", broken.to_str().expect("utf-8")]).status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&broken).expect("read"), "model m {\n");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn garbage_input_is_an_error_not_a_crash() {
    let dir = temp_dir("garbage");
    let cases: &[&[u8]] = &[
        b"\xff\xfe\x00garbage",
        b"{{{{{{{{",
        b"model m { input -1 }",
        b"\"unterminated",
        b"",
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let path = dir.join(format!("g{i}.net"));
        std::fs::write(&path, bytes).expect("write");
        let out = netc(&["check", path.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(1), "case {i}: {}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("panicked"), "case {i}");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let _ = Path::new(".");
}
