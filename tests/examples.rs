//! Every example checks without errors, is already formatted, and warns only where it means to.

use netc::check::Limits;
use netc::diag::source::SourceMap;
use std::path::{Path, PathBuf};

const LIMITS: Limits = Limits { memory_bytes: 8 << 30 };

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("examples dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "net") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn examples_check_clean_and_are_formatted() {
    let files = examples();
    assert!(files.len() >= 10, "expected the example set, found {}", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let mut sources = SourceMap::new();
        let id = sources.add(path.display().to_string(), text.clone());
        let compiled = netc::compile(&sources, id, &[], &LIMITS);
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let rendered = netc::diag::render_plain(&sources, &compiled.diagnostics);
        assert!(compiled.checked.is_some(), "{name} has errors:\n{rendered}");
        // The deep sigmoid stack is the lecture's cautionary example: it must warn, and only it.
        let codes: Vec<&str> = compiled.diagnostics.iter().map(|d| d.code.as_str()).collect();
        if name == "deep_sigmoid.net" {
            assert_eq!(codes, ["W0001"], "{rendered}");
        } else {
            assert!(codes.is_empty(), "{name} warns:\n{rendered}");
        }
        let (tree, _) = netc::front::syntax::parse(id, &text);
        assert_eq!(
            netc::front::fmt::format_file(&tree, &text),
            text,
            "{name} is not in canonical layout: run `netc fmt {name}`"
        );
    }
}

#[test]
fn the_ten_layer_sigmoid_stack_is_one_line_plus_a_block() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deep_sigmoid.net"))
        .expect("readable");
    let repeat_lines: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("repeat")).collect();
    assert_eq!(repeat_lines.len(), 1);
    let mut sources = SourceMap::new();
    let id = sources.add("deep_sigmoid.net", text);
    let checked = netc::compile(&sources, id, &[], &LIMITS).checked.expect("compiles");
    let sigmoid = checked
        .program()
        .model
        .layers
        .values()
        .filter(|l| l.activation() == Some(netc::ir::Activation::Sigmoid))
        .count();
    assert_eq!(sigmoid, 10);
}
