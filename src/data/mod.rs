//! Data: the built-in digits set, MNIST, and CSV, IDX and NPY files; splits and normalization.
//!
//! Every malformed file gets an error that names the file and the row or byte offset at fault.

use crate::diag::{Code, Diagnostic};
use crate::ir::{DataConfig, DataSource, FileSet, LabelColumn, NamedData, Normalize, Validation};
use crate::ir::{FileFormat, file_format};
use ndarray::{Array2, Axis};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The digits set, compressed, as shipped in `data/digits.csv.gz`.
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Rows of the digits set used as its test set (the last ones).
pub const DIGITS_TEST_ROWS: usize = 360;

/// Largest file netc will read into memory (4 GiB), so a bad path cannot exhaust memory.
const MAX_FILE_BYTES: u64 = 4 << 30;

/// Samples with labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `[samples, features]`.
    pub features: Array2<f32>,
    /// Class index of each sample.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: self.features.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    fn split_tail(self, count: usize) -> (Dataset, Dataset) {
        let keep = self.len() - count;
        let head: Vec<usize> = (0..keep).collect();
        let tail: Vec<usize> = (keep..self.len()).collect();
        (self.select(&head), self.select(&tail))
    }
}

/// Per-feature affine normalization `x' = (x - shift) * scale`, fitted on the training set.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Subtracted from each feature.
    pub shift: Vec<f32>,
    /// Then multiplied into each feature.
    pub scale: Vec<f32>,
}

impl Normalization {
    /// The identity for `width` features.
    pub fn identity(width: usize) -> Normalization {
        Normalization {
            shift: vec![0.0; width],
            scale: vec![1.0; width],
        }
    }

    /// Fits the normalization to training features.
    pub fn fit(kind: Normalize, features: &Array2<f32>) -> Normalization {
        let width = features.ncols();
        match kind {
            Normalize::None => Normalization::identity(width),
            Normalize::Scale => {
                let max = features.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
                let scale = if max > 0.0 { 1.0 / max } else { 1.0 };
                Normalization {
                    shift: vec![0.0; width],
                    scale: vec![scale; width],
                }
            }
            Normalize::Standard => {
                let n = features.nrows().max(1) as f64;
                let mut shift = Vec::with_capacity(width);
                let mut scale = Vec::with_capacity(width);
                for column in features.columns() {
                    let mean = column.iter().map(|&x| x as f64).sum::<f64>() / n;
                    let var = column.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
                    shift.push(mean as f32);
                    scale.push(if var > 1e-12 { (1.0 / var.sqrt()) as f32 } else { 1.0 });
                }
                Normalization { shift, scale }
            }
        }
    }

    /// Applies the normalization in place.
    pub fn apply(&self, features: &mut Array2<f32>) {
        for mut row in features.rows_mut() {
            for ((x, &s), &k) in row.iter_mut().zip(&self.shift).zip(&self.scale) {
                *x = (*x - s) * k;
            }
        }
    }
}

/// The splits of a data configuration, normalized.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training data.
    pub train: Dataset,
    /// Validation data, if configured.
    pub validation: Option<Dataset>,
    /// Test data, if the source has one.
    pub test: Option<Dataset>,
    /// The normalization fitted on the training data.
    pub normalization: Normalization,
    /// Number of classes.
    pub classes: usize,
}

/// Where named data sets that are not built in (MNIST) are looked for.
#[derive(Debug, Clone, Default)]
pub struct DataDirs {
    /// `--data-dir`.
    pub flag: Option<PathBuf>,
}

impl DataDirs {
    /// The directories searched, in order: `--data-dir`, `$NETC_DATA_DIR`, the user cache.
    pub fn candidates(&self) -> Vec<PathBuf> {
        if let Some(dir) = &self.flag {
            return vec![dir.clone()];
        }
        let mut dirs = Vec::new();
        if let Some(dir) = std::env::var_os("NETC_DATA_DIR").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(dir));
        }
        if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(cache).join("netc"));
        } else if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(home).join(".cache").join("netc"));
        }
        dirs
    }
}

/// Loads and splits the data a spec names, normalized with a fit on the training split. `base`
/// is the spec's directory (relative paths in a spec are relative to it).
pub fn load(config: &DataConfig, dirs: &DataDirs, base: &Path) -> Result<Splits, Box<Diagnostic>> {
    load_with(config, dirs, base, None)
}

/// Like [`load`], but with a given normalization (the one stored with trained weights).
pub fn load_with(
    config: &DataConfig,
    dirs: &DataDirs,
    base: &Path,
    normalization: Option<&Normalization>,
) -> Result<Splits, Box<Diagnostic>> {
    let (train, validation_default, test) = match &config.source {
        DataSource::Named(NamedData::Digits) => {
            let (train, test) = digits()?.split_tail(DIGITS_TEST_ROWS);
            (train, None, Some(test))
        }
        DataSource::Named(NamedData::Mnist) => {
            let (train, test) = load_mnist(dirs)?;
            (train, None, Some(test))
        }
        DataSource::Files(set) => {
            let train = read_set(set, base)?;
            let test = match &config.test {
                Some(t) => Some(read_set(t, base)?),
                None => None,
            };
            (train, None::<Dataset>, test)
        }
    };
    let _ = validation_default;
    let (train, validation) = match &config.validation {
        Validation::None => (train, None),
        Validation::Count(0) => (train, None),
        Validation::Count(n) => {
            if *n >= train.len() {
                return Err(Diagnostic::general(
                    Code::BadData,
                    format!(
                        "the validation split asks for {n} rows, but the training data has only {}",
                        train.len()
                    ),
                )
                .with_hint(format!(
                    "use fewer validation rows (at most {}), or a fraction like `validation 10%`",
                    train.len().saturating_sub(1)
                ))
                .into());
            }
            let (t, v) = train.split_tail(*n);
            (t, Some(v))
        }
        Validation::Fraction(f) => {
            let n = (train.len() as f64 * f).round() as usize;
            if n == 0 {
                (train, None)
            } else if n >= train.len() {
                return Err(
                    Diagnostic::general(Code::BadData, "the validation fraction leaves no training rows")
                        .with_hint("use a fraction below 1, e.g. `validation 10%`")
                        .into(),
                );
            } else {
                let (t, v) = train.split_tail(n);
                (t, Some(v))
            }
        }
        Validation::Files(set) => (train, Some(read_set(set, base)?)),
    };
    if train.is_empty() {
        return Err(Diagnostic::general(Code::BadData, "the training data has no rows")
            .with_hint("check the data file")
            .into());
    }
    let width = train.features.ncols();
    for (name, split) in [("validation", &validation), ("test", &test)] {
        if let Some(s) = split
            && s.features.ncols() != width
        {
            return Err(Diagnostic::general(
                Code::BadData,
                format!(
                    "the {name} data has {} features per row, but the training data has {width}",
                    s.features.ncols()
                ),
            )
            .with_hint("use files with the same columns for every split")
            .into());
        }
    }
    let classes = [Some(&train), validation.as_ref(), test.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|d| d.labels.iter().copied())
        .max()
        .map_or(0, |m| m + 1);
    let classes = match config.source {
        DataSource::Named(n) => n.classes(),
        DataSource::Files(_) => classes,
    };
    let normalization = match normalization {
        Some(n) if n.shift.len() == train.features.ncols() => n.clone(),
        Some(n) => {
            return Err(Diagnostic::general(
                Code::DataMismatch,
                format!(
                    "the weights were trained on {} features, but this data has {}",
                    n.shift.len(),
                    train.features.ncols()
                ),
            )
            .with_hint("evaluate with the data the weights were trained on")
            .into());
        }
        None => Normalization::fit(config.normalize, &train.features),
    };
    let mut splits = Splits {
        train,
        validation,
        test,
        normalization,
        classes,
    };
    splits.normalization.apply(&mut splits.train.features);
    if let Some(v) = &mut splits.validation {
        splits.normalization.apply(&mut v.features);
    }
    if let Some(t) = &mut splits.test {
        splits.normalization.apply(&mut t.features);
    }
    Ok(splits)
}

/// The built-in digits set, its rows in a fixed shuffled order. The file is grouped by writer,
/// so a positional split would test on writers never seen in training; the fixed permutation
/// (the same for every seed and every version) mixes them.
pub fn digits() -> Result<Dataset, Box<Diagnostic>> {
    let all = read_csv_bytes(
        &gunzip(DIGITS_CSV_GZ, Path::new("<built-in digits>"))?,
        "<built-in digits>",
        LabelColumn::Last,
        false,
    )?;
    let mut order: Vec<usize> = (0..all.len()).collect();
    crate::rng::Rng::new(DIGITS_ORDER_SEED, 0).shuffle(&mut order);
    Ok(all.select(&order))
}

/// The seed of the digits set's fixed row order.
const DIGITS_ORDER_SEED: u64 = 1797;

/// The file names of MNIST, as distributed.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

fn load_mnist(dirs: &DataDirs) -> Result<(Dataset, Dataset), Box<Diagnostic>> {
    let candidates = dirs.candidates();
    let find = |dir: &Path, name: &str| -> Option<PathBuf> {
        [
            dir.join("mnist").join(name),
            dir.join("mnist").join(format!("{name}.gz")),
        ]
        .into_iter()
        .find(|p| p.is_file())
    };
    for dir in &candidates {
        let found: Vec<Option<PathBuf>> = MNIST_FILES.iter().map(|n| find(dir, n)).collect();
        if found.iter().all(Option::is_some) {
            let paths: Vec<PathBuf> = found.into_iter().flatten().collect();
            let train = read_idx_pair(&paths[0], &paths[1])?;
            let test = read_idx_pair(&paths[2], &paths[3])?;
            return Ok((train, test));
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|d| format!("  {}", d.join("mnist").display()))
        .collect();
    Err(Diagnostic::general(Code::BadData, format!(
        "the MNIST files were not found; netc looked in:\n{}",
        if looked.is_empty() { "  (no directory: set --data-dir or $NETC_DATA_DIR)".to_string() } else { looked.join("\n") }
    ))
    .with_hint(format!(
        "put the four MNIST IDX files ({}; gzip or raw) in DIR/mnist/ and pass `--data-dir DIR` or set NETC_DATA_DIR=DIR",
        MNIST_FILES.join(", ")
    )).into())
}

fn read_file(path: &Path) -> Result<Vec<u8>, Box<Diagnostic>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Diagnostic::general(Code::FileUnreadable, format!("cannot read `{}`: {e}", path.display()))
            .in_file(path)
            .with_hint("check the path in the spec (relative paths start at the spec's directory)")
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::general(
            Code::BadData,
            format!(
                "`{}` is {} bytes, more than netc reads ({MAX_FILE_BYTES})",
                path.display(),
                meta.len()
            ),
        )
        .in_file(path)
        .with_hint("split the data into smaller files")
        .into());
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostic::general(Code::FileUnreadable, format!("cannot read `{}`: {e}", path.display()))
            .in_file(path)
            .with_hint("check the file's permissions")
    })?;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
        gunzip(&bytes, path)
    } else {
        Ok(bytes)
    }
}

fn gunzip(bytes: &[u8], path: &Path) -> Result<Vec<u8>, Box<Diagnostic>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| {
            Diagnostic::general(
                Code::BadData,
                format!("`{}` is not a valid gzip file: {e}", path.display()),
            )
            .in_file(path)
            .with_hint("decompress it to check it, or give the uncompressed file")
        })?;
    Ok(out)
}

/// Reads one file set (features and, for IDX/NPY, labels).
pub fn read_set(set: &FileSet, base: &Path) -> Result<Dataset, Box<Diagnostic>> {
    let path = base.join(&set.features);
    match file_format(&set.features) {
        Some(FileFormat::Csv) => {
            let bytes = read_file(&path)?;
            read_csv_bytes(&bytes, &path.display().to_string(), set.label_column, set.header)
        }
        Some(FileFormat::Idx) | Some(FileFormat::Npy) => {
            let labels = set.labels.as_ref().ok_or_else(|| {
                Diagnostic::general(Code::BadData, format!("`{}` needs a labels file", set.features))
                    .with_hint("add `labels \"...\"` to the data statement")
            })?;
            let labels_path = base.join(labels);
            let features = read_matrix(&path)?;
            let labels_matrix = read_matrix(&labels_path)?;
            combine(features, &path, labels_matrix, &labels_path)
        }
        None => Err(
            Diagnostic::general(Code::BadData, format!("cannot tell the format of `{}`", set.features))
                .with_hint("use .csv, .npy or .idx files")
                .into(),
        ),
    }
}

fn read_idx_pair(images: &Path, labels: &Path) -> Result<Dataset, Box<Diagnostic>> {
    let features = read_matrix(images)?;
    let labels_matrix = read_matrix(labels)?;
    combine(features, images, labels_matrix, labels)
}

fn combine(features: Array2<f32>, fpath: &Path, labels: Array2<f32>, lpath: &Path) -> Result<Dataset, Box<Diagnostic>> {
    if labels.ncols() != 1 {
        return Err(Diagnostic::general(
            Code::BadData,
            format!(
                "the labels file `{}` has {} values per row; labels are one class number per row",
                lpath.display(),
                labels.ncols()
            ),
        )
        .with_hint("give a 1-D labels file")
        .into());
    }
    if labels.nrows() != features.nrows() {
        return Err(Diagnostic::general(
            Code::BadData,
            format!(
                "`{}` has {} rows but its labels file `{}` has {}",
                fpath.display(),
                features.nrows(),
                lpath.display(),
                labels.nrows()
            ),
        )
        .with_hint("pair each features file with the labels file of the same samples")
        .into());
    }
    let mut out = Vec::with_capacity(labels.nrows());
    for (row, &l) in labels.column(0).iter().enumerate() {
        out.push(label_of(l as f64, || format!("`{}`, label {row}", lpath.display()))?);
    }
    Ok(Dataset { features, labels: out })
}

fn label_of(value: f64, place: impl Fn() -> String) -> Result<usize, Box<Diagnostic>> {
    if value.fract() != 0.0 || !(0.0..=1e6).contains(&value) {
        return Err(
            Diagnostic::general(Code::BadData, format!("{}: `{value}` is not a class number", place()))
                .with_hint("labels are whole numbers 0, 1, 2, ... (one per class)")
                .into(),
        );
    }
    Ok(value as usize)
}

/// Parses CSV text: numbers separated by commas, one sample per line, the label in one column.
pub fn read_csv_bytes(bytes: &[u8], name: &str, label: LabelColumn, header: bool) -> Result<Dataset, Box<Diagnostic>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Diagnostic::general(
            Code::NotUtf8,
            format!("`{name}` is not UTF-8 text (bad byte at offset {})", e.valid_up_to()),
        )
        .in_file(name)
        .with_hint("save the CSV file as UTF-8")
    })?;
    let mut width = None;
    let mut values: Vec<f32> = Vec::new();
    let mut labels = Vec::new();
    for (line_index, line) in text.lines().enumerate() {
        let row = line_index + 1;
        if (header && line_index == 0) || line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        match width {
            None => width = Some(cells.len()),
            Some(w) if w != cells.len() => {
                return Err(Diagnostic::general(
                    Code::BadData,
                    format!(
                        "`{name}`, row {row}: {} columns, but the rows before have {w}",
                        cells.len()
                    ),
                )
                .with_hint("every row needs the same number of columns")
                .into());
            }
            _ => {}
        }
        let label_at = match label {
            LabelColumn::First => 0,
            LabelColumn::Last => cells.len() - 1,
            LabelColumn::Index(i) => i,
        };
        if label_at >= cells.len() || cells.len() < 2 {
            return Err(Diagnostic::general(
                Code::BadData,
                format!(
                    "`{name}`, row {row}: no column {label_at} for the label ({} columns)",
                    cells.len()
                ),
            )
            .with_hint("set `label first`, `label last` or a column number that exists")
            .into());
        }
        for (column, cell) in cells.iter().enumerate() {
            let parsed: f64 = cell.parse().map_err(|_| {
                Diagnostic::general(
                    Code::BadData,
                    format!("`{name}`, row {row}, column {}: `{cell}` is not a number", column + 1),
                )
                .with_hint(if row == 1 {
                    "if the first row is a header, add `header` to the data statement".to_string()
                } else {
                    "every cell must be a number".to_string()
                })
            })?;
            if !parsed.is_finite() {
                return Err(Diagnostic::general(
                    Code::BadData,
                    format!("`{name}`, row {row}, column {}: `{cell}` is not finite", column + 1),
                )
                .with_hint("replace missing or infinite values with numbers")
                .into());
            }
            if column == label_at {
                labels.push(label_of(parsed, || {
                    format!("`{name}`, row {row}, column {}", column + 1)
                })?);
            } else {
                values.push(parsed as f32);
            }
        }
    }
    let Some(width) = width else {
        return Err(Diagnostic::general(Code::BadData, format!("`{name}` has no rows"))
            .with_hint("give a CSV file with one sample per line")
            .into());
    };
    let features = Array2::from_shape_vec((labels.len(), width - 1), values).expect("every row added width-1 values");
    Ok(Dataset { features, labels })
}

/// Reads a matrix (features; or labels as one column) from an IDX or NPY file.
pub fn read_matrix(path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    let bytes = read_file(path)?;
    match file_format(&path.to_string_lossy()) {
        Some(FileFormat::Npy) => parse_npy(&bytes, path),
        Some(FileFormat::Csv) => {
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                Diagnostic::general(Code::NotUtf8, format!("`{}` is not UTF-8 text", path.display()))
                    .in_file(path)
                    .with_hint("save it as UTF-8")
            })?;
            parse_csv_matrix(text, &path.display().to_string())
        }
        _ => parse_idx(&bytes, path),
    }
}

/// Parses a CSV of numbers only (no label column), for `netc predict`.
pub fn parse_csv_matrix(text: &str, name: &str) -> Result<Array2<f32>, Box<Diagnostic>> {
    let mut width = None;
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if *width.get_or_insert(cells.len()) != cells.len() {
            return Err(Diagnostic::general(
                Code::BadData,
                format!(
                    "`{name}`, row {}: {} columns, but the rows before have {}",
                    i + 1,
                    cells.len(),
                    width.unwrap_or(0)
                ),
            )
            .with_hint("every row needs the same number of columns")
            .into());
        }
        for (j, cell) in cells.iter().enumerate() {
            let v: f32 = cell.parse().ok().filter(|v: &f32| v.is_finite()).ok_or_else(|| {
                Diagnostic::general(
                    Code::BadData,
                    format!("`{name}`, row {}, column {}: `{cell}` is not a number", i + 1, j + 1),
                )
                .with_hint("every cell must be a finite number")
            })?;
            values.push(v);
        }
        rows += 1;
    }
    let width = width.ok_or_else(|| {
        Diagnostic::general(Code::BadData, format!("`{name}` has no rows")).with_hint("give one sample per line")
    })?;
    Ok(Array2::from_shape_vec((rows, width), values).expect("rows * width values"))
}

fn parse_idx(bytes: &[u8], path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    let bad = |offset: usize, what: String| {
        Box::new(
            Diagnostic::general(Code::BadData, format!("`{}`, byte {offset}: {what}", path.display()))
                .in_file(path)
                .with_hint("check that this is an IDX file (as MNIST's), not truncated"),
        )
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(
            0,
            "wrong magic number: an IDX file starts with two zero bytes".to_string(),
        ));
    }
    let (size, kind) = match bytes[2] {
        0x08 => (1, "u8"),
        0x09 => (1, "i8"),
        0x0B => (2, "i16"),
        0x0C => (4, "i32"),
        0x0D => (4, "f32"),
        0x0E => (8, "f64"),
        other => return Err(bad(2, format!("unknown element type 0x{other:02x}"))),
    };
    let ndims = bytes[3] as usize;
    if ndims == 0 || ndims > 8 {
        return Err(bad(3, format!("{ndims} dimensions; netc reads 1 to 8")));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(bad(bytes.len(), "the file ends inside its header".to_string()));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let rows = dims[0];
    let cols: usize = dims[1..]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(4, "dimensions overflow".to_string()))?;
    let count = rows
        .checked_mul(cols)
        .ok_or_else(|| bad(4, "dimensions overflow".to_string()))?;
    let need = count
        .checked_mul(size)
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| bad(4, "dimensions overflow".to_string()))?;
    if bytes.len() < need {
        return Err(bad(
            bytes.len(),
            format!(
                "truncated: the header promises {count} values of {kind} ({need} bytes), the file has {}",
                bytes.len()
            ),
        ));
    }
    let data = &bytes[header..need];
    let values: Vec<f32> = match bytes[2] {
        0x08 => data.iter().map(|&b| b as f32).collect(),
        0x09 => data.iter().map(|&b| b as i8 as f32).collect(),
        0x0B => data
            .chunks_exact(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]) as f32)
            .collect(),
        0x0C => data
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes(c.try_into().expect("4")) as f32)
            .collect(),
        0x0D => data
            .chunks_exact(4)
            .map(|c| f32::from_be_bytes(c.try_into().expect("4")))
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|c| f64::from_be_bytes(c.try_into().expect("8")) as f32)
            .collect(),
    };
    Ok(Array2::from_shape_vec((rows, cols), values).expect("rows * cols values"))
}

fn parse_npy(bytes: &[u8], path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    let bad = |offset: usize, what: &str| {
        Box::new(
            Diagnostic::general(Code::BadData, format!("`{}`, byte {offset}: {what}", path.display()))
                .in_file(path)
                .with_hint("save the array with numpy.save (a C-ordered 1-D or 2-D array of numbers)"),
        )
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(0, "wrong magic: an NPY file starts with \\x93NUMPY"));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize, 12),
        _ => return Err(bad(6, "unsupported NPY version")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad(bytes.len(), "the file ends inside its header"))?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad(start, "the header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        let rest = header[at + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        Some(rest)
    };
    let descr = field("descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or_else(|| bad(start, "no 'descr' in the header"))?;
    if field("fortran_order").is_some_and(|r| r.starts_with("True")) {
        return Err(bad(start, "Fortran-ordered arrays are not supported"));
    }
    let shape_text = field("shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad(start, "no 'shape' in the header"))?;
    let dims: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(start, "the shape is not a list of numbers"))?;
    let (rows, cols) = match dims.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        _ => return Err(bad(start, "netc reads 1-D and 2-D arrays only")),
    };
    let (size, little) = match descr {
        "|u1" | "|i1" | "<u1" | "<i1" => (1, true),
        "<i2" | "<u2" => (2, true),
        "<f4" | "<i4" | "<u4" => (4, true),
        "<f8" | "<i8" | "<u8" => (8, true),
        _ => return Err(bad(start, "unsupported dtype (use little-endian ints or floats)")),
    };
    let _ = little;
    let count = rows.checked_mul(cols).ok_or_else(|| bad(start, "shape overflows"))?;
    let need = count
        .checked_mul(size)
        .and_then(|n| n.checked_add(end))
        .ok_or_else(|| bad(start, "shape overflows"))?;
    if bytes.len() < need {
        return Err(bad(bytes.len(), "truncated: the data is shorter than the shape says"));
    }
    let data = &bytes[end..need];
    let values: Vec<f32> = match descr {
        "|u1" | "<u1" => data.iter().map(|&b| b as f32).collect(),
        "|i1" | "<i1" => data.iter().map(|&b| b as i8 as f32).collect(),
        "<i2" => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
            .collect(),
        "<u2" => data
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as f32)
            .collect(),
        "<f4" => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect(),
        "<i4" => data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4")) as f32)
            .collect(),
        "<u4" => data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")) as f32)
            .collect(),
        "<f8" => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32)
            .collect(),
        "<i8" => data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8")) as f32)
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")) as f32)
            .collect(),
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(end + i * size, "a value is NaN or infinite"));
    }
    Ok(Array2::from_shape_vec((rows, cols), values).expect("rows * cols values"))
}

/// Targets for a batch: one-hot rows, or the 0/1 label for a single output.
pub fn targets(labels: &[usize], width: usize) -> Array2<f32> {
    let mut t = Array2::zeros((labels.len(), width));
    for (r, &l) in labels.iter().enumerate() {
        if width == 1 {
            t[[r, 0]] = l as f32;
        } else if l < width {
            t[[r, l]] = 1.0;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_built_in_with_the_documented_split() {
        let config = DataConfig {
            source: DataSource::Named(NamedData::Digits),
            validation: Validation::Count(100),
            test: None,
            normalize: Normalize::Scale,
        };
        let s = load(&config, &DataDirs::default(), Path::new(".")).expect("digits load");
        assert_eq!(s.train.len(), 1797 - DIGITS_TEST_ROWS - 100);
        assert_eq!(s.validation.as_ref().map(Dataset::len), Some(100));
        assert_eq!(s.test.as_ref().map(Dataset::len), Some(DIGITS_TEST_ROWS));
        assert_eq!(s.train.features.ncols(), 64);
        assert_eq!(s.classes, 10);
        let max = s.train.features.iter().fold(0.0f32, |m, &x| m.max(x));
        assert!((max - 1.0).abs() < 1e-6);
    }

    #[test]
    fn csv_errors_name_row_and_column() {
        let err = read_csv_bytes(b"1,2,0\n3,x,1\n", "t.csv", LabelColumn::Last, false).expect_err("bad cell");
        assert!(err.message.contains("row 2, column 2"), "{}", err.message);
        let err = read_csv_bytes(b"1,2,0\n3,1\n", "t.csv", LabelColumn::Last, false).expect_err("ragged");
        assert!(err.message.contains("row 2"), "{}", err.message);
        let err = read_csv_bytes(b"1,2,0.5\n", "t.csv", LabelColumn::Last, false).expect_err("fractional label");
        assert!(err.message.contains("not a class number"), "{}", err.message);
        let ok = read_csv_bytes(b"a,b,label\n1,2,0\n3,4,1\n", "t.csv", LabelColumn::Last, true).expect("header");
        assert_eq!(ok.labels, vec![0, 1]);
    }

    #[test]
    fn idx_round_trip_and_truncation() {
        let mut bytes = vec![0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        bytes.extend([1, 2, 3, 4, 5, 6]);
        let m = parse_idx(&bytes, Path::new("x.idx")).expect("valid");
        assert_eq!(m.dim(), (2, 3));
        assert_eq!(m[[1, 2]], 6.0);
        let err = parse_idx(&bytes[..15], Path::new("x.idx")).expect_err("truncated");
        assert!(err.message.contains("truncated"), "{}", err.message);
        let err = parse_idx(&[1, 2, 3, 4], Path::new("x.idx")).expect_err("magic");
        assert!(err.message.contains("magic"), "{}", err.message);
    }

    #[test]
    fn npy_reads_floats_and_refuses_garbage() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{header:<118}\n");
        bytes.extend((padded.len() as u16).to_le_bytes());
        bytes.extend(padded.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0] {
            bytes.extend(v.to_le_bytes());
        }
        let m = parse_npy(&bytes, Path::new("x.npy")).expect("valid");
        assert_eq!(m[[1, 0]], 3.0);
        assert!(parse_npy(&bytes[..bytes.len() - 2], Path::new("x.npy")).is_err());
        assert!(parse_npy(b"garbage!!!!!", Path::new("x.npy")).is_err());
    }
}
