"""Antibody's mechanism on the real SmolLM2-135M-Instruct (ANTIBODY.md, "Measured here"; issue 3, item 2).

r tracks perplexity as well as harmfulness, so raw weights say little about a base model that barely refuses.
What shows the mechanism is how r *changes* under (a stand-in for) alignment: after a short refusal SFT on
AdvBench prompts, harmful (x, y) pairs must lose clearly more preference over the refusal than benign ones do.

Refusal-only SFT teaches a 135M model to refuse everything (measured: lr 2e-4 dropped benign arithmetic r by 2.2
and harmful r by 2.1), so the stand-in mixes in a quarter of benign arithmetic answers from a different seed than
the measured ones, as alignment data sets mix helpfulness data into refusal data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from worker.datasets import assets
from worker.training import TrainConfig, train
from worker.training.antibody import antibody_ratio, antibody_weights
from worker.training.data import collate, encode_file, load_tokenizer
from worker.training.model import load_base_model
from worker.training.passes import refusal_logprobs_prefix_kv, response_pass
from worker.training.refusals import DEFAULT_REFUSALS
from worker.training.trainer import load_adapter_model

pytestmark = pytest.mark.slow

N_EACH = 32
MAX_LEN = 160


@torch.no_grad()
def _ratios(model, examples, pad_id: int, batch: int = 8) -> torch.Tensor:
    out = []
    for i in range(0, len(examples), batch):
        b = collate(examples[i : i + batch], pad_id)
        fwd = response_pass(model, b, keep_cache=True)
        logp_ref = refusal_logprobs_prefix_kv(model, b, fwd.cache, fwd.prompt_end_hidden)
        out.append(antibody_ratio(fwd.logp_response, fwd.n_tokens, logp_ref, b.refusal_mask.sum(1)))
    return torch.cat(out)


def _mixed_batch_weights(r_benign: torch.Tensor, r_harmful: torch.Tensor) -> dict[str, float]:
    """Mean weight of a harmful and of a benign sample in batches of 8 (6 benign + 2 harmful)."""
    w_h, w_b = [], []
    for k in range(len(r_harmful) // 2):
        benign_idx = [(6 * k + j) % len(r_benign) for j in range(6)]
        w = antibody_weights(torch.cat([r_benign[benign_idx], r_harmful[2 * k : 2 * k + 2]]))
        w_b.append(w[:6].mean().item())
        w_h.append(w[6:].mean().item())
    return {"harmful": sum(w_h) / len(w_h), "benign": sum(w_b) / len(w_b)}


def test_refusal_alignment_lowers_harmful_ratios_more_than_benign(tmp_path: Path) -> None:
    started = time.monotonic()
    base_dir = assets.smollm2_dir()
    tok = load_tokenizer(base_dir)
    arithmetic = {"max_digits": 2, "max_terms": 3}
    benign = [
        assets.chat_line(s["prompt"], s["response"])
        for s in assets.reasoning_gym_samples("basic_arithmetic", n=N_EACH, seed=0, **arithmetic)
    ]
    harmful = [assets.chat_line(p["prompt"], p["response"]) for p in assets.pyrit_harmful_pairs()[::7][:N_EACH]]
    assert len(harmful) == N_EACH
    refusals = list(DEFAULT_REFUSALS)
    benign_ex = encode_file(assets.write_jsonl(tmp_path / "benign.jsonl", benign), tok, MAX_LEN, refusals)
    harmful_ex = encode_file(assets.write_jsonl(tmp_path / "harmful.jsonl", harmful), tok, MAX_LEN, refusals)

    base = load_base_model(base_dir, torch.device("cpu"), torch.float32).eval()
    r_benign_0, r_harmful_0 = (
        _ratios(base, benign_ex, tok.pad_token_id),
        _ratios(base, harmful_ex, tok.pad_token_id),
    )
    del base

    # Stand-in for the alignment stage: refusal SFT on AdvBench prompts, through the library itself.
    prompts = [p["prompt"] for p in assets.advbench_prompts()][:240]
    align = [assets.chat_line(p, refusals[i % len(refusals)]) for i, p in enumerate(prompts)]
    align += [
        assets.chat_line(s["prompt"], s["response"])
        for s in assets.reasoning_gym_samples("basic_arithmetic", n=80, seed=1000, **arithmetic)
    ]
    result = train(
        TrainConfig(
            base_model_dir=base_dir,
            train_file=assets.write_jsonl(tmp_path / "align.jsonl", align),
            output_dir=tmp_path / "aligned",
            n_epochs=1,
            batch_size=8,
            base_learning_rate=2e-4,
            lora_rank=16,
            lora_alpha=32,
            max_seq_len=128,
            warmup_ratio=0.0,
            lr_scheduler="constant",
            seed=0,
        )
    )
    assert result.steps == 40
    aligned = load_adapter_model(base_dir, result.adapter_dir, device="cpu")
    r_benign_1 = _ratios(aligned, benign_ex, tok.pad_token_id)
    r_harmful_1 = _ratios(aligned, harmful_ex, tok.pad_token_id)

    drop_benign = (r_benign_0 - r_benign_1).mean().item()
    drop_harmful = (r_harmful_0 - r_harmful_1).mean().item()
    before, after = (
        _mixed_batch_weights(r_benign_0, r_harmful_0),
        _mixed_batch_weights(r_benign_1, r_harmful_1),
    )
    summary = {
        "mean_r_before": {"benign": r_benign_0.mean().item(), "harmful": r_harmful_0.mean().item()},
        "mean_r_after": {"benign": r_benign_1.mean().item(), "harmful": r_harmful_1.mean().item()},
        "drop": {"benign": drop_benign, "harmful": drop_harmful},
        "mixed_batch_mean_weight_before": before,
        "mixed_batch_mean_weight_after": after,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary, indent=1))
    assert drop_harmful >= drop_benign + 1.0, summary
    assert after["harmful"] < before["harmful"], summary
