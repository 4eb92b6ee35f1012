//! Where weights came from: the spec hash and the canonical model description that `netc train`
//! stores in a weights file's metadata, and the warning when weights are used with another spec
//! whose shapes happen to fit.

use crate::diag::{Code, Diagnostic};
use crate::ir::{Program, Source};
use crate::run::train::Run;
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata key of [`Run::spec_hash`] in weights files.
pub const SPEC_HASH: &str = "netc.spec_hash";

/// Metadata key of [`model_description`] in weights files (written since netc 0.1 of
/// 2026-12; older files have only the hash).
pub const MODEL_DESCRIPTION: &str = "netc.model_description";

/// What the model computes, one line per fact (input width, each layer with what it reads and
/// every setting that changes its output, the loss), independent of comments, layout,
/// initializers and training settings: equal descriptions mean the weights mean the same.
pub fn model_description(program: &Program) -> String {
    let model = &program.model;
    let input: Vec<String> = model.input.iter().map(|d| d.to_string()).collect();
    let mut lines = vec![format!("input {}", input.join(" "))];
    for layer in model.layers.values() {
        let reads: Vec<&str> = layer
            .inputs
            .iter()
            .map(|s| match s {
                Source::Input => "input",
                Source::Layer(h) => model.layers[*h].name.as_str(),
            })
            .collect();
        let kind = layer.describe();
        lines.push(format!("{} <- {}: {kind}", layer.name, reads.join(", ")));
    }
    lines.push(format!("loss {}", model.loss.name()));
    lines.join("\n")
}

/// The provenance metadata `netc train` writes with the weights of `run`.
pub fn metadata(run: &Run) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    meta.insert(SPEC_HASH.to_string(), run.spec_hash());
    meta.insert(MODEL_DESCRIPTION.to_string(), model_description(run.program()));
    meta
}

/// A warning (W0103) when the weights at `path` were trained from a spec other than `run`'s:
/// naming the lines of the model description that differ when the file stores one, the two
/// hashes otherwise. No warning for files without provenance (written by other tools) or
/// when only comments or training settings changed (the descriptions are equal).
pub fn compare(meta: &BTreeMap<String, String>, run: &Run, path: &Path) -> Option<Diagnostic> {
    let stored_hash = meta.get(SPEC_HASH)?;
    let hash = run.spec_hash();
    if *stored_hash == hash {
        return None;
    }
    let hint =
        "use the spec (and the --set values) these weights were trained from; its copy is the run directory's spec.net";
    let message = match meta.get(MODEL_DESCRIPTION) {
        Some(stored) => {
            let here = model_description(run.program());
            if *stored == here {
                return None;
            }
            let there: Vec<&str> = stored.lines().collect();
            let now: Vec<&str> = here.lines().collect();
            let differences: Vec<String> = (0..there.len().max(now.len()))
                .filter(|&i| there.get(i) != now.get(i))
                .take(3)
                .map(|i| {
                    let side = |l: Option<&&str>| {
                        l.map_or("(nothing)".to_string(), |l| format!("`{}`", crate::diag::shown(l)))
                    };
                    format!(
                        "{} in the weights, {} in this spec",
                        side(there.get(i)),
                        side(now.get(i))
                    )
                })
                .collect();
            format!(
                "`{}` was trained from a different model: {}",
                path.display(),
                differences.join("; ")
            )
        }
        None => format!(
            "`{}` was trained from a different spec (hash {}, this spec's is {hash}); the file does not say how they differ",
            path.display(),
            crate::diag::shown(stored_hash)
        ),
    };
    Some(
        Diagnostic::general_warning(Code::WeightsOfAnotherSpec, message)
            .in_file(path)
            .with_hint(hint),
    )
}
