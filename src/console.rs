//! Standard output and standard error, with the failures handled in one place.
//!
//! `println!` panics when a write fails (exit 101), and a `print!` whose error is ignored turns a
//! full disk into a truncated result with exit 0. Every line netc prints goes through [`out`] or
//! [`err`] instead:
//! - a closed pipe (`netc predict ... | head`) ends the process quietly with status 141, as a
//!   program killed by `SIGPIPE` would (`cat`, `yes`): never 0, since the output is incomplete;
//! - any other failure on standard output (`> /dev/full`, a full disk) is reported on standard
//!   error as E0102 and exits 1;
//! - a closed standard output (`>&-`) is E0102 with exit 1 at the first write;
//! - a failure on standard error itself cannot be reported anywhere: the text is dropped and the
//!   command goes on to its own exit status.

use std::fmt;
use std::io::{ErrorKind, Write};

/// The exit status after a closed pipe (128 + SIGPIPE).
pub const BROKEN_PIPE_STATUS: i32 = 141;

/// Writes to standard output (flushed, so a failure is seen at the line that caused it).
pub fn out(args: fmt::Arguments) {
    refuse_closed_stdout();
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        fail_stdout(&e);
    }
}

/// Writes bytes to standard output, flushed.
pub fn out_bytes(bytes: &[u8]) {
    refuse_closed_stdout();
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        fail_stdout(&e);
    }
}

/// Writes to standard error; a failure there is dropped (there is nowhere left to report it),
/// except a closed pipe, which ends the process as on standard output.
pub fn err(args: fmt::Arguments) {
    let mut stderr = std::io::stderr().lock();
    if let Err(e) = stderr.write_fmt(args).and_then(|()| stderr.flush())
        && e.kind() == ErrorKind::BrokenPipe
    {
        std::process::exit(BROKEN_PIPE_STATUS);
    }
}

/// A closed standard output (`netc predict ... >&-`) looks like success: Rust's runtime opens
/// `/dev/null` on a standard descriptor that is closed at start-up, so every write "works" and
/// the result is lost with exit 0. It opens it for reading and writing, which a shell's
/// `> /dev/null` never does: that is how it is told apart (where `/proc` says; elsewhere
/// nothing is refused). Checked once, at the first write.
fn refuse_closed_stdout() {
    static CLOSED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let closed = *CLOSED.get_or_init(|| {
        let target = std::fs::read_link("/proc/self/fd/1");
        let flags = std::fs::read_to_string("/proc/self/fdinfo/1").ok().and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("flags:"))?.to_string();
            u32::from_str_radix(line.trim_start_matches("flags:").trim(), 8).ok()
        });
        const ACCESS_MODE: u32 = 0o3;
        const READ_WRITE: u32 = 0o2;
        target.is_ok_and(|t| t == std::path::Path::new("/dev/null"))
            && flags.is_some_and(|f| f & ACCESS_MODE == READ_WRITE)
    });
    if closed {
        let _ = writeln!(
            std::io::stderr(),
            "error[E0102]: cannot write to standard output: it is closed\n  = help: nothing would be kept; redirect it to a file, or to /dev/null to discard it"
        );
        std::process::exit(1);
    }
}

fn fail_stdout(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_STATUS);
    }
    let _ = writeln!(
        std::io::stderr(),
        "error[E0102]: cannot write to standard output: {e}\n  = help: the output is incomplete; check the disk or the file standard output goes to"
    );
    std::process::exit(1);
}

/// `println!` through [`out`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::console::out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` through [`out`].
#[macro_export]
macro_rules! outp {
    ($($arg:tt)*) => { $crate::console::out(format_args!($($arg)*)) };
}

/// `eprintln!` through [`err`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::console::err(format_args!("{}\n", format_args!($($arg)*))) };
}
