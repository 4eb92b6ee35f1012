//! The `netc` command line: parses flags and calls the library.

use clap::{Parser, Subcommand, ValueEnum};
use netc::back::engine::Engine;
use netc::check::Limits;
use netc::data::DataDirs;
use netc::diag::source::SourceMap;
use netc::diag::{self, Diagnostic, Format};
use netc::error::UserError;
use netc::report::metrics;
use netc::run::train::{Outcome, Progress, TrainOptions};
use netc::{LoadError, graph};
use std::io::{IsTerminal, Write};
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
    Train {
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
        /// The run directory (default runs/<model>-<timestamp>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the final report (JSON) here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Continue an interrupted run from its directory.
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
    },
    /// Evaluate trained weights: loss, accuracy, per-class precision/recall, confusion matrix.
    Eval {
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
    },
    /// Measure training speed: compile time, per-layer forward/backward time, a step, epochs.
    Bench {
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
    },
    /// Compile trained weights into an object file, a C header and a standalone executable.
    Build {
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
    },
    /// Train every combination of --vary values and tabulate train/validation/test results.
    Sweep {
        /// The spec.
        spec: PathBuf,
        /// A path as in --set and its values: KEY=V1,V2,... (repeatable; all combinations run).
        #[arg(long = "vary", value_name = "KEY=V1,V2", required = true)]
        varies: Vec<String>,
        #[command(flatten)]
        common: Common,
        /// Directory for the runs and the sweep's table and plot (default runs/sweep-<model>-<time>/).
        #[arg(long)]
        out: Option<PathBuf>,
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
    Predict {
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
    },
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

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum PredictFormat {
    Text,
    Json,
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

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Backend {
    /// Cranelift-compiled fused kernels, gemm matrix products (the fast path).
    Jit,
    /// The ndarray reference interpreter (the oracle).
    Interp,
}

impl From<Backend> for netc::run::train::Backend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Interp => netc::run::train::Backend::Interp,
            Backend::Jit => netc::run::train::Backend::Jit,
        }
    }
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
        Command::Train {
            spec,
            common,
            epochs,
            seed,
            out,
            report,
            resume,
            backend,
            quiet,
            grad_stats,
        } => {
            let mut sets = common.sets;
            if let Some(e) = epochs {
                sets.push(format!("train.epochs={e}"));
            }
            if let Some(s) = seed {
                sets.push(format!("train.seed={s}"));
            }
            train(
                &spec,
                &sets,
                common.data_dir,
                out,
                report,
                resume,
                quiet,
                backend,
                grad_stats,
            )
        }
        Command::Eval {
            spec,
            weights,
            split,
            report,
            dropout_samples,
            common,
            backend,
        } => exit(eval(
            &spec,
            common,
            &weights,
            split,
            dropout_samples.map(|n| n as usize),
            report.as_deref(),
            backend,
        )),
        Command::Bench {
            spec,
            backend,
            batch,
            samples,
            repeats,
            report,
        } => exit(bench(&spec, batch, samples, repeats, report.as_deref(), backend)),
        Command::Build {
            spec,
            weights,
            output,
            emit,
            batch_max,
            sets,
        } => exit(build(&spec, &sets, &weights, &output, &emit, batch_max)),
        Command::Sweep {
            spec,
            varies,
            common,
            out,
            report,
            epochs,
            backend,
        } => exit(sweep(&spec, &varies, common, out, report.as_deref(), epochs, backend)),
        Command::Diagnose { run_dir, format } => match netc::run::diagnose::diagnose(&run_dir) {
            Ok(findings) => {
                if format == PredictFormat::Json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&findings).expect("findings serialize")
                    );
                } else {
                    println!("diagnosis of {}:", run_dir.display());
                    print!("{}", netc::run::diagnose::render(&findings));
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Predict {
            spec,
            weights,
            input,
            format,
            sets,
            backend,
        } => exit(predict(&spec, &sets, &weights, &input, format, backend)),
    }
}

fn exit(result: Result<(), ExitCode>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn fail(e: UserError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(1)
}

/// Loads and checks a spec; prints its warnings, or its errors and returns exit code 1.
fn load(spec: &Path, sets: &[String]) -> Result<netc::run::train::Run, ExitCode> {
    let mut sources = SourceMap::new();
    match netc::load_spec(spec, sets, &mut sources) {
        Ok((run, warnings)) => {
            diag::emit_human(&sources, &warnings);
            Ok(run)
        }
        Err(LoadError::User(e)) => Err(fail(e)),
        Err(LoadError::Diagnostics(d)) => {
            diag::emit_human(&sources, &d);
            let (errors, warnings) = diag::count(&d);
            eprintln!(
                "error: `{}` has {errors} error(s) and {warnings} warning(s); nothing was run",
                spec.display()
            );
            Err(ExitCode::from(1))
        }
    }
}

fn spec_dir(spec: &Path) -> PathBuf {
    spec.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

#[allow(clippy::too_many_arguments)]
fn train(
    spec: &Path,
    sets: &[String],
    data_dir: Option<PathBuf>,
    out: Option<PathBuf>,
    report: Option<PathBuf>,
    resume: Option<PathBuf>,
    quiet: bool,
    backend: Backend,
    grad_stats: bool,
) -> ExitCode {
    let run = match load(spec, sets) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    // First Ctrl-C: finish the step and checkpoint. Second: leave at once (files are atomic).
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: finishing the current step and saving a checkpoint (Ctrl-C again to quit now)");
    });
    let progress = if quiet {
        Progress::Quiet
    } else if std::io::stderr().is_terminal() {
        Progress::Bar
    } else {
        Progress::Lines
    };
    let graph = graph::build(&run.checked);
    if !quiet {
        println!(
            "training {} ({} parameters) with {} on the {} backend",
            run.program().model.name,
            graph.parameter_count(),
            run.program().train.optimizer.kind.name(),
            netc::run::train::Backend::from(backend).name()
        );
    }
    let options = TrainOptions {
        data_dirs: DataDirs { flag: data_dir },
        spec_dir: spec_dir(spec),
        out,
        resume,
        report,
        progress,
        interrupt,
        stop_after_steps: None,
        grad_stats,
        backend: backend.into(),
    };
    match netc::run::train::train(&run, &options) {
        Ok(Outcome::Finished { out_dir, report, .. }) => {
            if !quiet {
                let fig = |name: &str, f: Option<metrics::Figures>| match f {
                    Some(f) => format!("{name} loss {:.4} accuracy {:.2}%", f.loss, f.accuracy * 100.0),
                    None => format!("{name}: none"),
                };
                println!("{}", fig("train", Some(report.train)));
                println!("{}", fig("validation", report.validation));
                println!("{}", fig("test", report.test));
                println!(
                    "{} epochs ({}), {:.0} samples/s, {:.1}s; run directory: {}",
                    report.epochs_run,
                    report.stop_reason,
                    report.samples_per_second,
                    report.wall_seconds,
                    out_dir.display()
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Outcome::Interrupted { out_dir, epoch, step }) => {
            eprintln!(
                "stopped at epoch {epoch}, step {step}; checkpoint saved. Continue with:\n  netc train {} --resume {}",
                spec.display(),
                out_dir.display()
            );
            ExitCode::from(130)
        }
        Err(e) => fail(e),
    }
}

/// A model with loaded weights, and the data normalization they were trained with.
fn trained(
    run: &netc::run::train::Run,
    weights: &Path,
    backend: Backend,
) -> Result<(Box<dyn Engine>, netc::data::Normalization), ExitCode> {
    let graph = graph::build(&run.checked);
    let (params, normalization) = netc::run::weights::load_model(&graph, weights).map_err(fail)?;
    let mut engine = netc::run::train::make_engine(backend.into(), graph, run.program().train.seed).map_err(fail)?;
    engine.set_params(&params);
    Ok((engine, normalization))
}

fn eval(
    spec: &Path,
    common: Common,
    weights: &Path,
    split: Split,
    dropout_samples: Option<usize>,
    report: Option<&Path>,
    backend: Backend,
) -> Result<(), ExitCode> {
    let run = load(spec, &common.sets)?;
    if dropout_samples.is_some()
        && !run
            .program()
            .model
            .layers
            .values()
            .any(|l| matches!(l.kind, netc::ir::LayerKind::Dropout { .. }))
    {
        return Err(fail(
            UserError::new(format!("`{}` has no dropout layer to sample masks of", spec.display())).hint(
                "--dropout-samples compares dropout's weight scaling with averaging sampled masks; drop the flag",
            ),
        ));
    }
    let (mut engine, normalization) = trained(&run, weights, backend)?;
    let splits = netc::data::load_with(
        &run.program().train.data,
        &DataDirs { flag: common.data_dir },
        &spec_dir(spec),
        Some(&normalization),
    )
    .map_err(fail)?;
    let (name, data) = match split {
        Split::Train => ("train", Some(&splits.train)),
        Split::Val => ("validation", splits.validation.as_ref()),
        Split::Test => ("test", splits.test.as_ref()),
    };
    let data = data.ok_or_else(|| {
        fail(
            UserError::new(format!("the spec's data has no {name} split")).hint(match split {
                Split::Val => "add `validation N` to the data statement, or use --split test",
                _ => "give a test file with `test \"...\"`, or use --split train",
            }),
        )
    })?;
    if data.features.ncols() != engine.graph().input_width {
        return Err(fail(
            UserError::new(format!(
                "the data has {} features, the model takes {}",
                data.features.ncols(),
                engine.graph().input_width
            ))
            .hint("evaluate with the spec the weights were trained from"),
        ));
    }
    let evaluation = metrics::evaluate(engine.as_mut(), data);
    let confusion = metrics::Confusion::new(
        &evaluation.predictions,
        &data.labels,
        splits.classes.max(engine.graph().output_width.max(2)),
    );
    let per_class = confusion.per_class();
    println!(
        "{name}: {} samples, loss {:.4}, accuracy {:.2}%",
        data.len(),
        evaluation.loss,
        evaluation.accuracy * 100.0
    );
    println!("\nclass  precision  recall  support");
    for c in &per_class {
        println!(
            "{:>5}  {:>9.4}  {:>6.4}  {:>7}",
            c.class, c.precision, c.recall, c.support
        );
    }
    println!(
        "\nconfusion matrix (rows: true class, columns: predicted)\n{}",
        confusion.render()
    );
    let ensemble = dropout_samples.map(|n| netc::report::metrics::dropout_ensemble(engine.as_mut(), data, n));
    if let Some(e) = &ensemble {
        println!(
            "\ndropout as an ensemble ({} sampled masks per row)\n  weight-scaled network: accuracy {:.2}%\n  average of the masks:  accuracy {:.2}%\n  same class on {:.2}% of rows\n  |average - scaled|: mean {:.3e}, largest {:.3e} (mean |output| {:.3e})",
            e.samples,
            e.scaled_accuracy * 100.0,
            e.ensemble_accuracy * 100.0,
            e.agreement * 100.0,
            e.mean_abs_difference,
            e.max_abs_difference,
            e.mean_abs_output
        );
    }
    if let Some(path) = report {
        let json = serde_json::json!({
            "split": name,
            "samples": data.len(),
            "loss": evaluation.loss,
            "accuracy": evaluation.accuracy,
            "per_class": per_class,
            "confusion": confusion.counts,
            "dropout_ensemble": ensemble,
        });
        netc::fsutil::write_atomic(
            path,
            serde_json::to_string_pretty(&json).expect("serializes").as_bytes(),
        )
        .map_err(|e| fail(UserError::new(format!("cannot write `{}`: {e}", path.display())).hint("check the path")))?;
    }
    Ok(())
}

fn build(
    spec: &Path,
    sets: &[String],
    weights: &Path,
    output: &Path,
    emit: &[EmitKind],
    batch_max: usize,
) -> Result<(), ExitCode> {
    let run = load(spec, sets)?;
    let emit = netc::run::build::Emit {
        exe: emit.contains(&EmitKind::Exe),
        obj: emit.contains(&EmitKind::Obj),
        header: emit.contains(&EmitKind::Header),
    };
    let written = netc::run::build::build(&run, weights, output, emit, batch_max).map_err(fail)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn sweep(
    spec: &Path,
    varies: &[String],
    common: Common,
    out: Option<PathBuf>,
    report: Option<&Path>,
    epochs: Option<u64>,
    backend: Backend,
) -> Result<(), ExitCode> {
    let varies: Vec<netc::run::sweep::Vary> = varies
        .iter()
        .map(|v| netc::run::sweep::parse_vary(v))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    let mut base = common.sets.clone();
    if let Some(e) = epochs {
        base.push(format!("train.epochs={e}"));
    }
    // Check every combination before training any.
    let combinations = netc::run::sweep::combinations(&varies);
    let mut runs = Vec::new();
    for settings in &combinations {
        let sets: Vec<String> = base.iter().cloned().chain(settings.iter().cloned()).collect();
        let mut sources = SourceMap::new();
        match netc::load_spec(spec, &sets, &mut sources) {
            Ok((run, _)) => runs.push(run),
            Err(LoadError::User(e)) => return Err(fail(e)),
            Err(LoadError::Diagnostics(d)) => {
                diag::emit_human(&sources, &d);
                return Err(fail(
                    UserError::new(format!(
                        "the combination {} is not a valid spec; nothing was trained",
                        settings.join(" ")
                    ))
                    .hint("fix the --vary values"),
                ));
            }
        }
    }
    let model = runs
        .first()
        .map_or("model".to_string(), |r| r.program().model.name.clone());
    let out = out.unwrap_or_else(|| {
        let d = netc::run::train::default_run_dir(&model);
        d.with_file_name(format!(
            "sweep-{}",
            d.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ))
    });
    let mut rows = Vec::new();
    let mut engines = netc::run::train::Engines::default();
    for (i, (run, settings)) in runs.iter().zip(&combinations).enumerate() {
        let name: String = settings
            .iter()
            .map(|s| s.rsplit('.').next().unwrap_or(s).replace(['(', ')', ' ', ','], "_"))
            .collect::<Vec<_>>()
            .join("-");
        let dir = out.join(format!("{:02}-{name}", i + 1));
        eprintln!("[{}/{}] {}", i + 1, runs.len(), settings.join(" "));
        let options = TrainOptions {
            data_dirs: DataDirs {
                flag: common.data_dir.clone(),
            },
            spec_dir: spec_dir(spec),
            out: Some(dir.clone()),
            resume: None,
            report: None,
            progress: Progress::Quiet,
            interrupt: Arc::new(AtomicBool::new(false)),
            stop_after_steps: None,
            grad_stats: false,
            backend: backend.into(),
        };
        match netc::run::train::train_with(run, &options, &mut engines).map_err(fail)? {
            Outcome::Finished { report, .. } => rows.push(netc::run::sweep::SweepRow {
                settings: settings.clone(),
                train_accuracy: report.train.accuracy,
                train_loss: report.train.loss,
                validation_accuracy: report.validation.map(|f| f.accuracy),
                validation_loss: report.validation.map(|f| f.loss),
                test_accuracy: report.test.map(|f| f.accuracy),
                test_loss: report.test.map(|f| f.loss),
                epochs_run: report.epochs_run,
                run_dir: dir.display().to_string(),
            }),
            Outcome::Interrupted { .. } => return Err(ExitCode::from(130)),
        }
    }
    eprintln!(
        "{} runs, {} compiled network{}{}",
        rows.len(),
        engines.built,
        if engines.built == 1 { "" } else { "s" },
        if engines.reused > 0 {
            " (the other runs reused their kernels: only training settings differed)"
        } else {
            ""
        }
    );
    let table = netc::run::sweep::markdown(&varies, &rows);
    print!("{table}");
    let write = |path: &Path, text: &str| {
        netc::fsutil::write_atomic(path, text.as_bytes())
            .map_err(|e| fail(UserError::new(format!("cannot write `{}`: {e}", path.display())).hint("check the path")))
    };
    let json = serde_json::to_string_pretty(&rows).expect("rows serialize");
    let csv = netc::run::sweep::csv(&varies, &rows);
    write(&out.join("sweep.md"), &table)?;
    write(&out.join("sweep.json"), &json)?;
    write(&out.join("sweep.csv"), &csv)?;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            r.settings
                .iter()
                .map(|s| s.split_once('=').map_or(s.as_str(), |(_, v)| v))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let series = [
        ("train", rows.iter().map(|r| Some(r.train_accuracy)).collect()),
        ("validation", rows.iter().map(|r| r.validation_accuracy).collect()),
        ("test", rows.iter().map(|r| r.test_accuracy).collect()),
    ];
    let title = format!(
        "{model}: {}",
        varies.iter().map(|v| v.key.as_str()).collect::<Vec<_>>().join(" x ")
    );
    write(
        &out.join("sweep.svg"),
        &netc::report::plot::sweep_svg(&title, &labels, &series),
    )?;
    if let Some(path) = report {
        let is_json = path.extension().is_some_and(|e| e == "json");
        write(path, if is_json { &json } else { &csv })?;
    }
    eprintln!("sweep results: {}", out.display());
    Ok(())
}

fn bench(
    spec: &Path,
    batch: Option<usize>,
    samples: usize,
    repeats: usize,
    report: Option<&Path>,
    backend: Backend,
) -> Result<(), ExitCode> {
    let text = read(spec)?;
    if batch == Some(0) || samples == 0 {
        return Err(fail(
            UserError::new("--batch and --samples must be at least 1").hint("e.g. --batch 128 --samples 60000"),
        ));
    }
    let options = netc::run::bench::BenchOptions {
        batch,
        samples,
        repeats,
        ..Default::default()
    };
    let result = match netc::run::bench::bench(&text, &options, backend.into()) {
        Ok(r) => r,
        Err(rendered) => {
            eprint!("{rendered}");
            return Err(fail(
                UserError::new(format!("`{}` has errors; nothing was measured", spec.display()))
                    .hint("run `netc check` on it"),
            ));
        }
    };
    print!("{}", netc::run::bench::render(&result));
    if let Some(path) = report {
        netc::fsutil::write_atomic(
            path,
            serde_json::to_string_pretty(&result).expect("serializes").as_bytes(),
        )
        .map_err(|e| fail(UserError::new(format!("cannot write `{}`: {e}", path.display())).hint("check the path")))?;
    }
    Ok(())
}

fn predict(
    spec: &Path,
    sets: &[String],
    weights: &Path,
    input: &Path,
    format: PredictFormat,
    backend: Backend,
) -> Result<(), ExitCode> {
    let run = load(spec, sets)?;
    let (mut engine, normalization) = trained(&run, weights, backend)?;
    let mut features = if input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
            fail(UserError::new(format!("cannot read standard input: {e}")).hint("pipe CSV rows into netc predict"))
        })?;
        netc::data::parse_csv_matrix(&text, "<stdin>").map_err(fail)?
    } else {
        netc::data::read_matrix(input).map_err(fail)?
    };
    let width = engine.graph().input_width;
    if features.ncols() != width {
        let hint = if features.ncols() == width + 1 {
            "the rows have one column too many: remove the label column".to_string()
        } else {
            format!("give {width} numbers per row")
        };
        return Err(fail(
            UserError::new(format!(
                "`{}` has {} values per row, but the model takes {width}",
                input.display(),
                features.ncols()
            ))
            .hint(hint),
        ));
    }
    normalization.apply(&mut features);
    let outputs = metrics::outputs(engine.as_mut(), &features);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let rows: Vec<(usize, Vec<f32>)> = outputs
        .rows()
        .into_iter()
        .map(|r| (metrics::predicted_class(r), metrics::class_probabilities(r)))
        .collect();
    let written = match format {
        PredictFormat::Text => rows.iter().try_for_each(|(class, probs)| {
            let cells: Vec<String> = probs.iter().map(|p| format!("{p:.6}")).collect();
            writeln!(out, "{class} {}", cells.join(" "))
        }),
        PredictFormat::Json => {
            let json: Vec<_> = rows
                .iter()
                .map(|(c, p)| serde_json::json!({"class": c, "probabilities": p}))
                .collect();
            writeln!(out, "{}", serde_json::to_string(&json).expect("serializes"))
        }
    };
    // A closed pipe (e.g. `| head`) is not an error of netc's.
    let _ = written.and_then(|()| out.flush());
    Ok(())
}

/// Reads a file, reporting failure the same way for every command.
fn read(path: &Path) -> Result<String, ExitCode> {
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
    match netc::read_spec(path) {
        Ok(text) => Ok(text),
        Err(LoadError::User(e)) => Err(fail(e)),
        Err(LoadError::Diagnostics(_)) => Err(ExitCode::from(1)),
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
        if summary && let Some(checked) = &compiled.checked {
            summaries.push(netc::check::summary(checked));
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
        let (tree, errors) = netc::front::syntax::parse(id, &text);
        if !errors.is_empty() {
            diag::emit_human(&sources, &errors);
            eprintln!(
                "error: `{}` has syntax errors; fix them before formatting",
                path.display()
            );
            failed = true;
            continue;
        }
        let formatted = netc::front::fmt::format_file(&tree, &text);
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
