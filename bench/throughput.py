"""Ours with Antibody on vs our plain-SFT mode vs TRL's SFTTrainer (plain SFT), on identical data, model, LoRA and
batch. Prints JSON; ``--save`` writes ``bench/results/throughput-<device>.json``.

Arms (each in its own process, so peak memory is per arm and TRL's imports never touch ours):
- ``antibody_packed``: ``worker.training.trainer.train`` as a job runs it (the refusal pass on, prefix-KV;
  padding-free rows with per-sample sums, ``packing=True``, the default);
- ``antibody``: the same on padded batches (``packing=False``, the reference layout);
- ``sft``, ``sft_packed``: our loop with uniform weights and no refusal pass (r = 0 for every line, through the
  frozen-ratio path), padded and packed: the cost of training without the defence;
- ``trl``, ``trl_padding_free``, ``trl_packed``: TRL's SFTTrainer (``throughput_trl.py``).

Every arm trains the same LoRA (rank 16, α 32, q/k/v/o), AdamW at 2e-4 with linear decay and 10% warm-up, for the
same epochs over the same file. Time runs from the first step's start to the last step's end (model load, data
preparation and saving excluded); tokens are each arm's own count of what it trained: ``trained`` = the response
targets the loss covers, ``all`` = every non-pad token through the model. ``antibody_over_trl`` = the faster
Antibody arm's trained tokens/s ÷ the best TRL variant's (``antibody_arm``, ``trl_arm`` name them;
``antibody_default_over_trl`` uses the packed job default). MFU counts 4·N_frozen + 6·N_lora FLOPs per token
(the frozen base needs no weight gradient) against the device's bf16 peak, or on CPU a measured fp32 matmul rate.

    python bench/throughput.py --save                # CPU: SmolLM2 on the varied-length file
    python bench/throughput.py --model tiny --lines 16           # seconds: the same code path
    python bench/throughput.py --device cuda --model 1b --config varied --config 8x512 --config 16x1024 --save

TRL comes with the ``bench`` extra (``pip install -e '.[bench]'``; ``make install`` includes it), never with the
service. On a GPU machine without the data packages: ``--write-data DIR`` here, ``--data-dir DIR`` there
(``bench/gpu_checks.sh``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import SHAPES, device_name, emit, results_name, write_random_chat_model  # noqa: E402
from throughput_data import shape_of, write_data  # noqa: E402
from throughput_ours import run_ours  # noqa: E402
from throughput_trl import TRL_ARMS, run_trl  # noqa: E402

OURS = ("antibody", "antibody_packed", "sft", "sft_packed")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One arm, in this process: its timings, tokens and peak memory."""
    torch.manual_seed(spec["seed"])
    stamps: list[float] = []
    figures = (run_trl if spec["arm"] in TRL_ARMS else run_ours)(spec["arm"], spec, stamps)
    seconds = stamps[-1] - stamps[0]
    steps = [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]  # steps 2..n: no warm-up
    cuda = spec["device"].startswith("cuda")
    return {
        "arm": spec["arm"],
        "steps": len(stamps) - 1,
        "seconds": round(seconds, 3),
        "step_s_median": round(statistics.median(steps), 4) if steps else None,
        "trained_tokens": figures["trained_tokens"],
        "all_tokens": figures["tokens"],
        "trained_tokens_per_s": round(figures["trained_tokens"] / seconds, 1),
        "all_tokens_per_s": round(figures["tokens"] / seconds, 1),
        # from the end of step 1 on (no warm-up); all tokens, the count both arms have per step
        "steady_all_tokens_per_s": round(sum(figures["step_tokens"][1:]) / (stamps[-1] - stamps[1]), 1)
        if len(stamps) > 2
        else None,
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "final_loss": figures["loss"],
    }


def cpu_matmul_peak(seconds: float = 2.0) -> float:
    """FLOP/s of a 1024² fp32 matmul on this CPU: the achievable peak the CPU MFU is measured against."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - start)


def model_folder(name: str, device: torch.device, dest: Path, rank: int) -> tuple[Path, dict[str, int]]:
    """The model every arm loads: SmolLM2's real weights (``smollm2``) or a random-init shape from SHAPES."""
    from transformers import AutoModelForCausalLM

    from worker.datasets import assets

    if name == "smollm2" and device.type == "cpu":
        path = assets.smollm2_dir()
    else:
        path = dest
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        write_random_chat_model(name, torch.device("cpu"), dtype, path)
    model = AutoModelForCausalLM.from_pretrained(path)
    c = model.config
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    # A tied embedding is also the lm_head (a matmul); an untied one is a lookup, no FLOPs.
    matmul = total if c.tie_word_embeddings else total - model.get_input_embeddings().weight.numel()
    kv = c.num_key_value_heads * getattr(c, "head_dim", c.hidden_size // c.num_attention_heads)
    lora = c.num_hidden_layers * rank * (6 * c.hidden_size + 2 * kv)  # q, k, v, o: rank × (in + out) each
    return Path(path), {"parameters": total, "matmul_parameters": matmul, "lora_parameters": lora}


def peak_flops(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, flops in PEAK_BF16.items():
            if key in name:
                return flops, f"{key} dense bf16 spec"
        return float("nan"), "unknown GPU"
    return cpu_matmul_peak(), "measured fp32 1024x1024 matmul on this CPU"


def spawn(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"arm {spec['arm']} failed (rc {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(config: str, runs: dict[str, list[dict]], counts: dict[str, int], peak: float) -> dict[str, Any]:
    """One row per configuration: every arm's runs, its median trained tokens/s and MFU, and the ratios."""
    median = {arm: statistics.median(r["trained_tokens_per_s"] for r in rs) for arm, rs in runs.items()}
    flops = 4 * counts["matmul_parameters"] + 6 * counts["lora_parameters"]
    arms = {}
    for arm, rs in runs.items():
        all_tps = statistics.median(r["all_tokens_per_s"] for r in rs)
        arms[arm] = {"trained_tokens_per_s": median[arm], "all_tokens_per_s": all_tps, "runs": rs}
        arms[arm]["mfu"] = round(all_tps * flops / peak, 4)
    ours = max((a for a in ("antibody", "antibody_packed") if a in median), key=median.get, default=None)
    trl = max((a for a in TRL_ARMS if a in median), key=median.get, default=None)
    row: dict[str, Any] = {"config": config, "arms": arms, "antibody_arm": ours, "trl_arm": trl}
    if ours and trl:
        row["antibody_over_trl"] = round(median[ours] / median[trl], 3)
    if "antibody_packed" in median and trl:
        row["antibody_default_over_trl"] = round(median["antibody_packed"] / median[trl], 3)
    # time ratios, same layout: how much longer the defence takes than none
    for sft, ab in (("sft", "antibody"), ("sft_packed", "antibody_packed")):
        if sft in median and ab in median:
            row[f"{ab}_time_over_{sft}"] = round(median[sft] / median[ab], 3)
    return row


def _version(package: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _lines(args: argparse.Namespace, config: str) -> int:
    """Lines of a configuration's file: ``--lines`` varied chats, or ``--fixed-steps`` full batches of BxL."""
    return args.lines if config == "varied" else args.fixed_steps * shape_of(config)[0]


def write_files(args: argparse.Namespace) -> None:
    from worker.datasets import assets
    from worker.training.data import load_tokenizer

    tokenizer = load_tokenizer(assets.smollm2_tokenizer_dir())
    args.write_data.mkdir(parents=True, exist_ok=True)
    for config in args.config or ["varied"]:
        lines = _lines(args, config)
        print(write_data(args.write_data / f"{config}.jsonl", config, lines, tokenizer, args.seed))


def measure(
    config: str, args: argparse.Namespace, spec: dict, root: Path, tokenizer: Any, counts: dict, peak: float
) -> dict[str, Any]:
    """Every arm on one configuration's file, ``--repeats`` times, interleaved; one summary row."""
    batch, seq_len = shape_of(config)
    lines = _lines(args, config)
    if args.data_dir:  # written beforehand (--write-data), e.g. for a GPU machine without the data packages
        data = args.data_dir / f"{config}.jsonl"
        lines = len(data.read_text().splitlines())
    else:
        data = write_data(root / f"{config}.jsonl", config, lines, tokenizer, args.seed)
    spec = {**spec, "train_file": str(data), "batch_size": batch or args.batch_size}
    spec["max_seq_len"] = seq_len or args.max_seq_len
    arms = args.arms.split(",")
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    failed: dict[str, str] = {}  # an arm that fails (TRL on a machine whose packages disagree) is reported, not fatal
    for _ in range(args.repeats):
        for arm in [a for a in arms if a not in failed]:
            try:
                runs[arm].append(spawn({**spec, "arm": arm, "out": str(root / f"out-{config}-{arm}")}))
            except RuntimeError as error:
                failed[arm] = str(error)[-2000:]
    row = summarize(config, {arm: rs for arm, rs in runs.items() if rs and arm not in failed}, counts, peak)
    if failed:
        row["failed_arms"] = failed
    shape = {"batch_size": spec["batch_size"], "max_seq_len": spec["max_seq_len"], "lines": lines}
    return {"device": device_name(torch.device(args.device)), **row, **shape}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="smollm2", choices=sorted(SHAPES), help="smollm2 = the real weights on CPU")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--config", action="append", help="varied (default) or BxL, e.g. 8x512; repeatable")
    parser.add_argument("--arms", default=",".join(OURS + TRL_ARMS))
    parser.add_argument("--lines", type=int, default=64, help="lines of the varied file")
    parser.add_argument("--fixed-steps", type=int, default=6, help="steps per epoch of a BxL file")
    parser.add_argument("--batch-size", type=int, default=8, help="for the varied file")
    parser.add_argument("--max-seq-len", type=int, default=1024, help="for the varied file")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="runs of every arm, interleaved; medians reported")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--also-running", default="nothing else", help="what else used the machine (recorded)")
    parser.add_argument("--write-data", type=Path, help="only write each --config's file into this folder")
    parser.add_argument("--data-dir", type=Path, help="train on <config>.jsonl from this folder (--write-data)")
    parser.add_argument("--save", action="store_true", help="write bench/results/throughput-<device>.json")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.write_data:
        write_files(args)
        return
    from worker.training.data import load_tokenizer

    device, started = torch.device(args.device), time.time()
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        root = Path(tmp)
        model_dir, counts = model_folder(args.model, device, root / "model", args.lora_rank)
        tokenizer = load_tokenizer(model_dir)
        peak, peak_source = peak_flops(device)
        spec = {"model_dir": str(model_dir), "device": args.device, "epochs": args.epochs, "seed": args.seed}
        spec |= {"lora_rank": args.lora_rank, "targets": TARGETS}
        rows: list[dict[str, Any]] = []
        for config in args.config or ["varied"]:
            rows.append(measure(config, args, spec, root, tokenizer, counts, peak))
            if args.out:  # the rows so far, should a time limit cut the run short
                args.out.write_text(json.dumps(_report(args, device, counts, peak, peak_source, rows, started)))
    emit(
        _report(args, device, counts, peak, peak_source, rows, started),
        args.out,
        results_name("throughput", device) if args.save else None,
    )


def _report(
    args: argparse.Namespace, device: torch.device, counts: dict, peak: float, source: str, rows: list, started: float
) -> dict[str, Any]:
    import transformers

    return {
        "bench": "throughput",
        "device": device_name(device),
        "model": args.model,
        "model_counts": counts,
        "peak_flops": peak,
        "peak_flops_source": source,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "rows": rows,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": _version("trl")},
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "also_running": args.also_running,
        "wall_s": round(time.time() - started, 1),
    }


if __name__ == "__main__":
    main()
