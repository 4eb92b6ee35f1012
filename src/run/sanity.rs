//! What training checks in its data before the first step and in its loss at every step: data
//! that does not fit the model (an error), data that cannot teach the model (warnings), and
//! divergence (a non-finite loss or parameter, or a finite loss that explodes).

use crate::back::engine::Engine;
use crate::data::{Dataset, Splits};
use crate::diag::{Code, Diagnostic};
use crate::graph::Graph;
use crate::run::checkpoint::{CHECKPOINT, State};
use std::path::Path;

/// A step's loss this many times above the run's first loss (or above 1, if that is larger)
/// is divergence even while it is finite: cross-entropy at 1,000 puts a probability of
/// e^-1000 on the right class, and mean squared error on one-hot targets starts below 1.
pub const LOSS_GROWTH_LIMIT: f64 = 1e3;

/// Refuses data whose width or labels do not fit the model; `file` names the features file
/// when the data came from one.
pub fn check_data_fits(graph: &Graph, splits: &Splits, file: Option<&str>) -> Result<(), Box<Diagnostic>> {
    let features = splits.train.features.ncols();
    if features != graph.input_width {
        let input = graph.nodes[graph.input].shape;
        let shape = if input.sample().len() > 1 {
            format!(
                "{} ({} values, read row-major)",
                crate::ir::describe_sample(input),
                graph.input_width
            )
        } else {
            format!("{} wide", graph.input_width)
        };
        let from = file.map_or("the data".to_string(), |f| format!("`{f}`"));
        let d = Diagnostic::general(
            Code::DataMismatch,
            format!("{from} has {features} features per sample, but the model's input is {shape}"),
        )
        .with_hint(if input.sample().len() > 1 {
            format!(
                "give {} features per row (channels x height x width), or change `input` to the data's shape",
                graph.input_width
            )
        } else {
            format!("write `input {features}` in the model, or check the data's label column")
        });
        return Err(match file {
            Some(f) => d.in_file(std::path::Path::new(f)),
            None => d,
        }
        .into());
    }
    let width = graph.output_width;
    let check = |d: &Dataset, name: &str| -> Result<(), Box<Diagnostic>> {
        let limit = class_count(width);
        if let Some((row, &label)) = d.labels.iter().enumerate().find(|(_, l)| **l >= limit) {
            return Err(Diagnostic::general(
                Code::DataMismatch,
                format!(
                    "{name} sample {} has label {label}, but the output layer has {width} unit{} (labels 0 to {})",
                    row + 1,
                    if width == 1 { "" } else { "s" },
                    limit - 1
                ),
            )
            .with_hint(format!("give the output layer at least {} units", label + 1))
            .into());
        }
        Ok(())
    };
    check(&splits.train, "training")?;
    if let Some(v) = &splits.validation {
        check(v, "validation")?;
    }
    if let Some(t) = &splits.test {
        check(t, "test")?;
    }
    Ok(())
}

/// The classes an output layer of `width` units tells apart (one sigmoid unit: two).
fn class_count(width: usize) -> usize {
    if width == 1 { 2 } else { width }
}

/// Warnings about training data that cannot teach the model what it is asked to learn: classes
/// no training row has (W0106) and features that never vary (W0107).
pub fn data_warnings(graph: &Graph, splits: &Splits) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let train = &splits.train;
    let classes = class_count(graph.output_width);
    let mut seen = vec![false; classes];
    for &l in &train.labels {
        if let Some(s) = seen.get_mut(l) {
            *s = true;
        }
    }
    let missing: Vec<usize> = (0..classes).filter(|&c| !seen[c]).collect();
    if !missing.is_empty() {
        let listed: Vec<String> = missing.iter().take(10).map(usize::to_string).collect();
        let more = if missing.len() > 10 { ", ..." } else { "" };
        out.push(warning(
            Code::ClassesMissing,
            format!(
                "the {} training rows cover {} of the model's {classes} classes: no row has label {}{more}",
                train.len(),
                classes - missing.len(),
                listed.join(", ")
            ),
            "the model cannot learn a class it never sees: check the label column, or shuffle the \
             data before taking a validation split off its end",
        ));
    }
    let constant = (0..train.features.ncols()).all(|c| {
        let column = train.features.column(c);
        let first = column.first().copied().unwrap_or(0.0);
        column.iter().all(|&v| v == first)
    });
    if constant && train.len() > 1 {
        out.push(warning(
            Code::ConstantFeatures,
            format!(
                "all {} features are constant across the {} training rows: the model can learn only how often each class occurs",
                train.features.ncols(),
                train.len()
            ),
            "check the feature columns of the data file (or its label column setting)",
        ));
    }
    out
}

fn warning(code: Code, message: String, hint: &str) -> Diagnostic {
    Diagnostic::general_warning(code, message).with_hint(hint)
}

/// True when a finite `loss` has grown past [`LOSS_GROWTH_LIMIT`] times the run's first loss.
pub fn loss_exploded(first: f64, loss: f64) -> bool {
    loss > LOSS_GROWTH_LIMIT * first.max(1.0)
}

/// Why training diverged.
pub enum Cause {
    /// The loss was NaN or infinite.
    NonFiniteLoss(f64),
    /// A parameter became NaN or infinite (seen at the end of an epoch).
    NonFiniteParameters,
    /// The loss stayed finite but grew from the first value to the second.
    Exploded(f64, f64),
}

/// E0109, naming where it happened, what is non-finite, a lower learning rate to try, and the
/// last good checkpoint.
pub fn divergence(
    engine: &dyn Engine,
    (epoch, step): (usize, usize),
    cause: Cause,
    lr: f64,
    out_dir: &Path,
    state: &State,
) -> Box<Diagnostic> {
    let culprit = || engine.non_finite_layer().unwrap_or_else(|| "the loss".to_string());
    let what = match cause {
        Cause::NonFiniteLoss(loss) => format!("the loss is {loss}; the first non-finite values are in {}", culprit()),
        Cause::NonFiniteParameters => format!("the parameters of {} are no longer finite", culprit()),
        Cause::Exploded(first, loss) => format!(
            "the loss grew from {first:.4} at the first step to {}, more than {LOSS_GROWTH_LIMIT} times its start",
            short_number(loss)
        ),
    };
    let checkpoint = if state.history.is_empty() {
        "no epoch finished, so no checkpoint was written".to_string()
    } else {
        format!(
            "the last good checkpoint (end of epoch {}) is {}",
            state.history.len(),
            out_dir.join(CHECKPOINT).display()
        )
    };
    let message = format!("training diverged at epoch {}, step {}: {what}", epoch + 1, step + 1);
    let lower = lr / 10.0;
    let hint = if lower > 0.0 && lower.is_finite() {
        format!(
            "lower the learning rate, e.g. `--set train.optimizer.lr={}`; {checkpoint}",
            short_number(lower)
        )
    } else {
        format!("lower the learning rate; {checkpoint}")
    };
    Box::new(Diagnostic::general(Code::Diverged, message).with_hint(hint))
}

/// A number with at most three significant digits, as a user would type it: `1e29`, `2.5e-4`,
/// `0.02`, `300`.
pub fn short_number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let text = format!("{x:.2e}");
    let (mantissa, exponent) = text.split_once('e').expect("`{:e}` always has an exponent");
    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
    let exponent: i32 = exponent.parse().expect("`{:e}` exponents are integers");
    if (-3..=3).contains(&exponent) {
        let value: f64 = format!("{mantissa}e{exponent}")
            .parse()
            .expect("a number we just wrote");
        return format!("{value}");
    }
    format!("{mantissa}e{exponent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_read_as_typed() {
        assert_eq!(short_number(1e30 / 10.0), "1e29");
        assert_eq!(short_number(2e-3 / 10.0), "2e-4");
        assert_eq!(short_number(0.02), "0.02");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(3.14159e-7), "3.14e-7");
        assert_eq!(short_number(4.2e19), "4.2e19");
        assert_eq!(short_number(100.0), "100");
        for x in [1e29, 2e-4, 0.1, 7.5e-9, 1e-300] {
            let back: f64 = short_number(x).parse().expect("parses");
            assert!((back - x).abs() <= x * 1e-2, "{x} -> {back}");
        }
    }

    #[test]
    fn only_a_far_larger_loss_is_an_explosion() {
        assert!(!loss_exploded(2.3, 50.0));
        assert!(!loss_exploded(0.01, 999.0));
        assert!(loss_exploded(2.3, 4e19));
        assert!(loss_exploded(0.5, 1001.0));
    }
}
