#!/usr/bin/env bash
# GPU check of the fast-evaluation issue: the default suite with --device cuda, then robust-accuracy evaluation
# throughput (ours vs torchattacks vs the bare loop vs the active-set limit) on ResNet-18 at 32x32 (batch 512,
# PGD-10, eps 8/255) and on the MNIST CNN, and one summary at the end. Meant to finish in under 8 minutes on one
# H100, set-up included.
#
# The lent GPU machine has no network; its python3 holds torch, torchvision, pandas, matplotlib, jinja2,
# scikit-learn and tqdm. Prepare here, then run there with the prepared folders carried:
#   mkdir -p .whl && python3 -m pip download --no-deps --only-binary=:all: -d .whl torchattacks==3.5.1
#   cp -r ../shared/data/mnist-t10k .mnist
#   printf '/.whl/\n/.mnist/\n' >> .git/info/exclude
#   device run: bash benchmarks/gpu_check.sh        carry: [".whl", ".mnist"]
# Smoke test on a CPU (small sizes, a smaller suite): DEVICE=cpu QUICK=1 SUITE=blackbox MNIST=../shared/data/mnist-t10k \
#   PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
set -uo pipefail
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SUITE=${SUITE:-default}
OUT=${OUT:-/tmp/gpu-check}
MNIST=${MNIST:-.mnist}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ! $PY -c "import torchattacks" 2>/dev/null; then
    $PY -m pip install --quiet --no-deps --no-index .whl/*.whl || echo "could not install the carried wheels"
fi
if [ "${QUICK:-0}" = 1 ]; then
    RESNET=(--n 32 --batch 32 --epochs 1 --repeats 1 --train-n 128); CNN=(--n 200 --batch 100 --epochs 1 --repeats 1)
    TUNED=(--n 32 --epochs 1 --repeats 2 --train-n 128)
else
    RESNET=(--n 4096 --batch 512 --epochs 2 --repeats 3); CNN=(--n 1000 --batch 512 --epochs 3 --repeats 3)
    TUNED=(--n 4096 --epochs 1 --repeats 2)
fi
$PY -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"

start=$(date +%s)
$PY -m robustbench_gan.cli -q run "$SUITE" --device "$DEVICE" --no-cache --out "$OUT/default" > "$OUT/default.log" 2>&1
status=$?
default_line="$SUITE suite on $DEVICE: exit $status in $(( $(date +%s) - start )) s"
echo "$default_line"
[ $status -ne 0 ] && tail -20 "$OUT/default.log"

$PY benchmarks/eval_throughput.py --model resnet18 --device "$DEVICE" --eps 0.0313725 "${RESNET[@]}" \
    2>&1 | tee "$OUT/resnet18.txt"
# device tuning: the automatic batch size and torch.compile (ours only; the first compiled repeat pays the compile)
$PY benchmarks/eval_throughput.py --model resnet18 --device "$DEVICE" --eps 0.0313725 "${TUNED[@]}" \
    --batch auto --compile --no-torchattacks 2>&1 | tee "$OUT/resnet18-tuned.txt"
if [ -d "$MNIST" ]; then
    $PY benchmarks/eval_throughput.py --data-root "$MNIST" --device "$DEVICE" "${CNN[@]}" 2>&1 | tee "$OUT/mnist.txt"
else
    echo "no MNIST folder at $MNIST: the MNIST CNN line is skipped" | tee "$OUT/mnist.txt"
fi

echo
echo "=== summary ($(date -u +%F), $DEVICE) ==="
echo "$default_line"
grep -h "^eps" "$OUT/resnet18.txt" | sed 's/^/resnet18 32x32: /'
grep -h "ours PGD\|batch" "$OUT/resnet18-tuned.txt" | sed 's/^/resnet18 tuned: /'
grep -h "^eps" "$OUT/mnist.txt" | sed 's/^/mnist cnn: /'
echo "total $(( $(date +%s) - start )) s"
