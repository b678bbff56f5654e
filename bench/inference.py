"""Embedded inference throughput: batched vs one-at-a-time, at 1, 4 and 16 concurrent clients. Prints JSON.

The real server (``worker.inference``: engine + vLLM-protocol app) runs in a uvicorn thread; clients are
``httpx.AsyncClient`` coroutines, each sending ``--requests`` chat completions back to back (greedy, a fixed
``max_tokens``, ``ignore`` of EOS is not available, so completion tokens are counted from ``usage``). "one at a
time" is the same server with ``max_batch=1``. Also measured: the first call to a not-yet-loaded LoRA adapter
(load through ``/v1/load_lora_adapter`` + first completion) against a warm call.

    python bench/inference.py --save          # SmolLM2-135M-Instruct on CPU → bench/results/inference-cpu.json
    python bench/inference.py --model tiny    # the same code path on the tiny random Llama, in seconds
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit  # noqa: E402
from tests.servers import free_port  # noqa: E402
from worker.datasets import assets  # noqa: E402
from worker.inference.engine import Engine  # noqa: E402
from worker.inference.server import create_app  # noqa: E402

NAME = "base"
PROMPTS = ["Write one sentence about the sea.", "What is 17 plus 25?", "Name three colours.",
           "Give me a tip for sleeping well.", "Describe a cat in a few words.", "What is the capital of France?"]


def serve(engine: Engine) -> tuple[str, uvicorn.Server]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, NAME), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


async def clients(url: str, n_clients: int, per_client: int, max_tokens: int) -> dict:
    latencies: list[float] = []
    tokens = 0

    async def one(c: int, client: httpx.AsyncClient) -> None:
        nonlocal tokens
        for k in range(per_client):
            body = {"model": NAME, "max_tokens": max_tokens, "temperature": 0,
                    "messages": [{"role": "user", "content": PROMPTS[(c + k) % len(PROMPTS)]}]}
            t0 = time.perf_counter()
            resp = await client.post(f"{url}/v1/chat/completions", json=body)
            resp.raise_for_status()
            latencies.append(time.perf_counter() - t0)
            tokens += resp.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(timeout=600) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(c, client) for c in range(n_clients)))
        wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {"clients": n_clients, "requests": len(lat), "completion_tokens": tokens, "wall_s": round(wall, 2),
            "tokens_per_s": round(tokens / wall, 1), "p50_s": round(statistics.median(lat), 3),
            "p99_s": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3)}


def adapter_cost(url: str, model_dir: Path, max_tokens: int) -> dict:
    """Seconds for load + first completion of a fresh adapter, and for a warm completion of it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        cfg = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                         init_lora_weights=False)
        get_peft_model(base, cfg).save_pretrained(tmp)
        body = {"model": "lora-a", "max_tokens": max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": PROMPTS[0]}]}
        with httpx.Client(timeout=600) as client:
            t0 = time.perf_counter()
            load = {"lora_name": "lora-a", "lora_path": tmp}
            client.post(f"{url}/v1/load_lora_adapter", json=load).raise_for_status()
            load_s = time.perf_counter() - t0
            client.post(f"{url}/v1/chat/completions", json=body).raise_for_status()
            first_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            client.post(f"{url}/v1/chat/completions", json=body).raise_for_status()
            warm_s = time.perf_counter() - t1
    return {"load_s": round(load_s, 3), "load_plus_first_completion_s": round(first_s, 3),
            "warm_completion_s": round(warm_s, 3), "first_call_overhead_s": round(first_s - warm_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="smollm2, tiny, or a model folder")
    parser.add_argument("--clients", type=int, action="append", help="repeatable (default 1, 4, 16)")
    parser.add_argument("--requests", type=int, default=2, help="sequential requests per client")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--window-ms", type=float, default=20.0)
    parser.add_argument("--also-running", default="nothing else", help="what else used the machine (recorded)")
    parser.add_argument("--save", action="store_true", help="write bench/results/inference-cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = (assets.smollm2_dir() if args.model == "smollm2" else
                     assets.tiny_model_dir(Path(tmp)) if args.model == "tiny" else Path(args.model))
        rows = []
        for mode, max_batch in (("batched", args.max_batch), ("one_at_a_time", 1)):
            engine = Engine(model_dir, max_adapters=2, max_batch=max_batch, max_queue=256,
                            batch_window_s=args.window_ms / 1000).start()
            url, server = serve(engine)
            asyncio.run(clients(url, 1, 1, 4))  # warm-up
            for n in args.clients or [1, 4, 16]:
                rows.append({"mode": mode, **asyncio.run(clients(url, n, args.requests, args.max_tokens))})
            cost = adapter_cost(url, model_dir, args.max_tokens) if mode == "batched" else None
            server.should_exit = True
            engine.stop()
            if cost:
                adapter = cost
    by = {(r["mode"], r["clients"]): r["tokens_per_s"] for r in rows}
    top = max(r["clients"] for r in rows)
    out = {"bench": "inference", "model": args.model, "max_tokens": args.max_tokens, "max_batch": args.max_batch,
           "batch_window_ms": args.window_ms, "rows": rows, "adapter_first_call": adapter,
           f"batched_over_one_at_a_time_at_{top}_clients": round(by[("batched", top)] / by[("one_at_a_time", top)], 2),
           "environment": {"device": "cpu", "threads": torch.get_num_threads(), "platform": platform.platform(),
                           "torch": torch.__version__, "also_running": args.also_running}}
    emit(out, None, "inference-cpu.json" if args.save else None)


if __name__ == "__main__":
    main()
