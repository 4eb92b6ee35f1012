#!/usr/bin/env python3
"""Writes the hostile corpus that tests/hostile.rs runs: specs, data files and weights as a
hostile new user (or a broken disk, or a Windows editor) would give them to netc.

Run from anywhere: `python3 tests/hostile/make_corpus.py`. The files are committed; this script
documents how each was made and rewrites them byte for byte (it uses no randomness but its own
seeded generator).
"""
import gzip
import json
import os
import random
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(12)

GOOD = """model tiny {
  input 4
  dense h: 6 relu
  dense out: 3 softmax
  loss cross_entropy
}

train {
  data "../data/good.csv"
  epochs 2 batch 4 seed 1
}
"""


def write(rel, data):
    path = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)


# ---- specs: each is checked, formatted (`fmt --check`) and benchmarked by the test.
specs = {
    "stray_braces.net": "}" * 10_000 + "\n",
    "stray_braces_lines.net": "}\n" * 5_000,
    "nul_bytes.net": b"\0" * 4096,
    "nul_in_good_spec.net": GOOD.replace("relu", "re\0lu"),
    "bom.net": "\ufeff" + GOOD,
    "latin1.net": GOOD.encode("utf-8").replace(b"tiny", b"t\xe9ny"),
    "empty.net": "",
    "only_comment.net": "# nothing here\n",
    "backslash_path.net": GOOD.replace('"../data/good.csv"', '"data\\train.csv"'),
    "unclosed_string.net": GOOD.replace('"../data/good.csv"', '"../data/good.csv'),
    "huge_width.net": GOOD.replace("dense h: 6", "dense h: 18446744073709551616"),
    "million_digit_width.net": GOOD.replace("dense h: 6", "dense h: " + "9" * 100_000),
    "infinite_lr.net": GOOD.replace("epochs 2", "optimizer sgd lr 1e999\n  epochs 2"),
    "huge_epochs.net": GOOD.replace("epochs 2", "epochs 99999999999999999999"),
    "huge_repeat.net": GOOD.replace("dense h: 6 relu", "repeat 9999 { repeat 9999 { dense 6 relu } }"),
    "non_ascii_identifier.net": GOOD.replace("dense h:", "dense höhe:"),
    "control_characters.net": GOOD.replace("dense h:", "dense \x1b[31mh\x1b[0m:"),
    "long_line.net": GOOD.replace("dense h:", "dense " + "h" * 100_000 + ":"),
    "deep_blocks.net": "".join(
        "block b%d() { %s }\n" % (i, "b%d()" % (i + 1) if i < 39 else "dense 4 relu") for i in range(40)
    )
    + GOOD.replace("dense h: 6 relu", "b0()"),
    "self_recursive_block.net": "block b() { b() }\n" + GOOD.replace("dense h: 6 relu", "b()"),
    "two_calls_one_line.net": "block b() { dense 4 relu }\n" + GOOD.replace("dense h: 6 relu", "b() b()"),
    "deep_parentheses.net": GOOD.replace("dense h: 6", "dense h: " + "(" * 5000 + "6" + ")" * 5000),
    "unbalanced_open.net": "model m {\n" * 3000,
    "random_bytes.net": bytes(rng.randrange(256) for _ in range(8192)),
    "random_tokens.net": " ".join(
        rng.choice(["model", "train", "{", "}", "dense", "relu", "10", ":", "x", "input", "\n", "#", '"'])
        for _ in range(4000)
    ),
    "crlf.net": GOOD.replace("\n", "\r\n"),
    # Convolutional specs over the same 4 features, read as a 1x2x2 image.
    "cnn_huge_kernel.net": GOOD.replace("input 4\n  dense h: 6 relu", "input 1 2 2\n  conv h: 6 relu kernel 4096"),
    "cnn_huge_filters.net": GOOD.replace("input 4\n  dense h: 6 relu", "input 1 2 2\n  conv h: 99999999999 relu kernel 1"),
    "cnn_huge_padding.net": GOOD.replace("input 4\n  dense h: 6 relu", "input 1 2 2\n  conv h: 6 relu kernel 3 pad 4096\n  global_avgpool"),
    "cnn_huge_image.net": GOOD.replace("input 4\n  dense h: 6 relu", "input 65536 65536 65536\n  global_avgpool"),
    "cnn_overflowing_image.net": GOOD.replace(
        "input 4\n  dense h: 6 relu", "input 1099511627776 1099511627776 1099511627776\n  global_avgpool"
    ),
    "cnn_overflowing_output.net": GOOD.replace(
        "input 4\n  dense h: 6 relu", "input 1 2 2\n  conv h: 1099511627776 kernel 1 pad 4096\n  global_avgpool"
    ),
    "cnn_wrong_shape.net": GOOD.replace("input 4\n  dense h: 6 relu", "input 3 32 32\n  conv h: 6 relu kernel 3"),
    "cnn_zero_stride.net": GOOD.replace("input 4\n  dense h: 6 relu", "input 1 2 2\n  conv h: 6 relu kernel 1 stride 0"),
    "cnn_residual_repeat.net": GOOD.replace(
        "input 4\n  dense h: 6 relu", "input 1 2 2\n  repeat 5000 { residual relu { conv 1 kernel 1; batchnorm } }"
    ),
    "cnn_self_add.net": GOOD.replace("dense h: 6 relu", "dense h: 6 relu\n  add h\n  add nowhere\n  concat h h h h"),
    "cnn_nested_residuals.net": GOOD.replace(
        "dense h: 6 relu", "residual { " * 30 + "dense 4 relu" + " }" * 30
    ),
}
for name, text in specs.items():
    write("specs/" + name, text)

# ---- data: each is the training data of GOOD (4 features, labels 0..2).
good_rows = "".join(
    "%s,%d\n" % (",".join("%.3f" % rng.random() for _ in range(4)), i % 3) for i in range(24)
)
write("data/good.csv", good_rows)
write("good.net", GOOD)

data = {
    "trailing_comma.csv": good_rows.replace("\n", ",\n"),
    "text_labels.csv": good_rows.replace(",0\n", ",cat\n").replace(",1\n", ",dog\n").replace(",2\n", ",cow\n"),
    "semicolon.csv": good_rows.replace(",", ";"),
    "tabs.csv": good_rows.replace(",", "\t"),
    "bom.csv": "\ufeff" + good_rows,
    "nan_features.csv": good_rows.replace(good_rows.split(",")[0], "nan", 1),
    "inf_features.csv": good_rows.replace(good_rows.split(",")[0], "-inf", 1),
    "huge_number.csv": good_rows.replace(good_rows.split(",")[0], "1e999", 1),
    "one_column.csv": "".join("%d\n" % (i % 3) for i in range(24)),
    "negative_label.csv": good_rows.replace(",1\n", ",-1\n", 1),
    "fraction_label.csv": good_rows.replace(",1\n", ",1.5\n", 1),
    "empty.csv": "",
    "only_newlines.csv": "\n\n\n",
    "ragged.csv": good_rows + "1,2\n",
    "binary.csv": bytes(rng.randrange(256) for _ in range(4096)),
    "nul.csv": b"\0" * 1024,
    "long_line.csv": "1," * 50_000 + "0\n",
    "quoted.csv": good_rows.replace("0.", '"0.', 1),
    "latin1.csv": good_rows.encode() + b"0.1,0.2,0.3,0.4\xe9,1\n",
    "header_only.csv": "a,b,c,d,label\n",
    "not_gzip.csv.gz": good_rows,
    "truncated_gzip.csv.gz": gzip.compress(good_rows.encode(), mtime=0)[:40],
    "zero_dim.idx": struct.pack(">BBBB", 0, 0, 0x08, 2) + struct.pack(">II", 0, 4),
    "wrong_magic.idx": b"\x12\x34\x56\x78" + b"\0" * 64,
    "truncated.idx": struct.pack(">BBBB", 0, 0, 0x08, 2) + struct.pack(">II", 24, 4) + b"\1" * 10,
    "huge_dims.idx": struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
    "float_idx.idx": struct.pack(">BBBB", 0, 0, 0x0D, 2) + struct.pack(">II", 24, 4) + struct.pack(">f", float("nan")) * 96,
    "bad_header.npy": b"\x93NUMPY\x01\x00" + struct.pack("<H", 30) + b"{'descr': '<f4', 'fortran" + b" " * 5,
    "truncated.npy": b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
    + ("{'descr': '<f4', 'fortran_order': False, 'shape': (24, 4), }".ljust(117) + "\n").encode()
    + b"\0" * 20,
    "huge_shape.npy": b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
    + ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }".ljust(117) + "\n").encode(),
    "fortran.npy": b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
    + ("{'descr': '<f4', 'fortran_order': True, 'shape': (24, 4), }".ljust(117) + "\n").encode()
    + b"\0" * (24 * 4 * 4),
    "object.npy": b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
    + ("{'descr': '|O', 'fortran_order': False, 'shape': (24, 4), }".ljust(117) + "\n").encode()
    + b"\0" * 64,
}
labels = struct.pack(">BBBB", 0, 0, 0x08, 1) + struct.pack(">I", 24) + bytes(i % 3 for i in range(24))
write("data/labels.idx", labels)
for name, content in data.items():
    write("data/" + name, content)


# ---- weights for GOOD: h.weight [6,4], h.bias [6], out.weight [3,6], out.bias [3],
# input.shift [4], input.scale [4].
def safetensors(tensors, metadata=None, header_override=None):
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blob = b""
    for name, (shape, values) in tensors.items():
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    text = json.dumps(header, separators=(",", ":")) if header_override is None else header_override
    text += " " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + blob


def good_tensors():
    def t(shape):
        n = 1
        for d in shape:
            n *= d
        return (shape, [round(rng.uniform(-1, 1), 3) for _ in range(n)])

    return {
        "h.weight": t([6, 4]),
        "h.bias": t([6]),
        "out.weight": t([3, 6]),
        "out.bias": t([3]),
        "input.shift": ([4], [0.0] * 4),
        "input.scale": ([4], [1.0] * 4),
    }


meta = {"format": "pt", "netc.model": "tiny"}
good = safetensors(good_tensors(), meta)
write("weights/good.safetensors", good)


def with_value(name, index, value):
    ts = good_tensors()
    ts[name][1][index] = value
    return safetensors(ts, meta)


weights = {
    "empty.safetensors": b"",
    "short.safetensors": b"\x10\0\0",
    "truncated.safetensors": good[: len(good) - 17],
    "header_too_long.safetensors": struct.pack("<Q", 1 << 40) + b"{}",
    "header_not_json.safetensors": struct.pack("<Q", 8) + b"not json",
    "nan_scale.safetensors": with_value("input.scale", 1, float("nan")),
    "inf_shift.safetensors": with_value("input.shift", 0, float("inf")),
    "nan_weight.safetensors": with_value("h.weight", 3, float("nan")),
    "missing_tensor.safetensors": safetensors({k: v for k, v in good_tensors().items() if k != "out.bias"}, meta),
    "wrong_shape.safetensors": safetensors(dict(good_tensors(), **{"h.bias": ([7], [0.0] * 7)}), meta),
    "extra_tensor.safetensors": safetensors(dict(good_tensors(), **{"z.weight": ([1], [0.0])}), meta),
    "offsets_out_of_range.safetensors": safetensors(
        {}, None, '{"h.weight":{"dtype":"F32","shape":[6,4],"data_offsets":[0,999999]}}'
    ),
    "f64.safetensors": safetensors(
        {}, None, '{"h.weight":{"dtype":"F64","shape":[6,4],"data_offsets":[0,0]}}'
    ),
    "random_bytes.safetensors": bytes(rng.randrange(256) for _ in range(2048)),
    "csv_as_weights.safetensors": good_rows,
}
for name, content in weights.items():
    write("weights/" + name, content)
