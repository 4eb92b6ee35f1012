//! Properties of the front end: it never panics or hangs on any input, and `fmt` is idempotent
//! and meaning-preserving.

use netc::check::Limits;
use netc::diag::source::SourceMap;
use proptest::prelude::*;

const LIMITS: Limits = Limits { memory_bytes: 8 << 30 };

const EXAMPLES: &[&str] = &[
    include_str!("../examples/digits.net"),
    include_str!("../examples/mnist_mlp.net"),
    include_str!("../examples/deep_sigmoid.net"),
    include_str!("../examples/maxout.net"),
    include_str!("../examples/activations.net"),
    include_str!("../examples/optimizer_adam.net"),
];

/// Runs the whole front end and checks the invariants every run must keep.
fn compile_checked(text: &str) -> netc::Compiled {
    let mut sources = SourceMap::new();
    let id = sources.add("fuzz.net", text.to_string());
    let compiled = netc::compile(&sources, id, &[], &LIMITS);
    let has_error = compiled.diagnostics.iter().any(|d| d.is_error());
    assert_eq!(
        compiled.checked.is_none(),
        has_error,
        "a program exactly when there are no errors"
    );
    for d in &compiled.diagnostics {
        let span = d.span.expect("spec diagnostics point into the spec");
        assert!(
            span.start <= span.end && span.end <= text.len(),
            "span {span:?} outside the file"
        );
        assert!(!d.message.is_empty());
    }
    // Rendering must not panic either.
    let _ = netc::diag::render_plain(&sources, &compiled.diagnostics);
    let _ = netc::diag::render_github(&sources, &compiled.diagnostics);
    compiled
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteToken(usize),
    Truncate(usize),
    Swap(usize),
    Duplicate(usize),
    Insert(usize, char),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteToken),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::Swap),
        any::<usize>().prop_map(Mutation::Duplicate),
        (
            any::<usize>(),
            prop::sample::select(vec![
                '{', '}', '(', ')', ':', '=', '"', '#', '\n', ';', ',', '%', '-', '.', '9', 'x'
            ])
        )
            .prop_map(|(i, c)| Mutation::Insert(i, c)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    match *m {
        Mutation::DeleteToken(i) => {
            let tokens: Vec<&str> = text.split_inclusive(char::is_whitespace).collect();
            if tokens.is_empty() {
                return String::new();
            }
            let i = i % tokens.len();
            tokens
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, t)| *t)
                .collect()
        }
        Mutation::Truncate(i) => chars[..i % (chars.len() + 1)].iter().collect(),
        Mutation::Swap(i) => {
            let mut c = chars;
            if c.len() >= 2 {
                let i = i % (c.len() - 1);
                c.swap(i, i + 1);
            }
            c.into_iter().collect()
        }
        Mutation::Duplicate(i) => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let i = i % lines.len().max(1);
            let mut out = String::new();
            for (j, l) in lines.iter().enumerate() {
                out.push_str(l);
                if j == i {
                    out.push_str(l);
                }
            }
            out
        }
        Mutation::Insert(i, ch) => {
            let mut c = chars;
            let i = i % (c.len() + 1);
            c.insert(i, ch);
            c.into_iter().collect()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        compile_checked(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_token_soup_never_panics(words in prop::collection::vec(prop::sample::select(vec![
        "model", "train", "input", "dense", "maxout", "dropout", "loss", "repeat", "block", "let", "=", "{", "}",
        "h1:", "256", "0.5", "-3", "1e9", "relu", "softmax", "cross_entropy", "pieces", "data", "digits", "optimizer",
        "adam", "lr", "\n", "(", ")", ",", "x", "b(2)", "\"f.csv\"", "validation", "10%", "batch", "early_stop",
    ]), 0..80)) {
        compile_checked(&words.join(" "));
    }

    #[test]
    fn mutated_examples_never_panic(example in 0..EXAMPLES.len(), mutations in prop::collection::vec(mutation(), 1..4)) {
        let mut text = EXAMPLES[example].to_string();
        for m in &mutations {
            text = apply(&text, m);
        }
        compile_checked(&text);
    }

    #[test]
    fn fmt_is_idempotent_and_keeps_meaning(example in 0..EXAMPLES.len(), mutations in prop::collection::vec(mutation(), 0..3)) {
        let mut text = EXAMPLES[example].to_string();
        for m in &mutations {
            text = apply(&text, m);
        }
        let (tree, errors) = netc::front::syntax::parse(0, &text);
        prop_assume!(errors.is_empty());
        let once = netc::front::fmt::format_file(&tree, &text);
        let (tree_once, errors_once) = netc::front::syntax::parse(0, &once);
        prop_assert!(errors_once.is_empty(), "formatted text does not parse:\n{once}");
        let twice = netc::front::fmt::format_file(&tree_once, &once);
        prop_assert_eq!(&twice, &once);
        let before = compile_checked(&text);
        let after = compile_checked(&once);
        prop_assert_eq!(
            before.checked.map(|c| c.program().clone()),
            after.checked.map(|c| c.program().clone())
        );
        let codes = |c: &netc::Compiled| c.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>();
        prop_assert_eq!(codes(&compile_checked(&text)), codes(&compile_checked(&once)));
    }
}
