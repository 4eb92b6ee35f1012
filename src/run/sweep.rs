//! `netc sweep`: train every combination of `--vary KEY=V1,V2,...` values and tabulate the
//! results, so that each of the lecture's comparisons is one command.

use crate::error::UserError;
use serde::Serialize;

/// One `--vary` option: a `--set` path and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Vary {
    /// The path, as in `--set`.
    pub key: String,
    /// The values, as written.
    pub values: Vec<String>,
}

/// Parses `KEY=V1,V2,...`; commas inside parentheses belong to a value (`step(10, 0.5)`).
pub fn parse_vary(text: &str) -> Result<Vary, UserError> {
    let Some((key, values)) = text.split_once('=') else {
        return Err(UserError::new(format!("`--vary {text}` has no `=`"))
            .hint("write --vary KEY=V1,V2, e.g. --vary model.depth=1,2,3"));
    };
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in values.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    if key.trim().is_empty() || out.iter().any(String::is_empty) {
        return Err(UserError::new(format!("`--vary {text}` has an empty key or value"))
            .hint("write --vary KEY=V1,V2, e.g. --vary train.optimizer=sgd,adam"));
    }
    Ok(Vary {
        key: key.trim().to_string(),
        values: out,
    })
}

/// Every combination, as lists of `KEY=VALUE` settings (the first `--vary` varies slowest).
pub fn combinations(varies: &[Vary]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for v in varies {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                v.values.iter().map(move |value| {
                    let mut p = prefix.clone();
                    p.push(format!("{}={value}", v.key));
                    p
                })
            })
            .collect();
    }
    out
}

/// One trained combination.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SweepRow {
    /// The varied settings, `KEY=VALUE`.
    pub settings: Vec<String>,
    /// Final training accuracy and loss (evaluation mode).
    pub train_accuracy: f64,
    /// Final training loss.
    pub train_loss: f64,
    /// Final validation accuracy, if any.
    pub validation_accuracy: Option<f64>,
    /// Final validation loss.
    pub validation_loss: Option<f64>,
    /// Final test accuracy, if any.
    pub test_accuracy: Option<f64>,
    /// Final test loss.
    pub test_loss: Option<f64>,
    /// Epochs trained.
    pub epochs_run: usize,
    /// The run directory.
    pub run_dir: String,
}

fn cell(v: Option<f64>, percent: bool) -> String {
    match v {
        Some(x) if percent => format!("{:.2}%", x * 100.0),
        Some(x) => format!("{x:.4}"),
        None => "-".to_string(),
    }
}

/// The results as a markdown table, one row per combination.
pub fn markdown(varies: &[Vary], rows: &[SweepRow]) -> String {
    let mut out = String::from("|");
    for v in varies {
        out.push_str(&format!(" {} |", v.key));
    }
    out.push_str(" train acc | val acc | test acc | train loss | val loss | test loss | epochs |\n|");
    out.push_str(&" --- |".repeat(varies.len() + 7));
    out.push('\n');
    for r in rows {
        out.push('|');
        for s in &r.settings {
            out.push_str(&format!(" {} |", s.split_once('=').map_or(s.as_str(), |(_, v)| v)));
        }
        out.push_str(&format!(
            " {} | {} | {} | {} | {} | {} | {} |\n",
            cell(Some(r.train_accuracy), true),
            cell(r.validation_accuracy, true),
            cell(r.test_accuracy, true),
            cell(Some(r.train_loss), false),
            cell(r.validation_loss, false),
            cell(r.test_loss, false),
            r.epochs_run
        ));
    }
    out
}

/// The results as CSV.
pub fn csv(varies: &[Vary], rows: &[SweepRow]) -> String {
    let mut out: String = varies.iter().map(|v| format!("{},", v.key)).collect();
    out.push_str(
        "train_accuracy,validation_accuracy,test_accuracy,train_loss,validation_loss,test_loss,epochs_run,run_dir\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for r in rows {
        for s in &r.settings {
            let value = s.split_once('=').map_or(s.as_str(), |(_, v)| v);
            if value.contains([',', '"']) {
                out.push_str(&format!("\"{}\",", value.replace('"', "\"\"")));
            } else {
                out.push_str(&format!("{value},"));
            }
        }
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.train_accuracy,
            opt(r.validation_accuracy),
            opt(r.test_accuracy),
            r.train_loss,
            opt(r.validation_loss),
            opt(r.test_loss),
            r.epochs_run,
            r.run_dir
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_outside_parentheses() {
        let v = parse_vary("train.optimizer.schedule=step(10, 0.5),exponential(0.9)").expect("parses");
        assert_eq!(v.values, vec!["step(10, 0.5)", "exponential(0.9)"]);
        assert!(parse_vary("nokey").is_err());
        assert!(parse_vary("a=1,,2").is_err());
    }

    #[test]
    fn combinations_are_the_cartesian_product() {
        let a = parse_vary("a=1,2").expect("a");
        let b = parse_vary("b=x,y,z").expect("b");
        let c = combinations(&[a, b]);
        assert_eq!(c.len(), 6);
        assert_eq!(c[0], vec!["a=1", "b=x"]);
        assert_eq!(c[5], vec!["a=2", "b=z"]);
    }
}
