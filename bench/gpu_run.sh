#!/usr/bin/env bash
# The GPU measurements of the benchmark in one command, for a GPU machine with Python 3.12, JAX
# (CUDA), PyTorch and NumPy but without TensorFlow, Keras or a package index.
#
# First, on a machine with a package index:
#     make gpu-prep DATA=path/to/cifar10.npz     # Keras' wheels into .whl/, the images into .data/
# then copy the checkout with .whl/ and .data/ to the GPU machine and run, from its root:
#     bash bench/gpu_run.sh
#
# keras-preact trains through its own pipeline on the JAX backend (the NumPy feed: no TensorFlow),
# beside the plain Keras model and PyTorch, in bfloat16. Each part has its own time limit and
# JSON-lines file under $OUT, so a part that overruns costs only itself; the report of everything
# measured comes last. Copy the files into bench/results/ afterwards.
#
# Environment: OUT (default runs/gpu), DEVICE (default gpu; cpu for a dry run of the script
# on a CPU), SKIP_INSTALL=1 (Keras is already importable), BENCH_ARGS (added to every part, e.g.
# "--steps 2 --repeats 1" for a dry run), LIMIT (seconds for every part instead of each one's own),
# PARTS (the parts to run, by name; default all four). ResNet-1001V2's XLA compile alone takes
# 83 s on a 2-core CPU; if its 170 s turn out too few, run it on its own:
#     PARTS="r164v2-bf16 cifar-v1-bf16 accuracy" bash bench/gpu_run.sh
#     PARTS=r1001v2-bf16 LIMIT=400 bash bench/gpu_run.sh
set -uo pipefail
ALL_PARTS="r164v2-bf16 cifar-v1-bf16 accuracy r1001v2-bf16"
PARTS=${PARTS:-$ALL_PARTS}
for name in $PARTS; do
    [[ " $ALL_PARTS " == *" $name "* ]] || { echo "error: unknown part '$name' (parts: $ALL_PARTS)"; exit 2; }
done
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-gpu}
DATA=.data/cifar10.npz
SITE=.whl/site  # where Keras' wheels are installed, inside the checkout
mkdir -p "$OUT"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl || { echo "error: cannot install .whl/ (make gpu-prep)"; exit 2; }
    export PYTHONPATH="$PWD/$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
[ -f "$DATA" ] || { echo "error: no $DATA (make gpu-prep DATA=...)"; exit 2; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

part() {  # part NAME SECONDS ARGS...: one bench run with its own file, log and time limit
    local name=$1 limit=${LIMIT:-$2}
    shift 2
    [[ " $PARTS " == *" $name "* ]] || return 0
    echo "== $name (limit ${limit}s)"
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
    timeout "$limit" python3 -m bench run --device "$DEVICE" --backend jax --data "$DATA" \
        --output "$OUT/$name.jsonl" --overwrite "$@" ${BENCH_ARGS:-} >"$OUT/$name.log" 2>&1
    local rc=$?
    local records
    records=$(cat "$OUT/$name.jsonl" "$OUT/$name.jsonl.partial" 2>/dev/null | grep -c .)
    echo "   exit $rc, $records records; log: $OUT/$name.log"
    [ "$rc" = 0 ] || tail -n 3 "$OUT/$name.log"
}

# The benchmark's GPU target first: ResNet-164V2 at batch 128 in bfloat16 (>= 6,100 images/s on
# an H100). Every part checks first that the three implementations have the same parameters
# (parity). The limits add up to 520 s, under ten minutes in all.
part r164v2-bf16 140 --stages train --models ResNet164V2 --precision bfloat16
part cifar-v1-bf16 120 --stages train --models ResNet20V1,ResNet110V1,ResNet56V1 --precision bfloat16
part accuracy 90 --stages accuracy --models ResNet20V1
# The deepest network last, with the time left: it runs at batch 128 on one GPU, and how fast.
part r1001v2-bf16 170 --stages train --models ResNet1001V2 --precision bfloat16 \
    --impls keras-preact,pytorch

# What a part killed at its limit had measured is in its .partial file: report that too.
shopt -s nullglob
files=("$OUT"/*.jsonl "$OUT"/*.jsonl.partial)
[ ${#files[@]} -gt 0 ] && python3 -m bench report "${files[@]}" | tee "$OUT/report.md"
