#!/usr/bin/env bash
# Builds the mlp workload (784-256-256-10) with `netc build` and measures the compiled model's
# per-sample latency at batch 1 through its C API; prints one JSON line and the sizes.
# usage: benches/aot_latency.sh [NETC]   (default target/release/netc)
set -euo pipefail
cd "$(dirname "$0")/.."
netc=${1:-target/release/netc}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# Weights: one epoch on synthetic data is enough for timing (speed does not depend on values).
python3 - "$dir" <<'PY'
import random, sys
random.seed(0)
with open(sys.argv[1] + "/rows.csv", "w") as f:
    for i in range(512):
        f.write(",".join(f"{random.random():.3f}" for _ in range(784)) + f",{i % 10}\n")
PY
sed 's|data mnist|data "rows.csv" validation 10%|' benches/workloads/mlp.net > "$dir/mlp.net"
"$netc" train "$dir/mlp.net" -q --epochs 1 --out "$dir/run"
"$netc" build "$dir/mlp.net" --weights "$dir/run/weights.safetensors" -o "$dir/mlp" >/dev/null
cc -O2 -I"$dir" -DHEADER='"mlp.h"' -DSYMBOL=mlp -DINPUT_WIDTH=784 -DOUTPUT_WIDTH=10 \
  -o "$dir/latency" benches/c/latency.c "$dir/mlp.o" -lm
"$dir/latency"
echo "{\"object_bytes\": $(stat -c %s "$dir/mlp.o"), \"executable_bytes\": $(stat -c %s "$dir/mlp")}"
