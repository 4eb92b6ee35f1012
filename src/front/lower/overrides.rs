//! `--set` overrides: taking them where the spec names their path, and reporting the unused ones.

use super::*;

impl<'t> Lowerer<'t> {
    pub(super) fn take_override(&mut self, path: &str) -> Option<Value> {
        self.known_paths.insert(path.to_string());
        let index = self.overrides.iter().rposition(|o| o.path == path)?;
        self.used_overrides[index] = true;
        Some(self.overrides[index].value.clone())
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
