//! Golden tests for diagnostics: every `tests/ui/NAME.net` is checked and its rendered
//! diagnostics are compared with `tests/ui/NAME.stderr`. Every spec code (`Code::SPEC`) needs
//! a golden spec; the command codes (`E01xx`) are exercised by the CLI tests instead.
//!
//! `# set: PATH=VALUE` lines at the top of a spec act like `--set PATH=VALUE`.
//! Run with `NETC_BLESS=1` to rewrite the golden files after an intended change.

use netc::check::Limits;
use netc::diag::source::SourceMap;
use netc::diag::{self, Code, Diagnostic};
use netc::front::lower::parse_override;
use std::collections::HashSet;
use std::path::Path;

/// A fixed memory limit, so that the golden output does not depend on the machine.
const LIMITS: Limits = Limits { memory_bytes: 8 << 30 };

fn run(path: &Path) -> (String, Vec<Diagnostic>, SourceMap) {
    let text = std::fs::read_to_string(path).expect("ui spec is readable");
    let mut sources = SourceMap::new();
    let name = format!("tests/ui/{}", path.file_name().expect("file name").to_string_lossy());
    let file = sources.add(name, text.clone());
    let mut overrides = Vec::new();
    let mut diagnostics = Vec::new();
    for line in text.lines() {
        let Some(set) = line.strip_prefix("# set: ") else {
            continue;
        };
        let (key, value) = set.split_once('=').expect("a `# set:` line holds KEY=VALUE");
        let id = sources.add(format!("--set {key}"), value.to_string());
        match parse_override(key, id, value) {
            Ok(o) => overrides.push(o),
            Err(d) => diagnostics.push(*d),
        }
    }
    if diagnostics.is_empty() {
        diagnostics = netc::compile(&sources, file, &overrides, &LIMITS).diagnostics;
    }
    (diag::render_plain(&sources, &diagnostics), diagnostics, sources)
}

/// A "did you mean `x`?" must come with the fix that writes `x` in place of the misspelt word
/// (except for a `--set` path, which is in no source file).
fn suggestion_problem(sources: &SourceMap, d: &Diagnostic) -> Option<String> {
    let suggested = d.hint.as_deref()?.strip_prefix("did you mean ")?;
    let suggested = suggested.split('`').nth(1)?;
    if d.code == Code::BadOverride {
        return None;
    }
    let Some(fix) = d.fixes.first() else {
        return Some(format!("suggests `{suggested}` but has no fix"));
    };
    let replaced = sources.slice(fix.span);
    if fix.replacement != suggested || replaced.contains(char::is_whitespace) || replaced.is_empty() {
        return Some(format!(
            "the fix replaces `{replaced}` with `{}`, not the misspelt word with `{suggested}`",
            fix.replacement
        ));
    }
    None
}

#[test]
fn diagnostics_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut specs: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/ui exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    specs.sort();
    assert!(
        specs.len() >= 40,
        "expected at least 40 ui specs, found {}",
        specs.len()
    );

    let bless = std::env::var_os("NETC_BLESS").is_some();
    let mut failures = Vec::new();
    let mut codes_seen = HashSet::new();
    for spec in &specs {
        let (rendered, diagnostics, sources) = run(spec);
        let name = spec.file_stem().expect("stem").to_string_lossy().into_owned();
        codes_seen.extend(diagnostics.iter().map(|d| d.code));
        if name.starts_with("warn_") {
            if diagnostics.is_empty() || diagnostics.iter().any(|d| d.is_error()) {
                failures.push(format!("{name}: a warn_ spec must give warnings and no errors"));
            }
        } else if !diagnostics.iter().any(|d| d.is_error()) {
            failures.push(format!("{name}: expected at least one error"));
        }
        for d in &diagnostics {
            if d.hint.is_none() {
                failures.push(format!("{name}: {} has no hint naming the fix", d.code.as_str()));
            }
            if let Some(problem) = suggestion_problem(&sources, d) {
                failures.push(format!("{name}: {}: {problem}", d.code.as_str()));
            }
        }
        let golden = spec.with_extension("stderr");
        if bless {
            std::fs::write(&golden, &rendered).expect("write golden file");
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == rendered => {}
            Ok(expected) => failures.push(format!(
                "{name}: output differs from {}\n--- expected\n{expected}\n--- actual\n{rendered}",
                golden.display()
            )),
            Err(_) => failures.push(format!("{name}: no golden file; run with NETC_BLESS=1\n{rendered}")),
        }
    }
    for code in Code::SPEC {
        if !codes_seen.contains(code) {
            failures.push(format!("no ui spec exercises {}", code.as_str()));
        }
    }
    for code in codes_seen.iter().filter(|c| !c.is_spec()) {
        failures.push(format!("a ui spec gives the command code {}", code.as_str()));
    }
    assert!(
        failures.is_empty(),
        "{} ui failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_code_is_documented() {
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md"))
        .expect("docs/errors.md exists");
    for code in Code::ALL {
        assert!(
            docs.contains(&format!("## {}", code.as_str())),
            "docs/errors.md lacks a section for {}",
            code.as_str()
        );
    }
}

/// The examples of `docs/errors.md` are fragments; each is tried on its own and inside the
/// sections it could belong to. `--set KEY=VALUE` lines apply to a small clean spec.
fn contexts(fragment: &str) -> Vec<(String, Vec<String>)> {
    let (sets, fragment): (Vec<&str>, Vec<&str>) = fragment.lines().partition(|l| l.starts_with("--set "));
    let sets: Vec<String> = sets.iter().map(|l| l["--set ".len()..].to_string()).collect();
    let fragment = fragment.join("\n");
    let model = "model m {\n  input 64\n  dense 10 softmax\n  loss cross_entropy\n}\n";
    let dropout_model =
        "model m {\n  input 64\n  dense 32 relu\n  dropout 0.5\n  dense 10 softmax\n  loss cross_entropy\n}\n";
    let train = "train {\n  data digits\n  optimizer sgd lr 0.1\n}\n";
    [
        fragment.clone(),
        format!("{fragment}\n{train}"),
        format!("model m {{\n  input 64\n{fragment}\n  dense 10 softmax\n  loss cross_entropy\n}}\n{train}"),
        format!("model m {{\n{fragment}\n}}\n{train}"),
        format!("model m {{\n  input 64\n{fragment}\n}}\n{train}"),
        format!("model m {{\n  input 64\n{fragment}\n  loss cross_entropy\n}}\n{train}"),
        format!("{model}train {{\n  data digits\n{fragment}\n}}\n"),
        format!("{model}train {{\n{fragment}\n}}\n"),
        format!("{dropout_model}train {{\n{fragment}\n}}\n"),
        format!("{model}{train}{fragment}\n"),
    ]
    .into_iter()
    .map(|text| (text, sets.clone()))
    .collect()
}

fn codes_of((text, sets): &(String, Vec<String>)) -> HashSet<&'static str> {
    let mut sources = SourceMap::new();
    let file = sources.add("example.net", text.as_str());
    let mut overrides = Vec::new();
    let mut codes = HashSet::new();
    for set in sets {
        let (key, value) = set.split_once('=').expect("a --set example holds KEY=VALUE");
        let id = sources.add(format!("--set {key}"), value);
        match parse_override(key, id, value) {
            Ok(o) => overrides.push(o),
            Err(d) => {
                codes.insert(d.code.as_str());
            }
        }
    }
    let compiled = netc::compile(&sources, file, &overrides, &LIMITS);
    codes.extend(compiled.diagnostics.iter().map(|d| d.code.as_str()));
    codes
}

/// Every spec code's "Triggers it" example in `docs/errors.md` gives that code (in some
/// context), and its "Fixed" example, in the same context, does not.
#[test]
fn every_documented_example_gives_its_code() {
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md"))
        .expect("docs/errors.md exists");
    let mut failures = Vec::new();
    for code in Code::SPEC {
        let Some((_, section)) = docs.split_once(&format!("## {}", code.as_str())) else {
            continue;
        };
        let section = section.split("\n## ").next().unwrap_or_default();
        // An elided example (`...`) is an illustration, not a spec.
        if section.contains("...") {
            continue;
        }
        let block_after = |marker: &str| {
            let (_, rest) = section.split_once(marker)?;
            let (_, rest) = rest.split_once("```\n")?;
            rest.split_once("```").map(|(block, _)| block.to_string())
        };
        let (Some(trigger), Some(fixed)) = (block_after("Triggers it"), block_after("Fixed")) else {
            failures.push(format!("{}: no `Triggers it` and `Fixed` examples", code.as_str()));
            continue;
        };
        let trigger_contexts = contexts(&trigger);
        let fixed_contexts = contexts(&fixed);
        let triggers: Vec<bool> = trigger_contexts
            .iter()
            .map(|c| codes_of(c).contains(code.as_str()))
            .collect();
        if !triggers.contains(&true) {
            failures.push(format!("{}: the example does not give it:\n{trigger}", code.as_str()));
        } else if !triggers
            .iter()
            .zip(&fixed_contexts)
            .any(|(&triggered, fixed)| triggered && !codes_of(fixed).contains(code.as_str()))
        {
            failures.push(format!("{}: the fixed example still gives it:\n{fixed}", code.as_str()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
