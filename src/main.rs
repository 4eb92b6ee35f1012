//! The `netc` command line: parses flags and calls the library.

use clap::{Parser, Subcommand, ValueEnum};
use netc::check::Limits;
use netc::diag::{self, Diagnostic, Format};
use netc::source::SourceMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "netc", version, about = "Compile neural networks described as text", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs for errors and the lecture's warnings, without training.
    Check {
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = FormatArg::Human)]
        format: FormatArg,
        /// Exit 1 on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Print a table of layers, output widths and parameter counts.
        #[arg(long)]
        summary: bool,
        /// Spec files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Rewrite specs in the canonical layout (`-` formats stdin to stdout).
    Fmt {
        /// Change nothing; exit 1 and name the files that would change.
        #[arg(long)]
        check: bool,
        /// Spec files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Human,
    Json,
    Github,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            format,
            deny_warnings,
            summary,
            files,
        } => check(files, format, deny_warnings, summary),
        Command::Fmt { check, files } => fmt(files, check),
    }
}

/// Reads a file, reporting failure the same way for every command.
fn read(path: &PathBuf) -> Result<String, ExitCode> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        return match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            Ok(_) => Ok(text),
            Err(e) => {
                eprintln!("error: cannot read standard input: {e}");
                Err(ExitCode::from(1))
            }
        };
    }
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
            eprintln!(
                "error: `{}` is not UTF-8 text (invalid byte at offset {})\n  = help: save the spec as UTF-8",
                path.display(),
                e.utf8_error().valid_up_to()
            );
            ExitCode::from(1)
        }),
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}\n  = help: check the path", path.display());
            Err(ExitCode::from(1))
        }
    }
}

fn check(files: Vec<PathBuf>, format: FormatArg, deny_warnings: bool, summary: bool) -> ExitCode {
    let limits = Limits::of_this_machine();
    let mut sources = SourceMap::new();
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut unreadable = false;
    let mut summaries = Vec::new();
    for path in &files {
        let Ok(text) = read(path) else {
            unreadable = true;
            continue;
        };
        let id = sources.add(path.display().to_string(), text);
        let compiled = netc::compile(&sources, id, &[], &limits);
        if summary && let Some((program, _)) = &compiled.program {
            summaries.push(netc::check::summary(program));
        }
        all.extend(compiled.diagnostics);
    }
    let (errors, warnings) = diag::count(&all);
    let format = match format {
        FormatArg::Human => Format::Human,
        FormatArg::Json => Format::Json,
        FormatArg::Github => Format::Github,
    };
    match format {
        Format::Human => {
            diag::emit_human(&sources, &all);
            for s in &summaries {
                println!("{s}");
            }
            if errors + warnings > 0 {
                eprintln!("{}", totals(errors, warnings, files.len()));
            }
        }
        Format::Json => {
            let json =
                serde_json::to_string_pretty(&diag::to_json(&sources, &all)).expect("diagnostics always serialize");
            println!("{json}");
        }
        Format::Github => print!("{}", diag::render_github(&sources, &all)),
    }
    if unreadable || errors > 0 || (deny_warnings && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn totals(errors: usize, warnings: usize, files: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "checked {}: {}, {}",
        plural(files, "file"),
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

fn fmt(files: Vec<PathBuf>, check: bool) -> ExitCode {
    let mut failed = false;
    let mut would_change = Vec::new();
    for path in &files {
        let Ok(text) = read(path) else {
            failed = true;
            continue;
        };
        let mut sources = SourceMap::new();
        let id = sources.add(path.display().to_string(), text.clone());
        let (tree, errors) = netc::syntax::parse(id, &text);
        if !errors.is_empty() {
            diag::emit_human(&sources, &errors);
            eprintln!(
                "error: `{}` has syntax errors; fix them before formatting",
                path.display()
            );
            failed = true;
            continue;
        }
        let formatted = netc::fmt::format_file(&tree, &text);
        if path.as_os_str() == "-" {
            print!("{formatted}");
            continue;
        }
        if formatted == text {
            continue;
        }
        if check {
            would_change.push(path.display().to_string());
        } else if let Err(e) = netc::fsutil::write_atomic(path, formatted.as_bytes()) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            failed = true;
        }
    }
    for f in &would_change {
        println!("would reformat: {f}");
    }
    if failed || !would_change.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
