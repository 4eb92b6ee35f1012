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

/// An engine for `run`'s graph with the trained parameters of `weights`, and the data
/// normalization they were trained with.
pub fn trained_engine(
    run: &Run,
    weights: &Path,
    backend: Backend,
) -> Result<(Box<dyn Engine>, Normalization), Box<Diagnostic>> {
    let graph = crate::graph::build(&run.checked);
    let (params, normalization) = crate::run::weights::load_model(&graph, weights)?;
    let mut engine = make_engine(backend, graph, run.program().train.seed)?;
    engine.set_params(&params);
    Ok((engine, normalization))
}

/// Predicts every row of the input.
pub fn predict(run: &Run, options: &PredictOptions) -> Result<Vec<Prediction>, Box<Diagnostic>> {
    let (mut engine, normalization) = trained_engine(run, &options.weights, options.backend)?;
    let input = &options.input;
    let mut features = if input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
            Diagnostic::general(Code::FileUnreadable, format!("cannot read standard input: {e}"))
                .with_hint("pipe CSV rows into netc predict")
        })?;
        crate::data::parse_csv_matrix(&text, "<stdin>")?
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
    Ok(outputs
        .rows()
        .into_iter()
        .map(|r| Prediction {
            class: metrics::predicted_class(r),
            probabilities: metrics::class_probabilities(r),
        })
        .collect())
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
