//! The stable diagnostic codes, in two groups: problems in a spec's text (`E00xx`, `W00xx`),
//! and failures of a command outside the spec text (`E01xx`: files, data, weights, flags, run
//! directories, training, the machine, and netc's own bugs). Each is documented in
//! `docs/errors.md`; each spec code has a golden spec in `tests/ui/`, each command code a CLI
//! test.

macro_rules! codes {
    (
        spec { $($spec:ident = $spec_code:literal: $spec_title:literal,)* }
        command { $($command:ident = $command_code:literal: $command_title:literal,)* }
    ) => {
        /// Stable diagnostic codes; each is documented in `docs/errors.md`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($spec,)* $($command,)* }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$spec,)* $(Code::$command,)*];

            /// The codes of problems in a spec's text (and its `--set` values): each has a
            /// golden spec in `tests/ui/`.
            pub const SPEC: &'static [Code] = &[$(Code::$spec,)*];

            /// The codes of failures outside the spec text: files, data, weights, flags, run
            /// directories, training, the machine, netc's bugs.
            pub const COMMAND: &'static [Code] = &[$(Code::$command,)*];

            /// The code as printed, e.g. `E0001`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$spec => $spec_code,)* $(Code::$command => $command_code,)* }
            }

            /// A one-line title for the documentation.
            pub fn title(self) -> &'static str {
                match self { $(Code::$spec => $spec_title,)* $(Code::$command => $command_title,)* }
            }

            /// True for problems in a spec's text.
            pub fn is_spec(self) -> bool {
                Code::SPEC.contains(&self)
            }
        }
    };
}

codes! {
    spec {
        Syntax = "E0001": "syntax error",
        UnbalancedBrace = "E0002": "unbalanced braces",
        UnknownStatement = "E0003": "unknown statement",
        UnknownOption = "E0004": "unknown option",
        MissingValue = "E0005": "missing value",
        WrongType = "E0006": "value of the wrong type",
        OutOfRange = "E0007": "value out of range",
        UnknownChoice = "E0008": "unknown activation, initializer, optimizer, loss or other named choice",
        UnknownName = "E0009": "unknown constant, block or layer name",
        DuplicateLayer = "E0010": "duplicate layer name",
        Duplicate = "E0011": "defined or set twice",
        MaxoutDivisibility = "E0012": "maxout width not divisible by its pieces",
        LossMismatch = "E0013": "loss does not match the output activation",
        MissingInput = "E0014": "missing or misplaced input",
        MissingLoss = "E0015": "missing or misplaced loss",
        MissingSection = "E0016": "missing model or train section",
        TooLarge = "E0017": "model too large for memory",
        Arity = "E0018": "wrong number of arguments",
        Expansion = "E0019": "repeat or block expansion too large or recursive",
        Misplaced = "E0020": "statement not allowed here",
        DataSplit = "E0021": "inconsistent data settings",
        NoLayers = "E0022": "model has no layer with weights",
        NestingTooDeep = "E0023": "blocks nested too deeply",
        BadOverride = "E0024": "invalid --set override",
        DataShape = "E0025": "model does not fit the data set's shape",
        FixedZeroOnePiece = "E0026": "maxout `fixed_zero` with a single piece",
        EmptyWindow = "E0027": "convolution or pooling window larger than its input",
        ShapeMismatch = "E0028": "shapes that must agree differ (add, residual, concat)",
        NeedsImage = "E0029": "convolution, pooling or augmentation without an image input",
        ImageOutput = "E0030": "output layer gives an image, not one value per class",
        DeepSaturatingStack = "W0001": "deep sigmoid or tanh stack (vanishing gradients)",
        DropoutBeforeOutput = "W0002": "dropout right before the output layer",
        NoValidation = "W0003": "dropout, regularization or early stopping without validation data",
        RegularizationExtreme = "W0004": "regularization strength that has no effect or drives weights to zero",
        HiddenSoftmax = "W0005": "softmax on a hidden layer",
        Unused = "W0006": "unused constant or block",
        DeepPlainStack = "W0007": "deep plain stack without residual connections",
        DropoutBeforeBatchnorm = "W0008": "dropout right before batchnorm",
        BiasBeforeBatchnorm = "W0009": "convolution bias that the next batchnorm cancels",
    }
    command {
        FileUnreadable = "E0101": "a file cannot be read",
        FileUnwritable = "E0102": "a file or directory cannot be written",
        NotUtf8 = "E0103": "a text file is not UTF-8",
        BadData = "E0104": "a data file is malformed, or a data set is missing",
        DataMismatch = "E0105": "the data does not fit the model or its weights",
        BadWeights = "E0106": "weights that are not valid or do not match the spec",
        BadFlag = "E0107": "invalid flag value",
        BadRunDirectory = "E0108": "unusable run directory or checkpoint",
        Diverged = "E0109": "training diverged",
        WeightsOfAnotherSpec = "W0103": "weights trained from a different spec",
        Unsupported = "E0110": "this machine lacks what the command needs (a C compiler, a CPU Cranelift supports)",
        OutputIsInput = "E0111": "an output path names one of the command's inputs",
        ClassesMissing = "W0106": "the training data has no rows of some class",
        ConstantFeatures = "W0107": "every feature of the training data is constant",
        Internal = "E0199": "internal error: a bug in netc",
    }
}
