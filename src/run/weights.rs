//! Weights and checkpoints as safetensors files.
//!
//! A weights file holds, for each layer, `NAME.weight` in PyTorch's `nn.Linear` layout
//! `[outputs, inputs]`, `NAME.bias` `[outputs]` and, for prelu, `NAME.slope` `[outputs]`; plus
//! the input normalization `input.shift` and `input.scale` (`x' = (x - shift) * scale`). All
//! tensors are f32. Loading checks every name and shape against the spec.

use crate::data::Normalization;
use crate::diag::{Code, Diagnostic};
use crate::graph::{Graph, Param, ParamKind};
use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::Path;

/// A named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Its name in the file.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values in row-major order.
    pub data: Vec<f32>,
}

/// Tensors of a file by name.
pub type Tensors = BTreeMap<String, NamedTensor>;

/// A tensor to write, borrowing its values: `values` in logical (row-major) order are the
/// file's order, so a transposed view writes a transposed tensor without copying it.
pub struct TensorOut<'a> {
    /// Its name in the file.
    pub name: String,
    /// Its shape in the file.
    pub shape: Vec<usize>,
    /// Its values.
    pub values: ndarray::ArrayView2<'a, f32>,
}

impl NamedTensor {
    /// The tensor as one to write.
    pub fn out(&self) -> TensorOut<'_> {
        TensorOut {
            name: self.name.clone(),
            shape: self.shape.clone(),
            values: ndarray::ArrayView2::from_shape((1, self.data.len()), &self.data).expect("a row of its own length"),
        }
    }
}

/// Serializes tensors and string metadata to safetensors bytes.
pub fn encode(tensors: &[NamedTensor], metadata: BTreeMap<String, String>) -> Vec<u8> {
    let views: Vec<TensorOut> = tensors.iter().map(NamedTensor::out).collect();
    let mut out = Vec::new();
    encode_to(&mut out, &views, &metadata).expect("writing to memory cannot fail");
    out
}

/// Writes tensors and string metadata as safetensors to `out`, one tensor at a time and without
/// copying them (a checkpoint of a 1 GB model costs no second gigabyte).
///
/// Written here rather than by the safetensors crate because the crate keeps metadata in a
/// `HashMap`, whose order varies from run to run; netc's files must be byte-for-byte
/// reproducible. The layout is the standard one: an 8-byte little-endian header length, the
/// JSON header (tensors sorted by name, `__metadata__` first) padded with spaces to a multiple
/// of 8, then the tensors' bytes in header order. The crate reads and validates it.
pub fn encode_to(
    out: &mut (impl std::io::Write + ?Sized),
    tensors: &[TensorOut],
    metadata: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let mut sorted: Vec<&TensorOut> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    // serde_json's Map keeps insertion order only with a feature; build the text by hand instead.
    let mut text = String::from("{");
    let mut push = |key: &str, value: &serde_json::Value| {
        if text.len() > 1 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(key).expect("strings serialize"));
        text.push(':');
        text.push_str(&value.to_string());
    };
    if !metadata.is_empty() {
        push(
            "__metadata__",
            &serde_json::to_value(metadata).expect("strings serialize"),
        );
    }
    let mut offset = 0usize;
    for t in &sorted {
        let end = offset + t.values.len() * 4;
        push(
            &t.name,
            &serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    text.push('}');
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    out.write_all(&(text.len() as u64).to_le_bytes())?;
    out.write_all(text.as_bytes())?;
    let mut chunk: Vec<u8> = Vec::with_capacity(1 << 16);
    for t in sorted {
        for v in t.values.iter() {
            chunk.extend(v.to_le_bytes());
            if chunk.len() >= 1 << 16 {
                out.write_all(&chunk)?;
                chunk.clear();
            }
        }
    }
    out.write_all(&chunk)
}

/// Parses safetensors bytes into f32 tensors and metadata. Every tensor is checked here, the
/// one place weights and checkpoints are read: a file shorter than its header declares is
/// "truncated", a tensor that is not f32 or holds a NaN or an infinity is refused by name.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(Tensors, BTreeMap<String, String>), Box<Diagnostic>> {
    let bad = |e: String| {
        Diagnostic::general(
            Code::BadWeights,
            format!(
                "`{}` is not a valid safetensors file: {}",
                path.display(),
                crate::diag::escape_controls(&e)
            ),
        )
        .in_file(path)
        .with_hint("give the weights.safetensors written by `netc train`")
    };
    check_length(bytes, path)?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let metadata: BTreeMap<String, String> = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    let file = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let shown = crate::diag::shown(&name);
        if view.dtype() != Dtype::F32 {
            return Err(Diagnostic::general(
                Code::BadWeights,
                format!(
                    "tensor `{shown}` in `{}` is {:?}, not F32",
                    path.display(),
                    view.dtype()
                ),
            )
            .in_file(path)
            .with_hint("netc stores and reads f32 weights")
            .into());
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Diagnostic::general(
                Code::BadWeights,
                format!(
                    "tensor `{shown}` in `{}` holds a non-finite value ({}) at element {i}",
                    path.display(),
                    data[i]
                ),
            )
            .in_file(path)
            .with_hint("these weights come from a diverged run or a damaged file; retrain with a lower learning rate")
            .into());
        }
        out.insert(
            name.clone(),
            NamedTensor {
                name,
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((out, metadata))
}

/// Refuses a file shorter than its header says: the 8-byte header length, then the header,
/// then the largest end offset of its tensors.
fn check_length(bytes: &[u8], path: &Path) -> Result<(), Box<Diagnostic>> {
    check_declared_size(bytes, bytes.len() as u128, path)
}

/// The most header bytes netc reads (the safetensors crate's own limit is 100 MB).
const MAX_HEADER: u128 = 100 << 20;

/// Checks the sizes the start of a safetensors file declares against the file's `length`:
/// `prefix` is the first bytes of the file (all of it, or at least its 8-byte length and as
/// much of the header as there is).
fn check_declared_size(prefix: &[u8], length: u128, path: &Path) -> Result<(), Box<Diagnostic>> {
    let truncated = |need: u128| {
        Box::new(
            Diagnostic::general(
                Code::BadWeights,
                format!(
                    "`{}` is truncated: its header declares {need} bytes, the file has {length}",
                    path.display()
                ),
            )
            .in_file(path)
            .with_hint("the file was cut short (an interrupted copy or download); copy it again, or retrain"),
        )
    };
    let not_safetensors = |what: String| {
        Box::new(
            Diagnostic::general(
                Code::BadWeights,
                format!("`{}` is not a valid safetensors file: {what}", path.display()),
            )
            .in_file(path)
            .with_hint("give the weights.safetensors written by `netc train`"),
        )
    };
    let Some(start) = prefix.get(..8) else {
        return Err(not_safetensors(format!(
            "it has {length} bytes, fewer than the 8 of its header's length (truncated?)"
        )));
    };
    let header_len = u64::from_le_bytes(start.try_into().expect("8 bytes")) as u128;
    let header_end = 8 + header_len;
    if header_len > MAX_HEADER {
        return Err(not_safetensors(format!(
            "its header would be {header_len} bytes long, more than the 100 MB netc reads"
        )));
    }
    if header_end > length {
        return Err(truncated(header_end));
    }
    let header = prefix
        .get(8..header_end as usize)
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(h).ok())
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| not_safetensors("its header is not a JSON object".to_string()))?;
    let data_end = header
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0) as u128;
    if header_end + data_end > length {
        return Err(truncated(header_end + data_end));
    }
    Ok(())
}

/// Reads a safetensors file: its header first, whose declared sizes are checked against the
/// file's length before the rest is read (a damaged or foreign file costs a few bytes, not its
/// size). `unreadable` makes the diagnostic of an IO failure (its code depends on the command).
pub fn read_file(path: &Path, unreadable: impl Fn(std::io::Error) -> Diagnostic) -> Result<Vec<u8>, Box<Diagnostic>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(&unreadable)?;
    let length = file.metadata().map_err(&unreadable)?.len() as u128;
    let mut prefix = Vec::new();
    (&mut file).take(8).read_to_end(&mut prefix).map_err(&unreadable)?;
    if prefix.len() == 8 {
        let header_len = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes")) as u128;
        let wanted = header_len.min(MAX_HEADER + 1).min(length.saturating_sub(8)) as u64;
        (&mut file).take(wanted).read_to_end(&mut prefix).map_err(&unreadable)?;
    }
    check_declared_size(&prefix, length, path)?;
    let mut bytes = prefix;
    file.read_to_end(&mut bytes).map_err(&unreadable)?;
    Ok(bytes)
}

/// A parameter as a tensor to write in file layout (PyTorch's: dense weights `[outputs,
/// inputs]`, filters `[filters, channels, kh, kw]`, rows `[n]`), borrowed, under `name`.
pub fn param_out<'a>(name: &str, param: &Param, value: &'a Array2<f32>) -> TensorOut<'a> {
    TensorOut {
        name: name.to_string(),
        shape: param.file_shape.clone(),
        values: match param.kind {
            ParamKind::Weight => value.t(),
            _ => value.view(),
        },
    }
}

/// The tensors of a trained model, to write without copying them.
pub fn model_outs<'a>(
    graph: &Graph,
    params: &'a [Array2<f32>],
    normalization: &'a Normalization,
) -> Vec<TensorOut<'a>> {
    let row = |v: &'a [f32]| ndarray::ArrayView2::from_shape((1, v.len()), v).expect("a row of its own length");
    let mut out: Vec<TensorOut> = graph
        .params
        .iter()
        .zip(params)
        .map(|(p, v)| param_out(&p.name, p, v))
        .collect();
    for (name, values) in [
        ("input.shift", &normalization.shift),
        ("input.scale", &normalization.scale),
    ] {
        out.push(TensorOut {
            name: name.to_string(),
            shape: vec![values.len()],
            values: row(values),
        });
    }
    out
}

/// The tensors of a trained model, copied (for tests and tools that edit them before writing).
pub fn model_tensors(graph: &Graph, params: &[Array2<f32>], normalization: &Normalization) -> Vec<NamedTensor> {
    model_outs(graph, params, normalization)
        .iter()
        .map(|t| NamedTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            data: t.values.iter().copied().collect(),
        })
        .collect()
}

/// Reads parameter `param` back from file layout (the tensor `name`) into the interpreter's
/// layout, checking its shape.
pub fn param_from(tensors: &Tensors, name: &str, param: &Param, path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    let t = tensors.get(name).ok_or_else(|| {
        Diagnostic::general(
            Code::BadWeights,
            format!("`{}` has no tensor `{name}`, which the spec needs", path.display()),
        )
        .in_file(path)
        .with_hint("use the weights trained from this spec (layer names and kinds must match)")
    })?;
    let expected = &param.file_shape;
    if &t.shape != expected {
        return Err(Diagnostic::general(
            Code::BadWeights,
            format!(
                "tensor `{name}` in `{}` has shape {:?}, but the spec needs {:?}",
                path.display(),
                t.shape,
                expected
            ),
        )
        .in_file(path)
        .with_hint("the layer sizes of the spec differ from the ones these weights were trained with")
        .into());
    }
    let (rows, cols) = (param.rows, param.cols);
    Ok(match param.kind {
        ParamKind::Weight => Array2::from_shape_vec((cols, rows), t.data.clone())
            .expect("shape checked")
            .reversed_axes()
            .as_standard_layout()
            .to_owned(),
        _ => Array2::from_shape_vec((rows, cols), t.data.clone()).expect("shape checked"),
    })
}

/// Trained weights loaded for a spec.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The spec's training graph.
    pub graph: Graph,
    /// Every parameter, in the graph's order and the interpreter's layout.
    pub params: Vec<Array2<f32>>,
    /// The input normalization they were trained with.
    pub normalization: Normalization,
    /// The hash of the spec they were trained from, if the file records it.
    pub spec_hash: Option<String>,
    /// Warnings about them (W0103: trained from a different spec).
    pub warnings: Vec<Diagnostic>,
}

/// Loads a weights file for the spec of `run`: every parameter and the normalization, checked
/// by name, shape and value; tensors the spec does not know are refused, a checkpoint is named
/// as one, and weights trained from another spec get a warning.
pub fn load_model(run: &crate::run::train::Run, path: &Path) -> Result<Trained, Box<Diagnostic>> {
    let graph = crate::graph::build(&run.checked);
    let bytes = read_file(path, |e| {
        Diagnostic::general(
            Code::FileUnreadable,
            format!("cannot read weights `{}`: {e}", path.display()),
        )
        .in_file(path)
        .with_hint("check the --weights path")
    })?;
    let (tensors, meta) = decode(&bytes, path)?;
    if meta.contains_key(crate::run::checkpoint::STATE_KEY) {
        return Err(Diagnostic::general(
            Code::BadWeights,
            format!(
                "`{}` is a checkpoint (training state for `--resume`), not a weights file",
                path.display()
            ),
        )
        .in_file(path)
        .with_hint("pass the run's weights.safetensors (written when training ends), or finish the run with `netc train SPEC --resume RUN_DIR`")
        .into());
    }
    let mut params = Vec::new();
    let mut known: Vec<&str> = vec!["input.shift", "input.scale"];
    for p in &graph.params {
        params.push(param_from(&tensors, &p.name, p, path)?);
        known.push(&p.name);
    }
    if let Some(extra) = tensors.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Diagnostic::general(
            Code::BadWeights,
            format!(
                "`{}` has a tensor `{}` that the spec has no place for",
                path.display(),
                crate::diag::shown(extra)
            ),
        )
        .in_file(path)
        .with_hint("use the weights trained from this spec (layer names and kinds must match)")
        .into());
    }
    let vector = |name: &str| -> Result<Vec<f32>, Box<Diagnostic>> {
        let t = tensors.get(name).ok_or_else(|| {
            Diagnostic::general(Code::BadWeights, format!("`{}` has no tensor `{name}`", path.display()))
                .in_file(path)
                .with_hint("use a weights file written by `netc train`")
        })?;
        if t.shape != [graph.input_width] {
            return Err(Diagnostic::general(
                Code::BadWeights,
                format!(
                    "tensor `{name}` in `{}` has shape {:?}, but the input is {} wide",
                    path.display(),
                    t.shape,
                    graph.input_width
                ),
            )
            .in_file(path)
            .with_hint("the spec's input width differs from the one these weights were trained with")
            .into());
        }
        Ok(t.data.clone())
    };
    let normalization = Normalization {
        shift: vector("input.shift")?,
        scale: vector("input.scale")?,
    };
    let spec_hash = meta.get(crate::run::provenance::SPEC_HASH).cloned();
    // The hash is compiled into `netc build`'s C header and executable: it must be plain text.
    if let Some(hash) = spec_hash
        .as_ref()
        .filter(|h| h.is_empty() || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(Diagnostic::general(
            Code::BadWeights,
            format!(
                "`{}` has a `{}` that is not a hash: `{}`",
                path.display(),
                crate::run::provenance::SPEC_HASH,
                crate::diag::shown(hash)
            ),
        )
        .in_file(path)
        .with_hint("use a weights file written by `netc train`, or remove the damaged metadata")
        .into());
    }
    let warnings = crate::run::provenance::compare(&meta, run, path).into_iter().collect();
    Ok(Trained {
        graph,
        params,
        normalization,
        spec_hash,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_deterministic_and_readable_by_the_safetensors_crate() {
        let tensors = vec![
            NamedTensor {
                name: "b".into(),
                shape: vec![2],
                data: vec![1.0, 2.0],
            },
            NamedTensor {
                name: "a".into(),
                shape: vec![1, 3],
                data: vec![3.0, 4.0, 5.0],
            },
        ];
        let meta: BTreeMap<String, String> = [("z", "1"), ("format", "pt"), ("m", "x")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bytes = encode(&tensors, meta.clone());
        assert_eq!(bytes, encode(&tensors, meta.clone()));
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        assert_eq!(header_len % 8, 0);
        let (decoded, decoded_meta) = decode(&bytes, Path::new("t.safetensors")).expect("valid");
        assert_eq!(decoded_meta, meta);
        assert_eq!(decoded["a"].data, vec![3.0, 4.0, 5.0]);
        assert_eq!(decoded["b"].shape, vec![2]);
    }
}
