#!/usr/bin/env bash
# Runs every lecture experiment of docs/lecture.md on MNIST and the built-in digits set, and
# copies the tables and plots into docs/lecture/. About 15 minutes on 2 cores.
#   bash examples/lecture/run.sh [OUT_DIR]     (default runs/lecture; MNIST from --data-dir's
#                                              usual places: $NETC_DATA_DIR, ../shared/data, ...)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/lecture}
docs=docs/lecture
export NETC_DATA_DIR=${NETC_DATA_DIR:-../shared/data}
cargo build --locked --release --quiet
netc=target/release/netc
mkdir -p "$out" "$docs"

echo "== 1. training accuracy against depth, sigmoid and relu"
$netc sweep examples/lecture/depth.net --vary act=sigmoid,relu --vary depth=1,2,3,5,7,9,10 \
  --out "$out/depth"
cp "$out/depth/sweep.md" "$docs/depth.md"
cp "$out/depth/sweep.svg" "$docs/depth.svg"

echo "== 2. per-layer gradients, 8 layers, sigmoid and relu"
for act in sigmoid relu; do
  $netc train examples/lecture/depth.net --set depth=8 --set act=$act --grad-stats -q \
    --out "$out/gradients-$act" 2>/dev/null
  cp "$out/gradients-$act/metrics.csv" "$docs/gradients-$act.csv"
  cp "$out/gradients-$act/gradients.svg" "$docs/gradients-$act.svg"
done

echo "== 3. maxout against relu; maxout with a piece fixed at zero is relu"
$netc train examples/lecture/relu.net -q --out "$out/relu" --report "$out/relu.json"
$netc train examples/lecture/maxout.net -q --out "$out/maxout" --report "$out/maxout.json"
$netc train examples/lecture/maxout.net -q --out "$out/maxout3" --report "$out/maxout3.json" \
  --set model.h1.units=768 --set model.h1.pieces=3 --set model.h2.units=768 --set model.h2.pieces=3
$netc train examples/lecture/maxout_fixed_zero.net -q --out "$out/maxout_fixed_zero" \
  --report "$out/maxout_fixed_zero.json"
# Every epoch's losses and accuracies, to the last digit (the seconds column aside).
cmp <(cut -d, -f1-6 "$out/relu/metrics.csv") <(cut -d, -f1-6 "$out/maxout_fixed_zero/metrics.csv")
echo "maxout_fixed_zero.net trained exactly like relu.net"
for r in relu maxout maxout3 maxout_fixed_zero; do cp "$out/$r.json" "$docs/$r.json"; done

echo "== 4. optimizers"
$netc sweep examples/lecture/optimizers.net --vary train.optimizer=sgd,momentum,adagrad,rmsprop,adam \
  --vary train.optimizer.lr=0.1,0.01,0.001 --out "$out/optimizers"
cp "$out/optimizers/sweep.md" "$docs/optimizers.md"
cp "$out/optimizers/sweep.svg" "$docs/optimizers.svg"

echo "== 5. the train/test gap and its remedies"
for s in overfit overfit_early_stop overfit_l2 overfit_l1 overfit_dropout; do
  $netc train examples/lecture/$s.net -q --out "$out/$s" --report "$out/$s.json"
  cp "$out/$s.json" "$docs/$s.json"
  cp "$out/$s/curves.svg" "$docs/$s.svg"
  $netc diagnose "$out/$s" > "$docs/$s.diagnose.txt"
done

echo "== 6. dropout's weight scaling against averaging sampled masks"
for m in linear relu; do
  $netc train examples/lecture/dropout_$m.net -q --out "$out/dropout_$m"
  for n in 10 100 1000 10000; do
    $netc eval examples/lecture/dropout_$m.net --weights "$out/dropout_$m/weights.safetensors" \
      --dropout-samples $n --report "$out/dropout_$m-$n.json" > /dev/null
    cp "$out/dropout_$m-$n.json" "$docs/dropout_$m-$n.json"
  done
done
echo "== 7. the opening figure: plain against residual networks, training results against depth"
$netc sweep examples/lecture/plain_mlp.net --vary depth=10,20,30,40 --out "$out/plain_mlp"
$netc sweep examples/lecture/residual_mlp.net --vary blocks=5,10,15,20 --out "$out/residual_mlp"
# The same residual stacks with every block's last layer at the default initializer: the
# deeper ones diverge, which makes the sweep exit 1 (its table records them).
$netc sweep examples/lecture/residual_mlp.net --vary blocks=5,10,15,20 \
  --set last_init=xavier --out "$out/residual_mlp_default_init" || true
$netc sweep examples/lecture/plain_cnn.net --vary n=3,9 --out "$out/plain_cnn"
$netc sweep examples/lecture/residual_cnn.net --vary n=3,9 --out "$out/residual_cnn"
for s in plain_mlp residual_mlp residual_mlp_default_init plain_cnn residual_cnn; do
  cp "$out/$s/sweep.md" "$docs/$s.md"
  cp "$out/$s/sweep.svg" "$docs/$s.svg"
done
echo "done: $out, $docs"
