//! `--set` overrides: taking them where the spec names their path, and reporting the unused ones.

use super::*;

impl<'t> Lowerer<'t> {
    pub(super) fn take_override(&mut self, path: &str) -> Option<Value> {
        self.known_paths.insert(path.to_string());
        let index = self.overrides.iter().rposition(|o| o.path == path)?;
        self.used_overrides[index] = true;
        Some(self.overrides[index].value.clone())
    }

    /// The same path given twice (`--set a=1 --set a=2`) is an error pointing at both values;
    /// the earlier one is then not also reported as naming nothing.
    pub(super) fn report_duplicate_overrides(&mut self) {
        for (i, later) in self.overrides.iter().enumerate() {
            if let Some(j) = self.overrides[..i].iter().rposition(|o| o.path == later.path) {
                self.used_overrides[j] = true;
                self.diagnostics.push(duplicate_override(
                    &later.path,
                    later.value.span,
                    self.overrides[j].value.span,
                ));
            }
        }
    }

    /// Takes the override of a statement's first value, which two paths name (`model.h1` and
    /// `model.h1.width`): both given is an error pointing at both.
    pub(super) fn take_either_override(&mut self, by_name: &str, by_statement: &str) -> Option<Value> {
        let named = self.take_override(by_name);
        let whole = self.take_override(by_statement);
        match (named, whole) {
            (Some(named), Some(whole)) => {
                self.diagnostics.push(
                    duplicate_override(by_name, named.span, whole.span)
                        .with_note(format!("`{by_statement}` and `{by_name}` are the same setting")),
                );
                Some(named)
            }
            (named, whole) => named.or(whole),
        }
    }

    pub(super) fn report_unused_overrides(&mut self) {
        let mut known: Vec<&str> = self.known_paths.iter().map(String::as_str).collect();
        known.sort_unstable();
        let mut new = Vec::new();
        for (o, used) in self.overrides.iter().zip(&self.used_overrides) {
            if *used {
                continue;
            }
            let mut d = Diagnostic::error(
                Code::BadOverride,
                o.value.span,
                format!("`--set {}` names nothing in this spec", o.path),
            )
            .with_label("no setting has this path");
            d.hint = Some(match did_you_mean(&o.path, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "paths look like `train.optimizer.lr`, `train.batch`, `model.h1.width` or `model.CONSTANT`"
                    .to_string(),
            });
            new.push(d);
        }
        self.diagnostics.extend(new);
    }
}

fn duplicate_override(path: &str, later: Span, earlier: Span) -> Diagnostic {
    Diagnostic::error(Code::Duplicate, later, format!("`{path}` is set twice"))
        .with_label("set here")
        .with_secondary(earlier, "and here")
        .with_hint(format!("give `--set {path}=...` once"))
}
