//! The `netc` command line: flags to an options value, the library call, the diagnostics
//! rendered, the exit code. Everything worth testing lives in the library (`netc::run`).

use clap::{Parser, Subcommand, ValueEnum};
use netc::data::DataDirs;
use netc::diag::{self, Failure, Format};
use netc::run;
use netc::run::spec::Loaded;
use netc::run::train::{Outcome, Progress, TrainOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Train a spec; write weights, metrics and curves to a run directory.
    Train(TrainArgs),
    /// Evaluate trained weights: loss, accuracy, per-class precision/recall, confusion matrix.
    Eval(EvalArgs),
    /// Measure training speed: compile time, per-layer forward/backward time, a step, epochs.
    Bench(BenchArgs),
    /// Compile trained weights into an object file, a C header and a standalone executable.
    Build(BuildArgs),
    /// Train every combination of --vary values and tabulate train/validation/test results.
    Sweep {
        /// The spec.
        spec: PathBuf,
        /// A path as in --set and its values: KEY=V1,V2,... (repeatable; all combinations run).
        #[arg(long = "vary", value_name = "KEY=V1,V2", required = true)]
        varies: Vec<String>,
        #[command(flatten)]
        common: Common,
        /// Directory for the runs and the sweep's table and plot (default runs/sweep-<model>-<time>/);
        /// it must be new or empty.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the sweep (and its runs) in a non-empty --out directory.
        #[arg(long, requires = "out")]
        force: bool,
        /// Also write the results here (.json or .csv; anything else gets CSV).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Override the number of epochs of every run.
        #[arg(long)]
        epochs: Option<u64>,
        /// The execution backend.
        #[arg(long, value_enum, default_value_t = Backend::Jit)]
        backend: Backend,
    },
    /// Apply the lecture's procedure to a finished run: poor training results or overfitting?
    Diagnose {
        /// A run directory written by `netc train`.
        run_dir: PathBuf,
        /// Output form.
        #[arg(long, value_enum, default_value_t = PredictFormat::Text)]
        format: PredictFormat,
    },
    /// Predict classes for rows of features (CSV, IDX or NPY; `-` reads CSV from stdin).
    Predict(PredictArgs),
}

#[derive(clap::Args)]
struct TrainArgs {
    /// The spec.
    spec: PathBuf,
    #[command(flatten)]
    common: Common,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<u64>,
    /// Override the seed.
    #[arg(long)]
    seed: Option<u64>,
    /// The run directory (default runs/<model>-<timestamp>/); it must be new or empty.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the run in a non-empty --out directory (its netc files are removed first).
    #[arg(long, conflicts_with = "resume", requires = "out")]
    force: bool,
    /// Also write the final report (JSON) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Continue an interrupted run from its directory (a larger --epochs extends it).
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// The execution backend.
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Record per-layer mean |gradient| and update/weight ratios per epoch (metrics.csv,
    /// gradients.svg).
    #[arg(long)]
    grad_stats: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The spec the weights were trained from.
    spec: PathBuf,
    /// The weights (weights.safetensors of a run).
    #[arg(long)]
    weights: PathBuf,
    /// Which data to evaluate on.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Also write the figures (JSON) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Also average the outputs over N sampled dropout masks per row and compare them with
    /// the weight-scaled network (dropout as an implicit ensemble).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    dropout_samples: Option<u32>,
    #[command(flatten)]
    common: Common,
    /// The execution backend.
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The spec.
    spec: PathBuf,
    /// The execution backend.
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
    /// Batch size (default: the spec's).
    #[arg(long)]
    batch: Option<usize>,
    /// Samples per synthetic epoch.
    #[arg(long, default_value_t = 60_000)]
    samples: usize,
    /// Timed epochs after one warm-up epoch (the best counts); 0 times steps only.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Also write the figures (JSON) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Override any spec value, as KEY=VALUE (as when training).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(clap::Args)]
struct BuildArgs {
    /// The spec the weights were trained from.
    spec: PathBuf,
    /// The weights (weights.safetensors of a run).
    #[arg(long)]
    weights: PathBuf,
    /// Output path without extension: writes NAME, NAME.o and NAME.h.
    #[arg(short = 'o', long = "output", value_name = "NAME")]
    output: PathBuf,
    /// What to write, comma-separated: exe, obj, header.
    #[arg(long, value_delimiter = ',', default_value = "exe,obj,header")]
    emit: Vec<EmitKind>,
    /// The most rows one call of NAME_predict accepts.
    #[arg(long, default_value_t = 65_536)]
    batch_max: usize,
    /// Override any spec value, as KEY=VALUE (as when training).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// The spec the weights were trained from.
    spec: PathBuf,
    /// The weights (weights.safetensors of a run).
    #[arg(long)]
    weights: PathBuf,
    /// The input rows.
    input: PathBuf,
    /// Output form: one line per row (class, then probabilities), or a JSON array.
    #[arg(long, value_enum, default_value_t = PredictFormat::Text)]
    format: PredictFormat,
    /// Override any spec value, as KEY=VALUE.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The execution backend.
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
}

#[derive(clap::Args)]
struct Common {
    /// Where named data sets (mnist) are looked for: DIR/mnist/.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Override any spec value, as KEY=VALUE (e.g. train.optimizer.lr=0.01, model.h1.width=512).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Human,
    Json,
    Github,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Human => Format::Human,
            FormatArg::Json => Format::Json,
            FormatArg::Github => Format::Github,
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum PredictFormat {
    Text,
    Json,
}

impl From<PredictFormat> for Format {
    fn from(f: PredictFormat) -> Format {
        match f {
            PredictFormat::Text => Format::Human,
            PredictFormat::Json => Format::Json,
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum EmitKind {
    Exe,
    Obj,
    Header,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Split {
    Train,
    Val,
    Test,
}

impl From<Split> for run::eval::Split {
    fn from(s: Split) -> Self {
        match s {
            Split::Train => run::eval::Split::Train,
            Split::Val => run::eval::Split::Validation,
            Split::Test => run::eval::Split::Test,
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Backend {
    /// Cranelift-compiled fused kernels, gemm matrix products (the fast path).
    Jit,
    /// The ndarray reference interpreter (the oracle).
    Interp,
}

impl From<Backend> for run::train::Backend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Interp => run::train::Backend::Interp,
            Backend::Jit => run::train::Backend::Jit,
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check {
            format,
            deny_warnings,
            summary,
            files,
        } => check(&files, format.into(), deny_warnings, summary),
        Command::Fmt { check, files } => fmt(&files, check),
        Command::Train(args) => exit(Format::Human, train(args)),
        Command::Eval(args) => exit(Format::Human, eval(args)),
        Command::Bench(args) => exit(Format::Human, bench(args)),
        Command::Build(args) => exit(Format::Human, build(args)),
        Command::Sweep {
            spec,
            varies,
            common,
            out,
            force,
            report,
            epochs,
            backend,
        } => exit(
            Format::Human,
            sweep(run::sweep::SweepOptions {
                spec,
                varies,
                sets: common.sets,
                epochs,
                data_dirs: DataDirs { flag: common.data_dir },
                out,
                force,
                interrupt: interrupt_flag(),
                report,
                backend: backend.into(),
            }),
        ),
        Command::Diagnose { run_dir, format } => exit(format.into(), diagnose(&run_dir, format)),
        Command::Predict(args) => exit(args.format.into(), predict(args)),
    }
}

fn eval(args: EvalArgs) -> Result<ExitCode, Failure> {
    let EvalArgs {
        spec,
        weights,
        split,
        report,
        dropout_samples,
        common,
        backend,
    } = args;
    let loaded = load(&spec, &common.sets)?;
    let options = run::eval::EvalOptions {
        weights,
        split: split.into(),
        dropout_samples: dropout_samples.map(|n| n as usize),
        data_dirs: DataDirs { flag: common.data_dir },
        report,
        backend: backend.into(),
        spec,
    };
    let report = run::eval::evaluate(&loaded.run, &options)?;
    diag::emit_human(&loaded.sources, &report.warnings);
    netc::outp!("{}", run::eval::render(&report));
    Ok(ExitCode::SUCCESS)
}

fn bench(args: BenchArgs) -> Result<ExitCode, Failure> {
    let BenchArgs {
        spec,
        backend,
        batch,
        samples,
        repeats,
        report,
        sets,
    } = args;
    let options = run::bench::BenchOptions {
        batch,
        samples,
        repeats,
        report,
        spec: Some(spec.clone()),
        ..Default::default()
    };
    options.check()?;
    let loaded = load(&spec, &sets)?;
    let report = run::bench::bench(&loaded, &options, backend.into())?;
    netc::outp!("{}", run::bench::render(&report));
    Ok(ExitCode::SUCCESS)
}

fn build(args: BuildArgs) -> Result<ExitCode, Failure> {
    let BuildArgs {
        spec,
        weights,
        output,
        emit,
        batch_max,
        sets,
    } = args;
    let loaded = load(&spec, &sets)?;
    let emit = netc::run::build::Emit {
        exe: emit.contains(&EmitKind::Exe),
        obj: emit.contains(&EmitKind::Obj),
        header: emit.contains(&EmitKind::Header),
    };
    let built = netc::run::build::build(&loaded.run, &spec, &weights, &output, emit, batch_max)?;
    diag::emit_human(&loaded.sources, &built.warnings);
    for path in &built.files {
        netc::outln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn diagnose(run_dir: &Path, format: PredictFormat) -> Result<ExitCode, Failure> {
    let findings = run::diagnose::diagnose(run_dir)?;
    if format == PredictFormat::Json {
        netc::outln!(
            "{}",
            serde_json::to_string_pretty(&findings).expect("findings serialize")
        );
    } else {
        netc::outln!("diagnosis of {}:", run_dir.display());
        netc::outp!("{}", run::diagnose::render(&findings));
    }
    Ok(ExitCode::SUCCESS)
}

fn predict(args: PredictArgs) -> Result<ExitCode, Failure> {
    let PredictArgs {
        spec,
        weights,
        input,
        format,
        sets,
        backend,
    } = args;
    let loaded = load(&spec, &sets)?;
    let options = run::predict::PredictOptions {
        weights,
        input,
        backend: backend.into(),
    };
    let predictions = run::predict::predict(&loaded.run, &options)?;
    diag::emit_human(&loaded.sources, &predictions.warnings);
    let text = match format {
        PredictFormat::Text => run::predict::render_text(&predictions.rows),
        PredictFormat::Json => run::predict::render_json(&predictions.rows),
    };
    netc::console::out_bytes(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// The exit code of a command; a failure is printed in `format` first and exits 1.
fn exit(format: Format, result: Result<ExitCode, Failure>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(failure) => {
            diag::emit_failure(format, &failure);
            ExitCode::from(1)
        }
    }
}

/// Loads and checks a spec and prints its warnings.
fn load(spec: &Path, sets: &[String]) -> Result<Loaded, Failure> {
    let loaded = run::spec::load_spec(spec, sets)?;
    diag::emit_human(&loaded.sources, &loaded.warnings);
    Ok(loaded)
}

fn train(args: TrainArgs) -> Result<ExitCode, Failure> {
    let TrainArgs {
        spec,
        common,
        epochs,
        seed,
        out,
        force,
        report,
        resume,
        backend,
        quiet,
        grad_stats,
    } = args;
    let mut sets = common.sets;
    sets.extend(epochs.map(|e| format!("train.epochs={e}")));
    sets.extend(seed.map(|s| format!("train.seed={s}")));
    let loaded = load(&spec, &sets)?;
    let interrupt = interrupt_flag();
    let progress = if quiet {
        Progress::Quiet
    } else if std::io::stderr().is_terminal() {
        Progress::Bar
    } else {
        Progress::Lines
    };
    if !quiet {
        netc::outln!("{}", run::train::banner(&loaded.run, backend.into()));
    }
    let options = TrainOptions {
        data_dirs: DataDirs { flag: common.data_dir },
        spec_dir: run::spec::spec_dir(&spec),
        out,
        force,
        spec: Some(spec.clone()),
        resume,
        report,
        progress,
        interrupt,
        stop_after_steps: None,
        grad_stats,
        backend: backend.into(),
    };
    match run::train::train(&loaded.run, &options)? {
        Outcome::Finished { out_dir, report, .. } => {
            if !quiet {
                netc::outp!("{}", run::train::render_report(&report, &out_dir));
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Interrupted { out_dir, epoch, step } => {
            netc::errln!(
                "stopped at epoch {epoch}, step {step}; checkpoint saved. Continue with:\n  netc train {} --resume {}",
                spec.display(),
                out_dir.display()
            );
            Ok(ExitCode::from(130))
        }
    }
}

/// The flag Ctrl-C, SIGTERM and SIGHUP set (`timeout`, `docker stop` and batch schedulers send
/// the latter two): the first finishes the step and checkpoints; the second leaves at once
/// (files are atomic).
fn interrupt_flag() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        netc::errln!("\ninterrupted: finishing the current step and saving a checkpoint (interrupt again to quit now)");
    });
    interrupt
}

fn sweep(options: run::sweep::SweepOptions) -> Result<ExitCode, Failure> {
    match run::sweep::sweep(&options)? {
        run::sweep::SweepOutcome::Finished(results) => {
            netc::errln!("{}", results.compiled_line());
            netc::outp!("{}", results.table);
            netc::errln!("sweep results: {}", results.out_dir.display());
            Ok(ExitCode::SUCCESS)
        }
        run::sweep::SweepOutcome::Interrupted(results) => {
            netc::outp!("{}", results.table);
            netc::errln!(
                "sweep interrupted after {} of its runs; the table of those is in {}",
                results.rows.len(),
                results.out_dir.display()
            );
            Ok(ExitCode::from(130))
        }
    }
}

fn check(files: &[PathBuf], format: Format, deny_warnings: bool, summary: bool) -> ExitCode {
    let report = run::check::check_files(files, &run::limits::of_this_machine(), summary);
    diag::emit(format, &report.sources, &report.diagnostics);
    if format == Format::Human {
        for s in &report.summaries {
            netc::outln!("{s}");
        }
        if let Some(totals) = report.totals() {
            netc::errln!("{totals}");
        }
    }
    if report.failed(deny_warnings) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn fmt(files: &[PathBuf], check: bool) -> ExitCode {
    let report = run::format::format_files(files, check);
    netc::outp!("{}", report.stdout);
    for failure in &report.failures {
        diag::emit_failure(Format::Human, failure);
    }
    for f in &report.would_change {
        netc::outln!("would reformat: {f}");
    }
    if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
