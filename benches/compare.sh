#!/usr/bin/env bash
# Runs the standard workloads (../shared/bench/WORKLOADS.md) on netc's JIT and interpreter and
# on the peers (PyTorch, JAX; set up with ../shared/bench/peers/setup.sh), and prints a markdown
# table of times and ratios. Each epoch figure is the best of three after a warm-up.
# The machine is shared: for minutes at a time its two cores run at half speed. So the JIT and
# the peers are measured in ROUNDS interleaved rounds (default 3) and each keeps its best round;
# the interpreter, the slowest by far, runs once.
# usage: benches/compare.sh [PEERS_PYTHON]   (default /tmp/netc-peers/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-/tmp/netc-peers/bin/python}
rounds=${ROUNDS:-3}
peers=../shared/bench/peers
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build --locked --release -q
for w in mlp deep wide; do
  target/release/netc bench "benches/workloads/$w.net" --backend interp --report "$out/$w-interp.json" > /dev/null
done
touch "$out/peers.jsonl" "$out/aot.jsonl"
for round in $(seq "$rounds"); do
  for w in mlp deep wide; do
    target/release/netc bench "benches/workloads/$w.net" --backend jit --report "$out/$w-jit-$round.json" > /dev/null
  done
  AOT_ROUNDS=1 bash benches/aot_latency.sh >> "$out/aot.jsonl"
  if [ -x "$python" ]; then
    for w in mlp deep wide infer1; do
      "$python" "$peers/torch_mlp.py" "$w" >> "$out/peers.jsonl"
      XLA_FLAGS=--xla_cpu_multi_thread_eigen=true "$python" "$peers/jax_mlp.py" "$w" >> "$out/peers.jsonl" 2>/dev/null
    done
  elif [ "$round" = 1 ]; then
    echo "peers not found at $python: run $peers/setup.sh first" >&2
  fi
done
python3 - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
def load(name):
    if name.endswith("-jit.json"):
        # The best round: the fastest epoch, and separately the lowest latency and compile time.
        runs = [json.load(open(os.path.join(d, f))) for f in sorted(os.listdir(d)) if f.startswith(name[:-5] + "-")]
        best = dict(min(runs, key=lambda r: r["epoch_seconds"]))
        best["latency_us"] = min(r["latency_us"] for r in runs)
        best["compile_ms"] = min(r["compile_ms"] for r in runs)
        return best
    return json.load(open(os.path.join(d, name)))
peers = {}
for line in open(os.path.join(d, "peers.jsonl")):
    line = line.strip()
    if line:
        r = json.loads(line)
        key = (r["peer"], r["workload"])
        if key in peers:
            for field in ("epoch_s", "us_per_sample", "compile_s"):
                if field in r and field in peers[key]:
                    r[field] = min(r[field], peers[key][field])
        peers[key] = r
lines = [json.loads(l) for l in open(os.path.join(d, "aot.jsonl")) if l.strip()]
mlp = [l for l in lines if l.get("model", "mlp") == "mlp"]
aot = [min((l for l in mlp if "us_per_sample" in l), key=lambda l: l["us_per_sample"]), next(l for l in mlp if "object_bytes" in l)]
gflop = {"mlp": 97, "deep": 90, "wide": 670}
print("| workload | netc jit | netc interp | PyTorch | JAX | PyTorch / jit | JAX / jit | jit GFLOP/s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for w in ["mlp", "deep", "wide"]:
    j, i = load(f"{w}-jit.json"), load(f"{w}-interp.json")
    t = peers.get(("pytorch", w), {}).get("epoch_s"); x = peers.get(("jax", w), {}).get("epoch_s")
    je = j["epoch_seconds"]
    fmt = lambda v: f"{v:.3f} s" if v else "-"
    ratio = lambda v: f"{v / je:.2f}x" if v else "-"
    print(f"| {w} epoch | {fmt(je)} | {fmt(i['epoch_seconds'])} | {fmt(t)} | {fmt(x)} | {ratio(t)} | {ratio(x)} | {gflop[w] / je:.0f} |")
j = load("mlp-jit.json")
t = peers.get(("pytorch", "infer1"), {}).get("us_per_sample"); x = peers.get(("jax", "infer1"), {}).get("us_per_sample")
a = aot[0]["us_per_sample"]
fmt = lambda v: f"{v:.1f} us" if v else "-"
print(f"| infer1 latency | {fmt(j['latency_us'])} (AOT exe {a:.1f} us) | {fmt(load('mlp-interp.json')['latency_us'])} | {fmt(t)} | {fmt(x)} | {t / j['latency_us']:.2f}x | {x / j['latency_us']:.2f}x | |" if t and x else f"| infer1 | {fmt(j['latency_us'])} | | | | | | |")
jc = peers.get(("jax", "mlp"), {}).get("compile_s")
print(f"| compile (mlp spec to ready step) | {j['compile_ms']:.1f} ms | {load('mlp-interp.json')['compile_ms']:.1f} ms | - | {jc * 1000:.0f} ms | | {jc * 1000 / j['compile_ms']:.0f}x | |" if jc else "")
print()
print(f"rounds: {len([f for f in os.listdir(d) if f.startswith('mlp-jit-')])}, best of each kept")
print(f"AOT: batch-1 latency / JIT batch-1 latency = {a / j['latency_us']:.2f}; object {aot[1]['object_bytes']} bytes, executable {aot[1]['executable_bytes']} bytes")
print(f"wide on the JIT: {gflop['wide'] / load('wide-jit.json')['epoch_seconds']:.0f} GFLOP/s (this machine: AVX-512 multiply-adds peak at ~234 GFLOP/s on 2 cores, `cargo bench --bench kernels -- machine`)")
PY
