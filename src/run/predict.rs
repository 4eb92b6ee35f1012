//! `netc predict`: classes and class probabilities for rows of features, from trained weights.

use crate::back::engine::Engine;
use crate::data::Normalization;
use crate::diag::{Code, Diagnostic};
use crate::report::metrics;
use crate::run::train::{Backend, Run, make_engine};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to predict with and for.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// The weights (`weights.safetensors` of a run).
    pub weights: PathBuf,
    /// The rows: CSV, IDX or NPY; `-` reads CSV from standard input.
    pub input: PathBuf,
    /// The execution backend.
    pub backend: Backend,
}

/// One row's prediction.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    /// The predicted class.
    pub class: usize,
    /// The probability of every class.
    pub probabilities: Vec<f32>,
}

/// An engine with trained parameters.
pub struct TrainedEngine {
    /// The engine, its parameters set.
    pub engine: Box<dyn Engine>,
    /// The data normalization the parameters were trained with.
    pub normalization: Normalization,
    /// The loader's warnings about the weights (W0103).
    pub warnings: Vec<Diagnostic>,
}

/// An engine for `run`'s graph with the trained parameters of `weights`, the data
/// normalization they were trained with, and the loader's warnings about them.
pub fn trained_engine(run: &Run, weights: &Path, backend: Backend) -> Result<TrainedEngine, Box<Diagnostic>> {
    let trained = crate::run::weights::load_model(run, weights)?;
    let mut engine = make_engine(backend, trained.graph, run.program().train.seed)?;
    engine.set_params(&trained.params);
    Ok(TrainedEngine {
        engine,
        normalization: trained.normalization,
        warnings: trained.warnings,
    })
}

/// What `netc predict` found: one prediction per row, and warnings about the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// One per input row, in order.
    pub rows: Vec<Prediction>,
    /// Warnings (W0103: weights trained from a different spec).
    pub warnings: Vec<Diagnostic>,
}

/// Predicts every row of the input.
pub fn predict(run: &Run, options: &PredictOptions) -> Result<Predictions, Box<Diagnostic>> {
    let TrainedEngine {
        mut engine,
        normalization,
        warnings,
    } = trained_engine(run, &options.weights, options.backend)?;
    let input = &options.input;
    let mut features = if input.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map_err(|e| {
            Diagnostic::general(Code::FileUnreadable, format!("cannot read standard input: {e}"))
                .with_hint("pipe CSV rows into netc predict")
        })?;
        crate::data::parse_csv_matrix_bytes(&bytes, "<stdin>")?
    } else {
        crate::data::read_matrix(input)?
    };
    let width = engine.graph().input_width;
    if features.ncols() != width {
        let hint = if features.ncols() == width + 1 {
            "the rows have one column too many: remove the label column".to_string()
        } else {
            format!("give {width} numbers per row")
        };
        return Err(Diagnostic::general(
            Code::DataMismatch,
            format!(
                "`{}` has {} values per row, but the model takes {width}",
                input.display(),
                features.ncols()
            ),
        )
        .in_file(input)
        .with_hint(hint)
        .into());
    }
    normalization.apply(&mut features);
    let outputs = metrics::outputs(engine.as_mut(), &features);
    let rows = outputs
        .rows()
        .into_iter()
        .map(|r| Prediction {
            class: metrics::predicted_class(r),
            probabilities: metrics::class_probabilities(r),
        })
        .collect();
    Ok(Predictions { rows, warnings })
}

/// One line per row: the class, then the probabilities with six decimals.
pub fn render_text(predictions: &[Prediction]) -> String {
    let mut out = String::new();
    for p in predictions {
        let cells: Vec<String> = p.probabilities.iter().map(|p| format!("{p:.6}")).collect();
        out.push_str(&format!("{} {}\n", p.class, cells.join(" ")));
    }
    out
}

/// One JSON array of `{"class": ..., "probabilities": [...]}` objects, on one line.
pub fn render_json(predictions: &[Prediction]) -> String {
    // Through a JSON value, as netc always has: probabilities print as the f64 of each f32.
    let value = serde_json::to_value(predictions).expect("predictions serialize");
    format!("{}\n", serde_json::to_string(&value).expect("values serialize"))
}
