//! `netc eval`: loss, accuracy, per-class precision and recall, the confusion matrix and,
//! optionally, dropout's weight scaling against averaged sampled masks.

use crate::data::DataDirs;
use crate::diag::{Code, Diagnostic};
use crate::report::metrics::{self, ClassFigures, Confusion, DropoutEnsemble};
use crate::run::predict::trained_engine;
use crate::run::train::{Backend, Run};
use serde::Serialize;
use std::path::PathBuf;

/// Which data to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training split.
    Train,
    /// The validation split.
    Validation,
    /// The test split.
    Test,
}

impl Split {
    /// The split's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// What to evaluate, and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The spec the weights were trained from (its directory is where data paths start).
    pub spec: PathBuf,
    /// The weights (`weights.safetensors` of a run).
    pub weights: PathBuf,
    /// Which data.
    pub split: Split,
    /// Also average the outputs over this many sampled dropout masks per row.
    pub dropout_samples: Option<usize>,
    /// Where named data sets are looked for.
    pub data_dirs: DataDirs,
    /// Also write the report (JSON) here.
    pub report: Option<PathBuf>,
    /// The execution backend.
    pub backend: Backend,
}

/// The figures of `netc eval` (`--report` writes them as JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalReport {
    /// `train`, `validation` or `test`.
    pub split: &'static str,
    /// Samples evaluated.
    pub samples: usize,
    /// Mean data loss.
    pub loss: f64,
    /// Accuracy in [0, 1].
    pub accuracy: f64,
    /// Precision and recall per class.
    pub per_class: Vec<ClassFigures>,
    /// The confusion matrix, `confusion[label][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// With `--dropout-samples`: the ensemble against the weight-scaled network.
    pub dropout_ensemble: Option<DropoutEnsemble>,
    /// Warnings about the weights (W0103: trained from a different spec); not in the report.
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
}

/// Evaluates trained weights on one split of the spec's data; writes the report file if asked.
pub fn evaluate(run: &Run, options: &EvalOptions) -> Result<EvalReport, Box<Diagnostic>> {
    if options.dropout_samples.is_some()
        && !run
            .program()
            .model
            .layers
            .values()
            .any(|l| matches!(l.kind, crate::ir::LayerKind::Dropout { .. }))
    {
        return Err(Diagnostic::general(
            Code::BadFlag,
            format!("`{}` has no dropout layer to sample masks of", options.spec.display()),
        )
        .with_hint("--dropout-samples compares dropout's weight scaling with averaging sampled masks; drop the flag")
        .into());
    }
    if let Some(report) = &options.report {
        use crate::run::outputs::{self, Named};
        let report = Named::new(report, "--report");
        outputs::check_writable(&report)?;
        let base = crate::run::spec::spec_dir(&options.spec);
        let mut inputs = outputs::data_inputs(&run.program().train.data, &base);
        inputs.push(Named::new(&options.spec, "the spec"));
        inputs.push(Named::new(&options.weights, "the weights"));
        outputs::refuse_overwriting_inputs(&[report], &inputs)?;
    }
    let crate::run::predict::TrainedEngine {
        mut engine,
        normalization,
        warnings,
    } = trained_engine(run, &options.weights, options.backend)?;
    let splits = crate::data::load_with(
        &run.program().train.data,
        &options.data_dirs,
        &crate::run::spec::spec_dir(&options.spec),
        Some(&normalization),
    )?;
    let name = options.split.name();
    let data = match options.split {
        Split::Train => Some(&splits.train),
        Split::Validation => splits.validation.as_ref(),
        Split::Test => splits.test.as_ref(),
    };
    let data = data.ok_or_else(|| {
        Diagnostic::general(Code::BadFlag, format!("the spec's data has no {name} split")).with_hint(
            match options.split {
                Split::Validation => "add `validation N` to the data statement, or use --split test",
                _ => "give a test file with `test \"...\"`, or use --split train",
            },
        )
    })?;
    if data.features.ncols() != engine.graph().input_width {
        return Err(Diagnostic::general(
            Code::DataMismatch,
            format!(
                "the data has {} features, the model takes {}",
                data.features.ncols(),
                engine.graph().input_width
            ),
        )
        .with_hint("evaluate with the spec the weights were trained from")
        .into());
    }
    let evaluation = metrics::evaluate(engine.as_mut(), data);
    let confusion = Confusion::new(
        &evaluation.predictions,
        &data.labels,
        splits.classes.max(engine.graph().output_width.max(2)),
    );
    let report = EvalReport {
        split: name,
        samples: data.len(),
        loss: evaluation.loss,
        accuracy: evaluation.accuracy,
        per_class: confusion.per_class(),
        dropout_ensemble: options
            .dropout_samples
            .map(|n| metrics::dropout_ensemble(engine.as_mut(), data, n)),
        confusion: confusion.counts,
        warnings,
    };
    if let Some(path) = &options.report {
        let json = serde_json::to_string_pretty(&report).expect("reports serialize");
        crate::run::write_file(path, json.as_bytes(), "check the path")?;
    }
    Ok(report)
}

/// The report as the text `netc eval` prints.
pub fn render(report: &EvalReport) -> String {
    let mut out = format!(
        "{}: {} samples, loss {:.4}, accuracy {:.2}%\n",
        report.split,
        report.samples,
        report.loss,
        report.accuracy * 100.0
    );
    out.push_str("\nclass  precision  recall  support\n");
    for c in &report.per_class {
        out.push_str(&format!(
            "{:>5}  {:>9.4}  {:>6.4}  {:>7}\n",
            c.class, c.precision, c.recall, c.support
        ));
    }
    let confusion = Confusion {
        counts: report.confusion.clone(),
    };
    out.push_str(&format!(
        "\nconfusion matrix (rows: true class, columns: predicted)\n{}\n",
        confusion.render()
    ));
    if let Some(e) = &report.dropout_ensemble {
        out.push_str(&format!(
            "\ndropout as an ensemble ({} sampled masks per row)\n  weight-scaled network: accuracy {:.2}%\n  average of the masks:  accuracy {:.2}%\n  same class on {:.2}% of rows\n  |average - scaled|: mean {:.3e}, largest {:.3e} (mean |output| {:.3e})\n",
            e.samples,
            e.scaled_accuracy * 100.0,
            e.ensemble_accuracy * 100.0,
            e.agreement * 100.0,
            e.mean_abs_difference,
            e.max_abs_difference,
            e.mean_abs_output
        ));
    }
    out
}
