//! The executable: the object and its header linked with the C driver (`driver.c`) by `cc`.

use super::{Object, Target};
use crate::diag::{Code, Diagnostic};

/// The C driver of the executable (compiled with the generated header).
const DRIVER: &str = include_str!("driver.c");

/// Links `object` (whose C API `header_text` declares) with the driver by `$CC` (default `cc`)
/// in a temporary directory, and returns the executable's bytes. `probabilities` says whether
/// output rows are class probabilities (the driver then prints the class first).
pub fn link_executable(
    target: &Target,
    object: &Object,
    header_text: &str,
    probabilities: bool,
) -> Result<Vec<u8>, Box<Diagnostic>> {
    let symbol = target.symbol;
    let cc = std::env::var("CC")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "cc".to_string());
    // A directory of its own (never one that exists: another build's, or planted in /tmp).
    let base = std::env::temp_dir().join(format!("netc-build-{}-{}", std::process::id(), symbol));
    let dir = crate::fsutil::create_unique_dir(&base).map_err(|e| {
        Diagnostic::general(
            Code::FileUnwritable,
            format!("cannot create a temporary directory: {e}"),
        )
        .with_hint("check $TMPDIR")
    })?;
    let io = |e: std::io::Error| {
        Diagnostic::general(Code::FileUnwritable, format!("cannot write a temporary file: {e}"))
            .with_hint("check $TMPDIR")
    };
    std::fs::write(dir.join("model.o"), &object.bytes).map_err(io)?;
    std::fs::write(dir.join("model.h"), header_text).map_err(io)?;
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
    std::fs::write(dir.join("main.c"), format!("{prelude}{DRIVER}")).map_err(io)?;
    let result = std::process::Command::new(&cc)
        .current_dir(&dir)
        .args(["-O2", "-std=c99", "-o", "model", "main.c", "model.o", "-lm"])
        .output();
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Box::new(
                Diagnostic::general(Code::Unsupported, format!("cannot run the C compiler `{cc}`: {e}"))
                    .with_hint("install a C compiler (e.g. `apt-get install gcc`), set $CC, or use --emit obj,header"),
            ));
        }
    };
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(Box::new(
            Diagnostic::general(
                Code::Unsupported,
                format!(
                    "`{cc}` failed to link the executable:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
            .with_hint("check that $CC is a working C compiler"),
        ));
    }
    let bytes = std::fs::read(dir.join("model")).map_err(|e| Box::new(io(e)));
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}
