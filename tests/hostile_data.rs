//! Hostile data and weights files: random bytes and mutations of valid CSV, IDX, NPY and
//! safetensors files never panic; each read either succeeds with sane contents (the promised
//! shape, finite values) or fails with a diagnostic whose message echoes no control character.

use netc::data::{parse_matrix_bytes, read_csv_bytes};
use netc::diag::Diagnostic;
use netc::ir::LabelColumn;
use netc::run::weights::{NamedTensor, decode, encode};
use proptest::prelude::*;
use std::path::Path;

/// A failure must be a data or weights diagnostic with a safe message and a hint.
fn sane_error(e: &Diagnostic) {
    assert!(e.is_error());
    assert!(!e.message.is_empty() && e.hint.is_some(), "{e}");
    assert!(
        !e.message.chars().any(|c| c.is_control() && c != '\n'),
        "a control character in {:?}",
        e.message
    );
}

fn sane_matrix(result: Result<ndarray::Array2<f32>, Box<Diagnostic>>) {
    match result {
        Ok(m) => {
            assert!(m.nrows() > 0 && m.ncols() > 0, "an empty matrix is accepted");
            assert!(m.iter().all(|v| v.is_finite()), "a non-finite value is accepted");
        }
        Err(e) => sane_error(&e),
    }
}

fn valid_idx() -> Vec<u8> {
    let mut bytes = vec![0u8, 0, 0x0D, 2, 0, 0, 0, 3, 0, 0, 0, 2];
    for v in [1.0f32, -2.5, 3.0, 0.0, 1e-3, 7.0] {
        bytes.extend(v.to_be_bytes());
    }
    bytes
}

fn valid_npy() -> Vec<u8> {
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
    let padded = format!("{header:<117}\n");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((padded.len() as u16).to_le_bytes());
    bytes.extend(padded.as_bytes());
    for v in [1.0f64, 2.0, -3.0, 4.5, 5.0, 6.0] {
        bytes.extend(v.to_le_bytes());
    }
    bytes
}

fn valid_weights() -> Vec<u8> {
    let tensors = vec![
        NamedTensor {
            name: "h1.weight".into(),
            shape: vec![2, 3],
            data: vec![0.5, -1.0, 2.0, 0.25, 0.0, 1.0],
        },
        NamedTensor {
            name: "input.scale".into(),
            shape: vec![3],
            data: vec![1.0, 0.5, 2.0],
        },
    ];
    let meta = [("netc.spec_hash".to_string(), "0123456789abcdef".to_string())]
        .into_iter()
        .collect();
    encode(&tensors, meta)
}

const VALID_CSV: &[u8] = b"1,2,0\n3.5,-4,1\n0,0,2\n";

/// A mutation of a valid file: overwrite bytes, cut it short, insert bytes, or extend it.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..6)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        proptest::collection::vec(any::<u8>(), 1..9).prop_map(Mutation::Append),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Set(i, b) if !bytes.is_empty() => bytes[i % len] = *b,
            Mutation::Set(..) => {}
            Mutation::Truncate(i) => bytes.truncate(i % len),
            Mutation::Insert(i, b) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Append(b) => bytes.extend(b),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn csv_never_panics_nor_accepts_garbage(
        mutations in proptest::collection::vec(mutation(), 0..4),
        random in proptest::collection::vec(any::<u8>(), 0..64),
        header in any::<bool>(),
    ) {
        for bytes in [mutate(VALID_CSV.to_vec(), &mutations), random] {
            match read_csv_bytes(&bytes, "fuzz.csv", LabelColumn::Last, header) {
                Ok(d) => {
                    prop_assert_eq!(d.features.nrows(), d.labels.len());
                    prop_assert!(d.features.iter().all(|v| v.is_finite()));
                }
                Err(e) => sane_error(&e),
            }
            sane_matrix(parse_matrix_bytes(&bytes, Path::new("fuzz.csv")));
        }
    }

    #[test]
    fn idx_never_panics_nor_accepts_garbage(
        mutations in proptest::collection::vec(mutation(), 1..4),
        random in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        for bytes in [mutate(valid_idx(), &mutations), random] {
            sane_matrix(parse_matrix_bytes(&bytes, Path::new("fuzz.idx")));
        }
    }

    #[test]
    fn npy_never_panics_nor_accepts_garbage(
        mutations in proptest::collection::vec(mutation(), 1..4),
        random in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        for bytes in [mutate(valid_npy(), &mutations), random] {
            sane_matrix(parse_matrix_bytes(&bytes, Path::new("fuzz.npy")));
        }
    }

    #[test]
    fn weights_never_panic_nor_accept_garbage(
        mutations in proptest::collection::vec(mutation(), 1..4),
        random in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        for bytes in [mutate(valid_weights(), &mutations), random] {
            match decode(&bytes, Path::new("fuzz.safetensors")) {
                Ok((tensors, _)) => {
                    for t in tensors.values() {
                        prop_assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
                        prop_assert!(t.data.iter().all(|v| v.is_finite()));
                    }
                }
                Err(e) => sane_error(&e),
            }
        }
    }
}

#[test]
fn the_valid_files_are_read() {
    assert_eq!(
        parse_matrix_bytes(&valid_idx(), Path::new("x.idx")).expect("idx").dim(),
        (3, 2)
    );
    assert_eq!(
        parse_matrix_bytes(&valid_npy(), Path::new("x.npy")).expect("npy").dim(),
        (2, 3)
    );
    let (tensors, meta) = decode(&valid_weights(), Path::new("w.safetensors")).expect("weights");
    assert_eq!(tensors.len(), 2);
    assert_eq!(meta["netc.spec_hash"], "0123456789abcdef");
    // Every cut of a weights file is refused as truncated (or malformed), never read as valid.
    let bytes = valid_weights();
    for cut in 0..bytes.len() {
        let e = decode(&bytes[..cut], Path::new("w.safetensors")).expect_err("cut short");
        assert!(e.message.contains("truncated"), "cut at {cut}: {}", e.message);
        assert!(
            cut >= 8 || e.message.contains("not a valid safetensors file"),
            "{}",
            e.message
        );
    }
}
