//! Constants: scopes, lookup, substitution into values, unused-constant warnings.

use super::*;

impl<'t> Lowerer<'t> {
    pub(super) fn lookup(&mut self, name: &str) -> Option<(Value, Span)> {
        for scope in self.scopes.iter_mut().rev() {
            if let Some(c) = scope.get_mut(name) {
                c.used = true;
                return Some((c.value.clone(), c.defined));
            }
        }
        None
    }

    pub(super) fn constant_names(&self) -> Vec<String> {
        self.scopes.iter().flat_map(|s| s.keys().cloned()).collect()
    }

    /// Substitutes constants in a value (and in a call's arguments).
    pub(super) fn resolve(&mut self, value: &Value) -> Resolved {
        match &value.kind {
            ValueKind::Word(w) => match self.lookup(w) {
                Some((v, defined)) => Resolved {
                    value: v,
                    at: value.span,
                    origin: Some((w.clone(), defined)),
                },
                None => Resolved {
                    value: value.clone(),
                    at: value.span,
                    origin: None,
                },
            },
            ValueKind::Call(name, args) => {
                let args = args.iter().map(|a| self.resolve(a).value).collect();
                Resolved {
                    value: Value {
                        kind: ValueKind::Call(name.clone(), args),
                        span: value.span,
                    },
                    at: value.span,
                    origin: None,
                }
            }
            _ => Resolved {
                value: value.clone(),
                at: value.span,
                origin: None,
            },
        }
    }

    pub(super) fn define(&mut self, name: &Ident, value: &Value, path: Option<String>) {
        if schema::find_anywhere(&name.name).is_some() || is_choice_word(&name.name) {
            self.error(
                Diagnostic::error(
                    Code::Duplicate,
                    name.span,
                    format!(
                        "`{}` is a keyword of the language and cannot name a constant",
                        name.name
                    ),
                )
                .with_label("reserved word")
                .with_hint(format!("pick another name, e.g. `{}_value`", name.name)),
            );
            return;
        }
        let overridden = path.and_then(|p| self.take_override(&p));
        let resolved = self.resolve(overridden.as_ref().unwrap_or(value)).value;
        let scope = self.scopes.last_mut().expect("there is always a scope");
        if let Some(previous) = scope.get(&name.name) {
            let previous = previous.defined;
            self.error(
                Diagnostic::error(Code::Duplicate, name.span, format!("`{}` is defined twice", name.name))
                    .with_label("second definition")
                    .with_secondary(previous, "first defined here")
                    .with_hint("remove one definition, or give this one another name"),
            );
            return;
        }
        scope.insert(
            name.name.clone(),
            Constant {
                value: resolved,
                defined: name.span,
                used: false,
                report_unused: true,
            },
        );
    }

    pub(super) fn push_scope(&mut self) {
        self.scopes.push(HashMap::new());
    }

    pub(super) fn pop_scope(&mut self) {
        let scope = self.scopes.pop().expect("push_scope and pop_scope are paired");
        self.report_unused_constants(scope);
    }

    pub(super) fn report_unused_constants(&mut self, scope: HashMap<String, Constant>) {
        let mut unused: Vec<_> = scope.into_iter().filter(|(_, c)| !c.used && c.report_unused).collect();
        unused.sort_by_key(|(_, c)| c.defined.start);
        for (name, c) in unused {
            self.error(
                Diagnostic::warning(Code::Unused, c.defined, format!("constant `{name}` is never used"))
                    .with_label("defined here")
                    .with_hint("remove it, or use it where its value is meant"),
            );
        }
    }
}
