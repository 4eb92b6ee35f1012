//! What `cc` does for `netc build`: the object's runtime (`runtime.c`) compiled and merged into
//! NAME.o ([`link_object`]), and the executable, NAME.o linked with the C driver (`driver.c`,
//! [`link_executable`]).

use super::{Object, Target};
use crate::diag::{Code, Diagnostic};
use std::path::{Path, PathBuf};

/// The runtime of the object: the helper thread of `NAME_netc_pair`.
const RUNTIME: &str = include_str!("runtime.c");

/// The C driver of the executable (compiled with the generated header).
const DRIVER: &str = include_str!("driver.c");

/// Bytes of stack the runtime's helper thread gets beyond the object's stack buffer (the
/// kernels' frames are a few hundred bytes).
const HELPER_STACK_MARGIN: usize = 256 << 10;

/// A temporary directory of its own (never one that exists: another build's, or planted in
/// /tmp), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(symbol: &str) -> Result<Scratch, Box<Diagnostic>> {
        let base = std::env::temp_dir().join(format!("netc-build-{}-{}", std::process::id(), symbol));
        crate::fsutil::create_unique_dir(&base).map(Scratch).map_err(|e| {
            Box::new(
                Diagnostic::general(
                    Code::FileUnwritable,
                    format!("cannot create a temporary directory: {e}"),
                )
                .with_hint("check $TMPDIR"),
            )
        })
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Box<Diagnostic>> {
        std::fs::write(self.0.join(name), bytes).map_err(|e| Box::new(io(e)))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, Box<Diagnostic>> {
        std::fs::read(self.0.join(name)).map_err(|e| Box::new(io(e)))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io(e: std::io::Error) -> Diagnostic {
    Diagnostic::general(Code::FileUnwritable, format!("cannot write a temporary file: {e}")).with_hint("check $TMPDIR")
}

/// `$CC`, or `cc`.
fn compiler() -> String {
    std::env::var("CC")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "cc".to_string())
}

/// Runs the C compiler in `dir` with `args`; `what` says what it was making.
fn run_cc(dir: &Path, args: &[&str], what: &str) -> Result<(), Box<Diagnostic>> {
    let cc = compiler();
    let out = std::process::Command::new(&cc)
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| {
            Diagnostic::general(Code::Unsupported, format!("cannot run the C compiler `{cc}`: {e}"))
                .with_hint("install a C compiler (e.g. `apt-get install gcc`) or set $CC")
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Box::new(
        Diagnostic::general(
            Code::Unsupported,
            format!("`{cc}` failed to {what}:\n{}", String::from_utf8_lossy(&out.stderr)),
        )
        .with_hint("check that $CC is a working C compiler"),
    ))
}

/// NAME.o: the generated code (`object.bytes`) with the runtime compiled by `$CC` (default
/// `cc`) and merged in (`cc -r`), so that the one object is all a C program links (with
/// `-lpthread`). The same inputs and compiler give the same bytes.
pub fn link_object(target: &Target, object: &Object) -> Result<Vec<u8>, Box<Diagnostic>> {
    let symbol = target.symbol;
    let dir = Scratch::new(symbol)?;
    dir.write("kernels.o", &object.bytes)?;
    dir.write("runtime.c", RUNTIME.as_bytes())?;
    let stack = (object.stack_bytes + HELPER_STACK_MARGIN).div_ceil(64 << 10) * (64 << 10);
    let pair = format!("-DNETC_PAIR={symbol}_netc_pair");
    let stack = format!("-DNETC_HELPER_STACK={stack}");
    run_cc(
        &dir.0,
        &[
            "-O2",
            "-std=c99",
            "-fPIC",
            &pair,
            &stack,
            "-c",
            "-o",
            "runtime.o",
            "runtime.c",
        ],
        "compile the model's runtime",
    )?;
    run_cc(
        &dir.0,
        &["-r", "-nostdlib", "-o", "model.o", "kernels.o", "runtime.o"],
        "merge the model's runtime into its object",
    )?;
    dir.read("model.o")
}

/// Links NAME.o (`object_bytes`, from [`link_object`]; its C API `header_text` declares) with
/// the driver by `$CC` (default `cc`) in a temporary directory, and returns the executable's
/// bytes. `probabilities` says whether output rows are class probabilities (the driver then
/// prints the class first).
pub fn link_executable(
    target: &Target,
    object: &Object,
    object_bytes: &[u8],
    header_text: &str,
    probabilities: bool,
) -> Result<Vec<u8>, Box<Diagnostic>> {
    let symbol = target.symbol;
    let dir = Scratch::new(symbol)?;
    dir.write("model.o", object_bytes)?;
    dir.write("model.h", header_text.as_bytes())?;
    let prelude = format!(
        "#define _POSIX_C_SOURCE 200809L\n#include \"model.h\"\n#define MODEL_PREDICT {symbol}_predict\n#define MODEL_NAME {symbol}_model_name\n#define MODEL_HASH {symbol}_spec_hash\n#define MODEL_INPUT_WIDTH {input}\n#define MODEL_INPUT_SHAPE \"{shape}\"\n#define MODEL_OUTPUT_WIDTH {output}\n#define MODEL_BATCH_MAX {upper}_BATCH_MAX\n#define MODEL_PROBABILITIES {loss}\n#define MODEL_PROGRAM \"{program}\"\n",
        input = object.input_width,
        shape = match object.input_image {
            Some((c, h, w)) => format!(" ({c}x{h}x{w} images: channel, then row, then column)"),
            None => String::new(),
        },
        output = object.output_width,
        upper = symbol.to_ascii_uppercase(),
        loss = u8::from(probabilities),
        program = symbol,
    );
    dir.write("main.c", format!("{prelude}{DRIVER}").as_bytes())?;
    run_cc(
        &dir.0,
        &[
            "-O2",
            "-std=c99",
            "-o",
            "model",
            "main.c",
            "model.o",
            "-lm",
            "-lpthread",
        ],
        "link the executable",
    )?;
    dir.read("model")
}
