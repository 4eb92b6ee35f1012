#!/usr/bin/env bash
# Builds the mlp (784-256-256-10) and lenet workloads with `netc build` and measures, next to
# the JIT, in AOT_ROUNDS interleaved rounds (default 3; the machine is shared, so each figure is
# the best of its rounds):
#   - batch-1 latency: the object through its C API (benches/c/latency.c, one row per call)
#     against the JIT's batch-1 forward (`netc bench`, "batch-1 forward latency");
#   - throughput: the built executable on a 60,000-row CSV file against
#     `netc predict SPEC --weights W` on the same file (wall time, output to /dev/null).
# Prints per workload one JSON line per figure, then one with the sizes:
#   {"workload": "infer1", "backend": "aot", "model": M, "us_per_sample": AOT, "jit_us_per_sample": JIT, "ratio": AOT/JIT}
#   {"workload": "rows60k", "backend": "aot", "model": M, "rows": 60000, "aot_seconds": AOT, "jit_predict_seconds": JIT, "ratio": AOT/JIT}
#   {"model": M, "object_bytes": N, "executable_bytes": N}
# usage: benches/aot_latency.sh [NETC]   (default target/release/netc)
set -euo pipefail
cd "$(dirname "$0")/.."
netc=${1:-target/release/netc}
rounds=${AOT_ROUNDS:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# Weights: one epoch on synthetic data is enough for timing (speed does not depend on values).
# The rows to predict: 60,000 of 784 random values, no label column.
python3 - "$dir" <<'PY'
import random, sys
random.seed(0)
with open(sys.argv[1] + "/rows.csv", "w") as f:
    for i in range(512):
        f.write(",".join(f"{random.random():.3f}" for _ in range(784)) + f",{i % 10}\n")
with open(sys.argv[1] + "/rows60k.csv", "w") as f:
    for i in range(60000):
        f.write(",".join(f"{random.random():.3f}" for _ in range(784)) + "\n")
PY
now() { date +%s.%N; }
for w in mlp lenet; do
  sed 's|data mnist|data "rows.csv" validation 10%|' "benches/workloads/$w.net" > "$dir/$w.net"
  "$netc" train "$dir/$w.net" -q --epochs 1 --out "$dir/run-$w"
  "$netc" build "$dir/$w.net" --weights "$dir/run-$w/weights.safetensors" -o "$dir/$w" >/dev/null
  cc -O2 -I"$dir" -DHEADER="\"$w.h\"" -DSYMBOL="$w" -DINPUT_WIDTH=784 -DOUTPUT_WIDTH=10 \
    -o "$dir/latency-$w" benches/c/latency.c "$dir/$w.o" -lm -lpthread
done
for round in $(seq "$rounds"); do
  for w in mlp lenet; do
    "$dir/latency-$w" | sed "s/.*\"us_per_sample\": \([0-9.]*\).*/$w aot_us \1/" >> "$dir/figures"
    "$netc" bench "$dir/$w.net" --repeats 0 --report "$dir/bench-$w-$round.json" > /dev/null
    python3 -c "import json,sys; print('$w jit_us', json.load(open(sys.argv[1]))['latency_us'])" \
      "$dir/bench-$w-$round.json" >> "$dir/figures"
    t=$(now); "$dir/$w" "$dir/rows60k.csv" > /dev/null; echo "$w aot_s $(echo "$(now) - $t" | bc)" >> "$dir/figures"
    t=$(now); "$netc" predict "$dir/$w.net" --weights "$dir/run-$w/weights.safetensors" "$dir/rows60k.csv" > /dev/null
    echo "$w jit_s $(echo "$(now) - $t" | bc)" >> "$dir/figures"
  done
done
python3 - "$dir" <<'PY'
import os, sys
d = sys.argv[1]
best = {}
for line in open(os.path.join(d, "figures")):
    model, key, value = line.split()
    best[(model, key)] = min(float(value), best.get((model, key), float("inf")))
for m in ["mlp", "lenet"]:
    a, j = best[(m, "aot_us")], best[(m, "jit_us")]
    print(f'{{"workload": "infer1", "backend": "aot", "model": "{m}", "us_per_sample": {a:.3f}, "jit_us_per_sample": {j:.3f}, "ratio": {a / j:.3f}}}')
    a, j = best[(m, "aot_s")], best[(m, "jit_s")]
    print(f'{{"workload": "rows60k", "backend": "aot", "model": "{m}", "rows": 60000, "aot_seconds": {a:.3f}, "jit_predict_seconds": {j:.3f}, "ratio": {a / j:.3f}}}')
    o, e = os.path.getsize(os.path.join(d, m + ".o")), os.path.getsize(os.path.join(d, m))
    print(f'{{"model": "{m}", "object_bytes": {o}, "executable_bytes": {e}}}')
PY
