//! Tidy: the layout's rules, checked on the source text (in the spirit of rust-analyzer's
//! `xtask/src/tidy.rs`).
//!
//! - The folders of `src/` are the pipeline; a module imports only modules of earlier stages
//!   (`use crate::X` and `crate::X::` paths, comments excluded). The order is [`STAGES`].
//! - The front end and the checker are pure: no `std::fs`, `std::env`, `std::process` or
//!   standard input there.
//! - `unsafe` appears only in the JIT runtime (`src/back/jit/`).

use std::path::{Path, PathBuf};

/// Top-level modules by pipeline stage: a module may import modules of lower stages only.
/// Modules of one stage do not import each other.
const STAGES: &[(&str, usize)] = &[
    ("diag", 0),
    ("rng", 0),
    ("fsutil", 0),
    ("console", 0),
    ("ir", 1),
    ("front", 2),
    ("check", 3),
    ("ops", 4),
    ("graph", 5),
    ("passes", 6),
    ("data", 6),
    ("back", 7),
    ("report", 8),
    ("run", 9),
];

fn sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The path below `src/`, with `/` separators.
fn relative(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    path.strip_prefix(&src)
        .expect("under src")
        .to_string_lossy()
        .replace('\\', "/")
}

/// The top-level module a file belongs to (`None` for the crate roots).
fn module_of(relative: &str) -> Option<&str> {
    match relative {
        "lib.rs" | "main.rs" => None,
        _ => Some(relative.split('/').next().expect("non-empty").trim_end_matches(".rs")),
    }
}

/// Lines of code without comments (line comments and doc comments; block comments are not used).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
}

/// The top-level modules a line names through `crate::`.
fn crate_references(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        out.push(&after[..end]);
        rest = &after[end..];
    }
    // `use crate::{a, b}` names several modules.
    if let Some(group) = line.trim_start().strip_prefix("use crate::{") {
        out.extend(
            group
                .split(',')
                .map(|part| part.trim().split("::").next().unwrap_or("").trim_end_matches("};")),
        );
    }
    out.retain(|m| !m.is_empty());
    out
}

fn stage(module: &str) -> Option<usize> {
    STAGES.iter().find(|(name, _)| *name == module).map(|&(_, s)| s)
}

#[test]
fn every_module_has_a_stage() {
    let mut missing = Vec::new();
    for path in sources() {
        let rel = relative(&path);
        if let Some(m) = module_of(&rel)
            && stage(m).is_none()
        {
            missing.push(rel);
        }
    }
    assert!(
        missing.is_empty(),
        "give these modules a stage in tests/tidy.rs: {missing:?}"
    );
}

#[test]
fn imports_follow_the_pipeline() {
    let mut violations = Vec::new();
    for path in sources() {
        let rel = relative(&path);
        let Some(from) = module_of(&rel) else { continue };
        let Some(from_stage) = stage(from) else { continue };
        let text = std::fs::read_to_string(&path).expect("readable");
        for (line_number, line) in code_lines(&text) {
            for to in crate_references(line) {
                if to == from {
                    continue;
                }
                match stage(to) {
                    Some(to_stage) if to_stage < from_stage => {}
                    Some(to_stage) => violations.push(format!(
                        "src/{rel}:{line_number}: `{from}` (stage {from_stage}) imports `{to}` (stage {to_stage}), against the pipeline"
                    )),
                    // Items of the crate root (`crate::compile`) belong to no stage.
                    None => {}
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "{} import(s) against the pipeline's direction:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn the_front_end_and_the_checker_do_no_io() {
    let forbidden = [
        "std::fs",
        "std::env",
        "std::process",
        "stdin()",
        "File::open",
        "File::create",
    ];
    let mut violations = Vec::new();
    for path in sources() {
        let rel = relative(&path);
        if !(rel.starts_with("front/") || rel.starts_with("check/")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for (line_number, line) in code_lines(&text) {
            for word in forbidden {
                if line.contains(word) {
                    violations.push(format!("src/{rel}:{line_number}: `{word}` in a pure stage"));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "IO outside the run layer:\n{}",
        violations.join("\n")
    );
}

#[test]
fn unsafe_code_only_in_the_jit_runtime() {
    let mut violations = Vec::new();
    for path in sources() {
        let rel = relative(&path);
        if rel.starts_with("back/jit/") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for (line_number, line) in code_lines(&text) {
            if line
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == "unsafe")
            {
                violations.push(format!("src/{rel}:{line_number}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "`unsafe` outside src/back/jit/:\n{}",
        violations.join("\n")
    );
}

/// Every file netc writes for a user goes through `fsutil` (atomic, keeping what the path
/// is); the only other writes are `back/aot/link.rs`'s scratch files in the fresh directory it
/// links in, and `run/outputs.rs`'s empty files: the marker that claims a run directory
/// (`create_new`) and the probe that tests a directory is writable.
#[test]
fn every_write_goes_through_fsutil() {
    let writes = ["fs::write(", "File::create(", "OpenOptions", "fs::rename(", "fs::copy("];
    let mut violations = Vec::new();
    for path in sources() {
        let rel = relative(&path);
        if matches!(rel.as_str(), "fsutil.rs" | "back/aot/link.rs" | "run/outputs.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for (line_number, line) in code_lines(&text) {
            for word in writes {
                if line.contains(word) {
                    violations.push(format!("src/{rel}:{line_number}: `{word}`"));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "writes that bypass fsutil::write_atomic:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_check() {
    // The scanner itself: a violation on a made-up line is found, a comment is not.
    assert_eq!(crate_references("use crate::run::train::Run;"), vec!["run"]);
    assert_eq!(crate_references("    let x = crate::graph::build(&c);"), vec!["graph"]);
    assert_eq!(crate_references("use crate::{data, ir::Shape};"), vec!["data", "ir"]);
    assert_eq!(code_lines("// crate::run\nuse crate::ir;").count(), 1);
}

/// Slot spans are looked up by name (`spans.get("width")`), falling back to the statement's
/// span when a value was not written. A misspelt name would fall back silently, so every name
/// the checker looks up must be a slot, option or flag of some statement (or the label, or a
/// block statement's keyword).
#[test]
fn slot_names_the_checker_looks_up_exist() {
    use netc::front::schema::SCHEMAS;
    // `name` is the label's span, `keyword` a block statement's head word.
    let slot_exists = |name: &str| {
        name == "name"
            || name == "keyword"
            || SCHEMAS
                .iter()
                .any(|s| s.positional.iter().chain(s.options).any(|slot| slot.name == name) || s.flags.contains(&name))
    };
    let head_exists = |name: &str| SCHEMAS.iter().any(|s| s.head == name);
    let mut unknown = Vec::new();
    let mut seen = 0;
    for path in sources() {
        let rel = relative(&path);
        if !rel.starts_with("check/") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for (line_number, line) in code_lines(&text) {
            for (call, exists) in [
                (".get(\"", &slot_exists as &dyn Fn(&str) -> bool),
                (".has(\"", &slot_exists),
                (".setting(\"", &head_exists),
            ] {
                let mut rest = line;
                while let Some(at) = rest.find(call) {
                    let after = rest[at + call.len()..].trim_start_matches('"');
                    let name = &after[..after.find('"').unwrap_or(0)];
                    if !name.is_empty() {
                        seen += 1;
                        if !exists(name) {
                            unknown.push(format!("src/{rel}:{line_number}: no statement has `{name}`"));
                        }
                    }
                    rest = &after[name.len()..];
                }
            }
        }
    }
    assert!(
        seen >= 10,
        "the scan found only {seen} lookups: has the lookup API changed?"
    );
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
}
