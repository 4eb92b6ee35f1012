//! Where commands write, checked before any work starts: run directories are claimed
//! atomically (two commands never share one, an existing run is never replaced silently), every
//! output file's directory is known to be writable, and no output names one of the command's
//! inputs.

use crate::diag::{Code, Diagnostic};
use crate::ir::{DataConfig, DataSource, FileSet, Validation};
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// A file a command reads or writes, with what the messages call it (`--report`, `the spec`).
#[derive(Debug, Clone)]
pub struct Named {
    /// The path.
    pub path: PathBuf,
    /// What it is, as messages say it: `--report`, `-o`, `the weights`, `the spec`.
    pub what: String,
}

impl Named {
    /// `path`, called `what` in messages.
    pub fn new(path: impl Into<PathBuf>, what: impl Into<String>) -> Named {
        Named {
            path: path.into(),
            what: what.into(),
        }
    }
}

/// Makes `dir` the directory of a new run (or sweep), atomically: it is created, or it exists
/// and is empty, and this process created `marker` in it (`create_new`: of two commands
/// started with the same directory, exactly one gets it). A directory that holds files is
/// refused unless `force`, which first removes the files named in `replaced` (netc's own; any
/// other file stays).
pub fn claim_dir(dir: &Path, marker: &str, force: bool, replaced: &[&str]) -> Result<(), Box<Diagnostic>> {
    let unwritable = |e: std::io::Error| {
        Box::new(
            Diagnostic::general(
                Code::FileUnwritable,
                format!("cannot create the run directory `{}`: {e}", dir.display()),
            )
            .in_file(dir)
            .with_hint("pass a writable directory with --out"),
        )
    };
    if dir.exists() && !dir.is_dir() {
        return Err(Box::new(
            Diagnostic::general(
                Code::BadRunDirectory,
                format!("`{}` is a file, not a directory", dir.display()),
            )
            .in_file(dir)
            .with_hint("pass a new directory with --out"),
        ));
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(unwritable)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            if force {
                crate::fsutil::remove_stale_temps(dir);
                for name in replaced {
                    let _ = std::fs::remove_file(dir.join(name));
                }
            } else {
                refuse_occupied(dir, marker)?;
            }
        }
        Err(e) => return Err(unwritable(e)),
    }
    match OpenOptions::new().write(true).create_new(true).open(dir.join(marker)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && !force => Err(occupied(dir, marker)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unwritable(e)),
    }
}

/// Refuses an existing directory that holds files (other than temporary files of dead netc
/// processes, which are removed): what [`claim_dir`] refuses without `force`, checked early.
pub fn refuse_occupied(dir: &Path, marker: &str) -> Result<(), Box<Diagnostic>> {
    if !dir.is_dir() {
        return Ok(());
    }
    crate::fsutil::remove_stale_temps(dir);
    let empty = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
    if empty { Ok(()) } else { Err(occupied(dir, marker)) }
}

fn occupied(dir: &Path, marker: &str) -> Box<Diagnostic> {
    let holds = if dir.join(crate::run::artifacts::SPEC).exists() {
        "already holds a run"
    } else if dir.join(marker).exists() {
        "already holds netc's results"
    } else {
        "is not empty"
    };
    Box::new(
        Diagnostic::general(
            Code::BadRunDirectory,
            format!("`{}` {holds}; nothing was replaced", dir.display()),
        )
        .in_file(dir)
        .with_hint("pass a new directory with --out, --resume DIR to continue a run there, or --force to replace it"),
    )
}

/// Creates a new directory `base`, or `base-2`, `base-3`, ... if it exists: create-and-check in
/// one step, so two commands started in the same second get two directories.
pub fn unique_dir(base: &Path) -> Result<PathBuf, Box<Diagnostic>> {
    let unwritable = |path: &Path, e: std::io::Error| {
        Box::new(
            Diagnostic::general(
                Code::FileUnwritable,
                format!("cannot create the run directory `{}`: {e}", path.display()),
            )
            .in_file(path)
            .with_hint("pass a writable directory with --out"),
        )
    };
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| unwritable(parent, e))?;
    }
    crate::fsutil::create_unique_dir(base).map_err(|e| unwritable(base, e))
}

/// Checks, before any work, that `output` can be written: it is not a directory, its directory
/// exists (missing ones are made) and a file can be created there (the temporary file
/// `fsutil::write_atomic` needs).
pub fn check_writable(output: &Named) -> Result<(), Box<Diagnostic>> {
    let path = &output.path;
    let refuse = |why: String| {
        Box::new(
            Diagnostic::general(
                Code::FileUnwritable,
                format!("cannot write {} `{}`: {why}", output.what, path.display()),
            )
            .in_file(path)
            .with_hint(format!(
                "name a file in a writable directory for {}; nothing was run",
                output.what
            )),
        )
    };
    if path.is_dir() {
        return Err(refuse("it is a directory".to_string()));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Like `-o`, a report's missing directories are made (so `--report` may point into the run
    // directory `--out` is about to create).
    std::fs::create_dir_all(dir).map_err(|e| refuse(e.to_string()))?;
    let name = path.file_name().map_or("out".into(), |n| n.to_string_lossy());
    let probe = dir.join(format!(".{name}.probe-{}", std::process::id()));
    match OpenOptions::new().write(true).create(true).truncate(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(refuse(e.to_string())),
    }
}

/// Refuses every output that is one of the inputs (the same file, through any path, symlink or
/// hard link): `netc build S --weights model -o model` would replace the weights.
pub fn refuse_overwriting_inputs(outputs: &[Named], inputs: &[Named]) -> Result<(), Box<Diagnostic>> {
    for output in outputs {
        if let Some(input) = inputs.iter().find(|i| same_file(&output.path, &i.path)) {
            return Err(Box::new(
                Diagnostic::general(
                    Code::OutputIsInput,
                    format!(
                        "{} `{}` is {} `{}`: writing it would destroy an input",
                        output.what,
                        output.path.display(),
                        input.what,
                        input.path.display()
                    ),
                )
                .in_file(&output.path)
                .with_hint(format!("choose another path for {}; nothing was written", output.what)),
            ));
        }
    }
    Ok(())
}

/// True when both paths exist and are one file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (ma.dev(), ma.ino()) == (mb.dev(), mb.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

/// The data files a spec's `data` statements read, relative to `base` (the spec's directory).
pub fn data_inputs(config: &DataConfig, base: &Path) -> Vec<Named> {
    let mut sets: Vec<&FileSet> = Vec::new();
    if let DataSource::Files(set) = &config.source {
        sets.push(set);
    }
    if let Validation::Files(set) = &config.validation {
        sets.push(set);
    }
    sets.extend(&config.test);
    let mut out = Vec::new();
    for set in sets {
        out.push(Named::new(base.join(&set.features), "a data file"));
        if let Some(labels) = &set.labels {
            out.push(Named::new(base.join(labels), "a labels file"));
        }
    }
    out
}
