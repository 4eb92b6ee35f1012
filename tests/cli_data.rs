//! Data and weights files end to end: nothing malformed is accepted silently, by netc or by the
//! executables it builds, and both refuse the same rows with messages that name the fix.

mod common;
use common::*;

use netc::run::weights::{decode, encode};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A tiny spec (3 features, 2 classes) over `data.csv` in `dir`, with `activation` in its
/// hidden layer.
fn spec(dir: &Path, name: &str, activation: &str) -> PathBuf {
    let path = dir.join(format!("{name}.net"));
    let text = format!(
        "model tiny {{\n  input 3\n  dense h1: 4 {activation}\n  dense out: 2 softmax\n  loss cross_entropy\n}}\ntrain {{\n  data \"data.csv\"\n  batch 8 epochs 1 seed 1\n}}\n"
    );
    std::fs::write(&path, text).expect("write spec");
    path
}

/// The rows of `data.csv`: 3 features, label last.
fn rows(n: usize) -> String {
    (0..n)
        .map(|i| format!("{},{},{},{}\n", i % 5, (i * 7) % 3, i % 2, i % 2))
        .collect()
}

/// Trains the relu spec once in `dir`; returns (spec, weights).
fn trained(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::write(dir.join("data.csv"), rows(40)).expect("write data");
    let spec = spec(dir, "relu", "relu");
    let run = dir.join("run");
    let o = netc(&["train", s(&spec), "-q", "--out", s(&run)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    (spec, run.join("weights.safetensors"))
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

/// Runs netc and expects success with the warning `code` on stderr; returns stderr.
fn warns_with(args: &[&str], code: &str) -> String {
    let out = netc(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    assert!(stderr.contains(&format!("warning[{code}]")), "{args:?}: {stderr}");
    stderr
}

/// Rewrites a weights file with `change` applied to its tensors and metadata.
fn rewrite(
    from: &Path,
    to: &Path,
    change: impl FnOnce(&mut netc::run::weights::Tensors, &mut std::collections::BTreeMap<String, String>),
) {
    let (mut tensors, mut meta) = decode(&std::fs::read(from).expect("read"), from).expect("valid");
    change(&mut tensors, &mut meta);
    let list: Vec<_> = tensors.into_values().collect();
    std::fs::write(to, encode(&list, meta)).expect("write");
}

#[test]
fn weights_are_checked_in_one_loader() {
    let dir = temp_dir("weights");
    let (spec, weights) = trained(&dir);
    let rows_csv = dir.join("rows.csv");
    std::fs::write(&rows_csv, "1,2,3\n4,5,6\n").expect("write");
    let exe = dir.join("model");
    // Item 10: NaN or inf in the normalization, refused by eval, predict and build alike.
    for (tensor, value) in [("input.scale", f32::NAN), ("input.shift", f32::INFINITY)] {
        let bad = dir.join("bad.safetensors");
        rewrite(&weights, &bad, |t, _| {
            t.get_mut(tensor).expect("tensor").data[1] = value;
        });
        for args in [
            vec!["eval", s(&spec), "--split", "train", "--weights", s(&bad)],
            vec!["predict", s(&spec), "--weights", s(&bad), s(&rows_csv)],
            vec!["build", s(&spec), "--weights", s(&bad), "-o", s(&exe)],
        ] {
            let stderr = fails_with(&args, "E0106");
            assert!(stderr.contains(&format!("tensor `{tensor}`")), "{stderr}");
            assert!(stderr.contains("non-finite"), "{stderr}");
        }
    }
    // Item 27: a truncated file says so.
    let bytes = std::fs::read(&weights).expect("read");
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).expect("write");
    let stderr = fails_with(&["eval", s(&spec), "--split", "train", "--weights", s(&cut)], "E0106");
    assert!(stderr.contains("truncated"), "{stderr}");
    std::fs::write(&cut, &bytes[..20]).expect("write");
    let stderr = fails_with(&["eval", s(&spec), "--split", "train", "--weights", s(&cut)], "E0106");
    assert!(stderr.contains("truncated"), "{stderr}");
    // A large damaged file is refused from its first bytes, before it is read.
    let sparse = dir.join("sparse.safetensors");
    let mut file = std::fs::File::create(&sparse).expect("create");
    file.write_all(&200u64.to_le_bytes()).expect("write");
    file.set_len(2 << 30).expect("a sparse file");
    let started = std::time::Instant::now();
    let stderr = fails_with(
        &["eval", s(&spec), "--split", "train", "--weights", s(&sparse)],
        "E0106",
    );
    assert!(started.elapsed().as_secs_f64() < 3.0, "{:?}", started.elapsed());
    assert!(stderr.contains("not a JSON object"), "{stderr}");
    std::fs::remove_file(&sparse).expect("remove");
    // Item 27: a checkpoint is named as one.
    let checkpoint = dir.join("checkpoint.safetensors");
    rewrite(&weights, &checkpoint, |_, m| {
        m.insert("netc.checkpoint".into(), "{}".into());
    });
    let stderr = fails_with(
        &["eval", s(&spec), "--split", "train", "--weights", s(&checkpoint)],
        "E0106",
    );
    assert!(
        stderr.contains("is a checkpoint") && stderr.contains("--resume"),
        "{stderr}"
    );
    // Tensor names from the file are escaped in messages.
    let extra = dir.join("extra.safetensors");
    rewrite(&weights, &extra, |t, _| {
        let mut odd = t["h1.bias"].clone();
        odd.name = "evil\u{1b}[2J".into();
        t.insert(odd.name.clone(), odd);
    });
    let stderr = fails_with(&["eval", s(&spec), "--split", "train", "--weights", s(&extra)], "E0106");
    assert!(
        stderr.contains("evil\\u{1b}[2J") && !stderr.contains('\u{1b}'),
        "{stderr}"
    );
    // A spec hash that is not one (it would be compiled into C) is refused.
    let odd = dir.join("odd.safetensors");
    rewrite(&weights, &odd, |_, m| {
        m.insert("netc.spec_hash".into(), "\"; int x = 1; //".into());
    });
    fails_with(&["build", s(&spec), "--weights", s(&odd), "-o", s(&exe)], "E0106");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weights_of_another_spec_get_a_warning() {
    let dir = temp_dir("provenance");
    let (relu, weights) = trained(&dir);
    let tanh = spec(&dir, "tanh", "tanh");
    // The same spec: no warning.
    let o = netc(&["eval", s(&relu), "--split", "train", "--weights", s(&weights)]);
    assert!(
        o.status.success() && !text(&o.stderr).contains("warning"),
        "{}",
        text(&o.stderr)
    );
    // Another activation with the same shapes: a warning naming the difference, exit 0.
    let stderr = warns_with(
        &["eval", s(&tanh), "--split", "train", "--weights", s(&weights)],
        "W0103",
    );
    assert!(
        stderr.contains("`h1 <- input: dense 4 relu` in the weights") && stderr.contains("dense 4 tanh` in this spec"),
        "{stderr}"
    );
    let rows_csv = dir.join("rows.csv");
    std::fs::write(&rows_csv, "1,2,3\n").expect("write");
    warns_with(&["predict", s(&tanh), "--weights", s(&weights), s(&rows_csv)], "W0103");
    // Only a comment differs: the model is the same, no warning.
    let commented = dir.join("commented.net");
    let text_of = std::fs::read_to_string(&relu).expect("read");
    std::fs::write(&commented, format!("# a comment\n{text_of}")).expect("write");
    let o = netc(&["eval", s(&commented), "--split", "train", "--weights", s(&weights)]);
    assert!(!text(&o.stderr).contains("W0103"), "{}", text(&o.stderr));
    // Old weights files store only the hash: the warning says the hashes differ.
    let old = dir.join("old.safetensors");
    rewrite(&weights, &old, |_, m| {
        m.remove("netc.model_description");
    });
    let stderr = warns_with(&["eval", s(&tanh), "--split", "train", "--weights", s(&old)], "W0103");
    assert!(stderr.contains("different spec (hash"), "{stderr}");
    // The header and the executable report the hash of the weights, not of the build's spec.
    let (_, meta) = decode(&std::fs::read(&weights).expect("read"), &weights).expect("valid");
    let trained_hash = &meta["netc.spec_hash"];
    let exe = dir.join("tiny_tanh");
    warns_with(&["build", s(&tanh), "--weights", s(&weights), "-o", s(&exe)], "W0103");
    let header = std::fs::read_to_string(dir.join("tiny_tanh.h")).expect("header");
    assert!(header.contains(trained_hash.as_str()), "{header}");
    let help = Command::new(&exe).arg("--help").output().expect("exe runs");
    assert!(
        text(&help.stdout).contains(trained_hash.as_str()),
        "{}",
        text(&help.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn csv_files_get_the_right_diagnosis() {
    let dir = temp_dir("csv");
    let (spec, weights) = trained(&dir);
    let cases: &[(&[u8], &str)] = &[
        (b"1,2,3,0\n4,5,6,1,\n", "the row ends with a comma"),
        (b"1,2,3,\n", "trailing comma"),
        (b"1,2,3,cat\n4,5,6,dog\n", "replace each class name by its number"),
        (b"1;2;3;0\n4;5;6;1\n", "separated by `;`"),
        (b"1,5;2,5;3;0\n", "separated by `;`"),
        (b"1\t2\t3\t0\n", "separated by tabs"),
        (b"a,b,c,label\n1,2,3,0\n", "if the first row is a header"),
        (b"1,2,3,0\n\x1b[31m,2,3,0\n", "`\\u{1b}[31m` is not a number"),
    ];
    for (i, (bytes, message)) in cases.iter().enumerate() {
        let data = dir.join(format!("case{i}"));
        std::fs::create_dir_all(&data).expect("dir");
        std::fs::write(data.join("data.csv"), bytes).expect("write");
        let case_spec = data.join("spec.net");
        std::fs::copy(&spec, &case_spec).expect("copy");
        let stderr = fails_with(&["train", s(&case_spec), "-q", "--out", s(&data.join("run"))], "E0104");
        assert!(stderr.contains(message), "case {i}: {stderr}");
        assert!(!stderr.contains('\u{1b}'), "case {i}: raw escape in {stderr}");
        if *message == "trailing comma" {
            assert!(!stderr.contains("header"), "case {i}: {stderr}");
        }
    }
    // A byte-order mark is accepted, in training data and in predict's rows (file and stdin).
    let bom = dir.join("bom");
    std::fs::create_dir_all(&bom).expect("dir");
    std::fs::write(bom.join("data.csv"), format!("\u{feff}{}", rows(20))).expect("write");
    std::fs::copy(&spec, bom.join("spec.net")).expect("copy");
    let o = netc(&["train", s(&bom.join("spec.net")), "-q", "--out", s(&bom.join("run"))]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rows_csv = dir.join("rows.csv");
    std::fs::write(&rows_csv, "\u{feff}1,2,3\n").expect("write");
    let o = netc(&["predict", s(&spec), "--weights", s(&weights), s(&rows_csv)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = stdin_netc(&["predict", s(&spec), "--weights", s(&weights), "-"], "\u{feff}1,2,3\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    // A header in predict's rows is to be removed (predict has no `header` option).
    std::fs::write(&rows_csv, "a,b,c\n1,2,3\n").expect("write");
    let stderr = fails_with(&["predict", s(&spec), "--weights", s(&weights), s(&rows_csv)], "E0104");
    assert!(stderr.contains("if the first row is a header, remove it"), "{stderr}");
    // predict refuses NaN and inf rows (as the executable does, below).
    for row in ["1,nan,3\n", "inf,2,3\n", "1,2,1e39\n"] {
        std::fs::write(&rows_csv, row).expect("write");
        fails_with(&["predict", s(&spec), "--weights", s(&weights), s(&rows_csv)], "E0104");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs netc with `input` on standard input.
fn stdin_netc(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netc runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("netc ends")
}

/// An IDX file of f32 rows.
fn idx_f32(rows: usize, cols: usize, values: &[f32]) -> Vec<u8> {
    let mut bytes = vec![0u8, 0, 0x0D, 2];
    bytes.extend((rows as u32).to_be_bytes());
    bytes.extend((cols as u32).to_be_bytes());
    for v in values {
        bytes.extend(v.to_be_bytes());
    }
    bytes
}

/// An NPY file of f4 rows.
fn npy_f32(rows: usize, cols: usize, values: &[f32]) -> Vec<u8> {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let padded = format!("{header:<117}\n");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((padded.len() as u16).to_le_bytes());
    bytes.extend(padded.as_bytes());
    for v in values {
        bytes.extend(v.to_le_bytes());
    }
    bytes
}

#[test]
fn binary_files_are_checked_before_they_are_read() {
    let dir = temp_dir("binary");
    let (spec, weights) = trained(&dir);
    let predict = |file: &Path, code: &str| fails_with(&["predict", s(&spec), "--weights", s(&weights), s(file)], code);
    // A zero dimension is refused as such (it used to suggest `input 0`).
    let zero = dir.join("zero.idx");
    std::fs::write(&zero, idx_f32(2, 0, &[])).expect("write");
    let stderr = predict(&zero, "E0104");
    assert!(stderr.contains("is 0") && !stderr.contains("input 0"), "{stderr}");
    let zero = dir.join("zero.npy");
    std::fs::write(&zero, npy_f32(0, 3, &[])).expect("write");
    assert!(predict(&zero, "E0104").contains("zero dimension"));
    // NaN in IDX and NPY rows, as in CSV.
    let nan = dir.join("nan.idx");
    std::fs::write(&nan, idx_f32(1, 3, &[1.0, f32::NAN, 2.0])).expect("write");
    assert!(predict(&nan, "E0104").contains("row 1, column 2) is NaN or infinite"));
    let nan = dir.join("nan.npy");
    std::fs::write(&nan, npy_f32(1, 3, &[1.0, 2.0, f32::INFINITY])).expect("write");
    assert!(predict(&nan, "E0104").contains("NaN or infinite"));
    // Large sparse files: the header decides, in milliseconds, before 2 GB are read.
    for (name, head) in [
        ("sparse.idx", vec![1u8, 2, 3, 4]),
        ("huge.idx", idx_f32(1 << 28, 3, &[])),
        ("huge.npy", npy_f32(1 << 28, 3, &[])),
        ("long.idx", idx_f32(2, 3, &[0.0; 6])),
    ] {
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(&head).expect("write");
        file.set_len(2 << 30).expect("a sparse file");
        let started = std::time::Instant::now();
        let stderr = predict(&path, "E0104");
        assert!(started.elapsed().as_secs_f64() < 3.0, "{name}: {:?}", started.elapsed());
        let expected = ["magic", "truncated", "more bytes than its header promises"];
        assert!(expected.iter().any(|e| stderr.contains(e)), "{name}: {stderr}");
        std::fs::remove_file(&path).expect("remove");
    }
    // An MNIST directory with three of the four files names the missing one.
    let mnist = dir.join("data").join("mnist");
    std::fs::create_dir_all(&mnist).expect("dir");
    for name in &netc::data::MNIST_FILES[..3] {
        std::fs::write(mnist.join(name), b"").expect("write");
    }
    let stderr = fails_with(
        &["train", "examples/mnist_mlp.net", "--data-dir", s(&dir.join("data"))],
        "E0104",
    );
    assert!(stderr.contains("`t10k-labels-idx1-ubyte` missing"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_executable_refuses_what_predict_refuses() {
    let dir = temp_dir("exe");
    let (spec, weights) = trained(&dir);
    let exe = dir.join("tiny");
    build_executable(&spec, &weights, &exe, &["--batch-max", "3"], "tiny");
    let run = |args: &[&str], input: &[u8]| -> Output {
        let mut child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("exe runs");
        let _ = child.stdin.take().expect("stdin").write_all(input);
        child.wait_with_output().expect("exe ends")
    };
    // Item 17: more rows than --batch-max, in chunks the model accepts; a BOM is no data.
    let many = format!("\u{feff}{}", "1,2,3\n".repeat(10));
    let o = run(&[], many.as_bytes());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 10);
    // Item 11: NaN, inf, overflow and hexadecimal cells, on stdin, in files, in IDX and NPY.
    for row in ["1,nan,3\n", "inf,2,3\n", "1,2,1e39\n", "0x1p3,2,3\n", "1,-infinity,2\n"] {
        let o = run(&[], row.as_bytes());
        assert_eq!(o.status.code(), Some(1), "{row}: {}", text(&o.stdout));
        assert!(text(&o.stderr).contains("is not a"), "{row}: {}", text(&o.stderr));
        assert!(o.stdout.is_empty(), "{row}");
    }
    let nan = dir.join("nan.npy");
    std::fs::write(&nan, npy_f32(1, 3, &[1.0, f32::NAN, 2.0])).expect("write");
    let inf = dir.join("inf.idx");
    std::fs::write(&inf, idx_f32(1, 3, &[1.0, 2.0, f32::NEG_INFINITY])).expect("write");
    let zero = dir.join("zero.idx");
    std::fs::write(&zero, idx_f32(0, 3, &[])).expect("write");
    for (file, message) in [
        (&nan, "NaN or infinite"),
        (&inf, "NaN or infinite"),
        (&zero, "zero dimension"),
    ] {
        let o = run(&[s(file)], b"");
        assert_eq!(o.status.code(), Some(1), "{}", file.display());
        assert!(text(&o.stderr).contains(message), "{}", text(&o.stderr));
    }
    // Every dtype netc reads, the executable reads (u2 and u8 were refused).
    for (descr, bytes) in [
        ("<u2", vec![1u8, 0, 2, 0, 3, 0]),
        ("<u8", [1u64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect()),
    ] {
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1, 3), }}");
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{header:<117}\n");
        npy.extend((padded.len() as u16).to_le_bytes());
        npy.extend(padded.as_bytes());
        npy.extend(bytes);
        let path = dir.join("ints.npy");
        std::fs::write(&path, npy).expect("write");
        let o = run(&[s(&path)], b"");
        assert!(o.status.success(), "{descr}: {}", text(&o.stderr));
        let by_netc = netc(&["predict", s(&spec), "--weights", s(&weights), s(&path)]);
        assert_eq!(text(&o.stdout), text(&by_netc.stdout), "{descr}");
    }
    // Item 28: control characters are escaped, not echoed.
    let o = run(&[], b"1,\x1b[2J\x07,3\n");
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains("\\x1b[2J\\x07") && !stderr.contains('\u{1b}'),
        "{stderr}"
    );
    let o = run(&[], b"1,2\x013\n");
    assert!(text(&o.stderr).contains("unexpected `\\x01`"), "{}", text(&o.stderr));
    // `--` ends the options; `--format` needs a value.
    let dash = dir.join("-rows.csv");
    std::fs::write(&dash, "1,2,3\n").expect("write");
    let o = run(&["--", s(&dash)], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run(&["--format"], b"1,2,3\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--format needs a value: text or json"),
        "{}",
        text(&o.stderr)
    );
    let o = run(&["--format=json"], b"1,2,3\n");
    assert!(
        o.status.success() && text(&o.stdout).starts_with("[{"),
        "{}",
        text(&o.stderr)
    );
    // A failing standard output is an error with a message, not a silent exit 1.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(b"1,2,3\n")?;
            c.wait_with_output()
        })
        .expect("exe runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("cannot write"), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_executable_and_predict_agree_on_mutated_rows() {
    let dir = temp_dir("agree");
    let (spec, weights) = trained(&dir);
    let exe = dir.join("tiny_agree");
    build_executable(&spec, &weights, &exe, &["--emit", "exe"], "tiny_agree");
    // Mutations of valid rows, over the characters numbers are written with and the ones that
    // break them; a fixed linear congruential sequence keeps the cases the same every run.
    let alphabet = b"0123456789.,-+eE \t\r\x0b\nnaifxNAIF;\x00\x1b";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    let mut disagreements = Vec::new();
    for case in 0..60 {
        let mut bytes = b"1.5,-2,3e-1\n4,5,6\n".to_vec();
        for _ in 0..1 + next(3) {
            let at = next(bytes.len() + 1);
            let c = alphabet[next(alphabet.len())];
            match next(3) {
                0 if at < bytes.len() => bytes[at] = c,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, c),
            }
        }
        let rows = dir.join(format!("case{case}.csv"));
        std::fs::write(&rows, &bytes).expect("write");
        let by_exe = Command::new(&exe).arg(&rows).output().expect("exe runs");
        let by_netc = netc(&["predict", s(&spec), "--weights", s(&weights), s(&rows)]);
        assert!(!text(&by_netc.stderr).contains("panicked"));
        assert!(matches!(by_exe.status.code(), Some(0 | 1)), "{bytes:?}");
        if by_exe.status.success() != by_netc.status.success() {
            disagreements.push(format!(
                "{:?}: exe {:?} {}, netc {:?} {}",
                String::from_utf8_lossy(&bytes),
                by_exe.status.code(),
                text(&by_exe.stderr).trim(),
                by_netc.status.code(),
                text(&by_netc.stderr).lines().next().unwrap_or("")
            ));
        } else if by_exe.status.success() {
            assert_eq!(
                text(&by_exe.stdout).lines().count(),
                text(&by_netc.stdout).lines().count(),
                "{bytes:?}"
            );
        }
    }
    // Mutated IDX and NPY files: one byte changed, dropped or added, anywhere.
    let valid = [
        ("idx", idx_f32(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
        ("npy", npy_f32(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
    ];
    for case in 0..80 {
        let (ext, original) = &valid[case % 2];
        let mut bytes = original.clone();
        let at = next(bytes.len());
        let byte = [0u8, 1, 2, 3, 0x0D, 0x7f, 0x80, 0xff, b'(', b',', b')', b'\''][next(12)];
        match next(3) {
            0 => bytes[at] = byte,
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, byte),
        }
        let path = dir.join(format!("case{case}.{ext}"));
        std::fs::write(&path, &bytes).expect("write");
        let by_exe = Command::new(&exe).arg(&path).output().expect("exe runs");
        let by_netc = netc(&["predict", s(&spec), "--weights", s(&weights), s(&path)]);
        assert!(matches!(by_exe.status.code(), Some(0 | 1)), "{bytes:?}");
        if by_exe.status.success() != by_netc.status.success() {
            disagreements.push(format!(
                "{ext} byte {at}: exe {:?} {}, netc {:?} {}",
                by_exe.status.code(),
                text(&by_exe.stderr).trim(),
                by_netc.status.code(),
                text(&by_netc.stderr).lines().next().unwrap_or("")
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
