//! The object-file backend of `netc build`: an inference graph as an object file, a C header
//! and an executable.
//!
//! [`compile_object`] takes the graph [`crate::passes::inference`] makes (normalization and
//! test-time dropout already folded into the parameters) and its fusion plan, and compiles
//! each step with the JIT's kernel library (`crate::back::kernels`, written against
//! `cranelift_module::Module`) into a `cranelift_object::ObjectModule`. Parameters become
//! read-only data in the object; convolutions, pooling and concatenation are kernels of their
//! own (`window.rs`). `NAME_predict` runs the steps on chunks of up to [`CHUNK_ROWS`] rows, with
//! the values of a chunk in regions of one stack buffer ([`memory`]), so the generated code
//! needs no allocator, no libc and no Rust runtime, and is safe to call from several threads.
//! Large steps (or batches) are split between two cores through `NAME_netc_pair`, the one
//! function of the shipped runtime (`runtime.c`), which [`link_object`] compiles and merges
//! into NAME.o: NAME.o needs the system's threads and nothing else. [`header`] writes its C
//! API; [`link_executable`] links NAME.o with the C driver (`driver.c`).

mod link;
pub mod memory;
mod object;
mod window;

pub use link::{link_executable, link_object};
pub use object::{Object, compile_object};

use crate::diag::{Code, Diagnostic};
use std::path::Path;

/// The most rows computed together inside `predict`.
pub const CHUNK_ROWS: usize = 16;

/// Bytes of stack `predict` may use for a chunk: models whose values for [`CHUNK_ROWS`] rows
/// need more (convolutional networks on large images) compute fewer rows at a time, down to
/// one, so that threads with small stacks (Rust's default is 2 MiB) can call them. The header
/// states the amount.
pub const STACK_BUDGET: usize = 1 << 20;

/// Return codes of the generated C API.
pub const OK: i32 = 0;
/// A null pointer was passed.
pub const ERROR_NULL: i32 = 1;
/// More rows than `--batch-max`.
pub const ERROR_ROWS: i32 = 2;

/// What a compiled model is called and promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The C identifier every exported symbol starts with (`NAME_predict`, ...).
    pub symbol: &'a str,
    /// The model's name as written in its spec.
    pub model_name: &'a str,
    /// A hash of the spec text and `--set` options the weights were trained with.
    pub spec_hash: &'a str,
    /// The most rows one call of `NAME_predict` accepts.
    pub batch_max: usize,
}

/// The C header of a compiled model; `outputs_are` says what an output row holds.
pub fn header(target: &Target, object: &Object, outputs_are: &str) -> String {
    let symbol = target.symbol;
    let upper = symbol.to_ascii_uppercase();
    format!(
        r#"/* {symbol}.h: the C API of the model `{name}`, compiled by netc {version}.
 *
 * Link with {symbol}.o and the system's threads (-lpthread); no other library is needed.
 * Every function is thread-safe: the model's weights are read-only and scratch memory is on
 * the caller's stack (about {stack} KiB). {symbol}_predict uses a second core: a helper
 * thread, started by the first call, runs half of each large step (or of a large batch); it
 * sleeps when the calls stop. When another thread's call is using it, a call runs alone, with
 * the same results.
 */
#ifndef {upper}_H
#define {upper}_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {{
#endif

{input_comment}
#define {upper}_INPUT_WIDTH {input}
/* Values written per row: {outputs_are}. */
#define {upper}_OUTPUT_WIDTH {output}
/* The most rows one call accepts. */
#define {upper}_BATCH_MAX {batch_max}

/* Return codes of {symbol}_predict. */
#define {upper}_OK 0
#define {upper}_ERROR_NULL 1  /* inputs or outputs is NULL */
#define {upper}_ERROR_ROWS 2  /* rows > {upper}_BATCH_MAX */

/* Computes the model's outputs for `rows` rows of {upper}_INPUT_WIDTH floats at `inputs`
 * (row-major) into `outputs`, which must hold rows * {upper}_OUTPUT_WIDTH floats.
 * Returns {upper}_OK, or an error code without touching `outputs`. */
int {symbol}_predict(const float *inputs, size_t rows, float *outputs);

/* The model's name as written in its spec ("{name}"). */
const char *{symbol}_model_name(void);

/* A hash of the spec text and --set options the weights were trained with ("{hash}"). */
const char *{symbol}_spec_hash(void);

#ifdef __cplusplus
}}
#endif

#endif
"#,
        name = target.model_name,
        version = env!("CARGO_PKG_VERSION"),
        stack = object.stack_bytes.div_ceil(1024),
        input = object.input_width,
        input_comment = match object.input_image {
            Some((c, h, w)) => format!(
                "/* Features per input row: a {c}x{h}x{w} image (channels x height x width), row-major:\n * channel, then row, then column (PyTorch's NCHW). Apply no normalization: it is\n * compiled in. */"
            ),
            None => "/* Features per input row (apply no normalization: it is compiled in). */".to_string(),
        },
        output = object.output_width,
        batch_max = target.batch_max,
        hash = target.spec_hash,
    )
}

/// A C identifier from a path's file name.
pub fn symbol_of(output: &Path) -> Result<String, Box<Diagnostic>> {
    let stem = output
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let valid = !stem.is_empty()
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !stem.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(stem)
    } else {
        Err(Box::new(
            Diagnostic::general(Code::BadFlag, format!("`{}` cannot name a C symbol", output.display()))
                .with_hint("use -o with a name of letters, digits and underscores, e.g. -o build/mnist_mlp"),
        ))
    }
}
