#!/usr/bin/env bash
# Runs the standard workloads (../shared/bench/WORKLOADS.md) on netc's JIT and interpreter and
# on the peers (PyTorch, JAX; set up with ../shared/bench/peers/setup.sh), and prints a markdown
# table of times and ratios. Each epoch figure is the best of three after a warm-up. The
# convolutional workloads (lenet, resnet20) run on the JIT only (the interpreter takes minutes
# per epoch on them); CNN=0 skips them.
# The machine is shared: for minutes at a time its two cores run at half speed. So the JIT and
# the peers are measured in ROUNDS interleaved rounds (default 3) and each keeps its best round;
# the interpreter, the slowest by far, runs once.
# usage: benches/compare.sh [PEERS_PYTHON]   (default /tmp/netc-peers/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-/tmp/netc-peers/bin/python}
rounds=${ROUNDS:-3}
cnn=${CNN:-1}
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
  if [ "$cnn" = 1 ]; then
    target/release/netc bench benches/workloads/lenet.net --report "$out/lenet-jit-$round.json" > "$out/lenet-$round.txt"
    target/release/netc bench benches/workloads/resnet20.net --samples 10000 --report "$out/resnet20-jit-$round.json" > "$out/resnet20-$round.txt"
  fi
  AOT_ROUNDS=1 bash benches/aot_latency.sh >> "$out/aot.jsonl"
  if [ -x "$python" ]; then
    for w in mlp deep wide infer1; do
      "$python" "$peers/torch_mlp.py" "$w" >> "$out/peers.jsonl"
      XLA_FLAGS=--xla_cpu_multi_thread_eigen=true "$python" "$peers/jax_mlp.py" "$w" >> "$out/peers.jsonl" 2>/dev/null
    done
    if [ "$cnn" = 1 ]; then
      for w in lenet resnet20 lenet_infer1; do
        "$python" "$peers/torch_cnn.py" "$w" >> "$out/peers.jsonl"
        XLA_FLAGS=--xla_cpu_multi_thread_eigen=true "$python" "$peers/jax_cnn.py" "$w" >> "$out/peers.jsonl" 2>/dev/null
      done
    fi
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
if not any(f.startswith("lenet-jit-") for f in os.listdir(d)):
    sys.exit(0)
# Convolutional workloads: work per epoch from WORKLOADS.md (training = 3x forward).
cnn_gflop = {"lenet": 825, "resnet20": 1860}
print()
print("| workload | netc jit | PyTorch | JAX | PyTorch / jit | JAX / jit | jit GFLOP/s | of the 234 GFLOP/s limit |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for w in ["lenet", "resnet20"]:
    je = load(f"{w}-jit.json")["epoch_seconds"]
    t = peers.get(("pytorch", w), {}).get("epoch_s"); x = peers.get(("jax", w), {}).get("epoch_s")
    fmt = lambda v: f"{v:.2f} s" if v else "-"
    ratio = lambda v: f"{v / je:.2f}x" if v else "-"
    g = cnn_gflop[w] / je
    print(f"| {w} epoch | {fmt(je)} | {fmt(t)} | {fmt(x)} | {ratio(t)} | {ratio(x)} | {g:.0f} | {g / 234:.0%} |")
jl = load("lenet-jit.json")["latency_us"]
t = peers.get(("pytorch", "lenet_infer1"), {}).get("us_per_sample"); x = peers.get(("jax", "lenet_infer1"), {}).get("us_per_sample")
fmt = lambda v: f"{v:.1f} us" if v else "-"
aot_lenet = [l for l in lines if l.get("workload") == "infer1" and l.get("model") == "lenet" and "us_per_sample" in l]
a = f" (AOT exe {min(l['us_per_sample'] for l in aot_lenet):.1f} us)" if aot_lenet else ""
print(f"| lenet_infer1 latency | {fmt(jl)}{a} | {fmt(t)} | {fmt(x)} | {t / jl:.2f}x | {x / jl:.2f}x | | |" if t and x else f"| lenet_infer1 | {fmt(jl)}{a} | | | | | | |")
# Where the time goes: the per-layer table of the best lenet and resnet20 rounds.
for w in ["lenet", "resnet20"]:
    runs = [json.load(open(os.path.join(d, f))) for f in os.listdir(d) if f.startswith(f"{w}-jit-")]
    best = min(runs, key=lambda r: r["epoch_seconds"])
    print()
    print(f"{w}, batch {best['batch']}: step {best['step_ms']:.2f} ms (forward {best['forward_ms']:.2f}, backward and update {best['backward_ms']:.2f})")
    print()
    print("| layer | kind | forward ms | backward ms | share of the step |")
    print("| --- | --- | --- | --- | --- |")
    for l in best["layers"]:
        share = (l["forward_ms"] + l["backward_ms"]) / best["step_ms"]
        print(f"| {l['name']} | {l['kind']} | {l['forward_ms']:.3f} | {l['backward_ms']:.3f} | {share:.1%} |")
PY
