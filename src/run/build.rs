//! `netc build`: reads the trained weights, makes the inference graph, has the object-file
//! backend compile it, and writes the object, the header and the executable.

use crate::back::aot::{self, Target};
use crate::diag::{Code, Diagnostic};
use crate::ir::Loss;
use crate::passes::inference::inference;
use crate::run::train::Run;
use std::path::{Path, PathBuf};

/// What `netc build` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emit {
    /// The executable.
    pub exe: bool,
    /// The object file.
    pub obj: bool,
    /// The C header.
    pub header: bool,
}

/// What `netc build` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The files written, in order.
    pub files: Vec<PathBuf>,
    /// Warnings about the weights (W0103: trained from a different spec).
    pub warnings: Vec<Diagnostic>,
}

/// Builds the model of `run` (read from `spec`) with the weights at `weights` into `output`
/// (the executable), `output.o` and `output.h`, as `emit` asks. Every output is checked before
/// the work starts: writable, and none of the inputs. The executable and the header report the
/// spec hash stored in the weights (the spec they were trained from), or the spec's own hash for
/// weights that record none.
pub fn build(
    run: &Run,
    spec: &Path,
    weights: &Path,
    output: &Path,
    emit: Emit,
    batch_max: usize,
) -> Result<Built, Box<Diagnostic>> {
    if batch_max == 0 {
        return Err(Box::new(
            Diagnostic::general(Code::BadFlag, "--batch-max must be at least 1").with_hint("e.g. --batch-max 4096"),
        ));
    }
    let symbol = aot::symbol_of(output)?;
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", output.display()));
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            Diagnostic::general(Code::FileUnwritable, format!("cannot create `{}`: {e}", dir.display()))
                .in_file(dir)
                .with_hint("check the -o path")
        })?;
    }
    let mut outputs = Vec::new();
    for (wanted, path) in [
        (emit.exe, output.to_path_buf()),
        (emit.obj, with("o")),
        (emit.header, with("h")),
    ] {
        if wanted {
            outputs.push(crate::run::outputs::Named::new(path, "-o"));
        }
    }
    let inputs = [
        crate::run::outputs::Named::new(weights, "the weights"),
        crate::run::outputs::Named::new(spec, "the spec"),
    ];
    crate::run::outputs::refuse_overwriting_inputs(&outputs, &inputs)?;
    for output in &outputs {
        crate::run::outputs::check_writable(output)?;
    }
    let trained = crate::run::weights::load_model(run, weights)?;
    let normalization = &trained.normalization;
    let folded = inference(
        &trained.graph,
        &trained.params,
        &normalization.shift,
        &normalization.scale,
    );
    let hash = trained.spec_hash.clone().unwrap_or_else(|| run.spec_hash());
    let target = Target {
        symbol: &symbol,
        model_name: &run.program().model.name,
        spec_hash: &hash,
        batch_max,
    };
    let object = aot::compile_object(&folded.graph, &folded.params, &target)?;
    let loss = run.program().model.loss;
    let outputs_are = match loss {
        Loss::CrossEntropy => "class probabilities (softmax)",
        Loss::BinaryCrossEntropy => "probabilities (sigmoid)",
        Loss::Mse => "the output layer's values",
    };
    let header_text = aot::header(&target, &object, outputs_are);
    let write = |path: &Path, bytes: &[u8]| crate::run::write_file(path, bytes, "check the -o path");
    // NAME.o: the generated code with the runtime merged in (by the C compiler).
    let linked = if emit.obj || emit.exe {
        aot::link_object(&target, &object)?
    } else {
        Vec::new()
    };
    let mut written = Vec::new();
    if emit.obj {
        write(&with("o"), &linked)?;
        written.push(with("o"));
    }
    if emit.header {
        write(&with("h"), header_text.as_bytes())?;
        written.push(with("h"));
    }
    if emit.exe {
        let exe = aot::link_executable(&target, &object, &linked, &header_text, loss != Loss::Mse)?;
        write(output, &exe)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(output, std::fs::Permissions::from_mode(0o755));
        }
        written.push(output.to_path_buf());
    }
    Ok(Built {
        files: written,
        warnings: trained.warnings,
    })
}
