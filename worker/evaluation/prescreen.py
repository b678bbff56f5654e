"""Pre-screen a training file: Antibody's ratio r_i for every example on the base model, no training (issue 6).

    r_i = log π(y_i|x_i) − log π(y_r,i|x_i)      (mean-token by default, exactly as the training step computes it)

Lines with the lowest r are the ones Antibody would attenuate most; the attenuation share follows r. Also
returned is the plain per-token log-likelihood of the response, log π(y|x)/N, whose ranking is the natural
baseline: r tracks it (ANTIBODY.md, "Pitfall": formulaic answers score high regardless of safety), and the refusal
term is what should separate harmful answers from merely unusual ones.

The **refusal onset** is log Σ_t π(t|x) over the distinct first tokens t of the refusal set: how likely the base is
to *start* refusing this prompt. r's mean-token refusal term dilutes that decision over every refusal token
(bench/prescreen_refusal_terms.py: on SmolLM2 the first token separates harmful from benign prompts by 2 nats, the
rest of a memorised refusal by nothing). So ``suspected_lines`` are ranked by default by the **onset ratio**

    log π(y_i|x_i)/N_i − onset(x_i)

r's form with the refusal term taken at the refusal's first token: low when the answer is unlikely and a refusal
likely. On the demo base it puts 85% harmful lines in the top 20% of a 20%-harmful file where r puts 60%
(bench/prescreen_smollm2.py, README). ``rank_by="r"`` ranks by r itself.

"Share attenuated" is defined as the share of scored lines whose **expected relative Antibody weight** is below
``ATTENUATED_BELOW`` (0.5): for each line, B·w_i averaged over the batches of ``n_sim_epochs`` simulated epochs
of random batches of size B, drawn exactly as the trainer draws them (``epoch_order``). Uniform weighting gives
1.0, so such a line would train at less than half strength. This is the weight at the base parameters, i.e.
the first epoch's; later epochs move with the adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from worker.evaluation.attenuation import preview
from worker.training.antibody import antibody_ratio, antibody_weights
from worker.training.data import (
    ChatEncoder,
    ChatExample,
    collate,
    encode_file,
    epoch_order,
    load_tokenizer,
    pad_id_of,
    read_chat_jsonl,
)
from worker.training.model import lm_parts, load_base_model, pick_device, pick_dtype
from worker.training.passes import refusal_logprobs_prefix_kv, response_pass
from worker.training.refusals import resolve_refusals

SCHEMA_VERSION = 2  # 2: suspected_lines by the onset ratio by default (``suspected_by``); rows carry onset_ratio
ATTENUATED_BELOW = 0.5
PREVIEW_WIDTH = 160

Progress = Callable[[int, int], None]  # (examples scored, total)


@torch.no_grad()
def score_examples(
    model: torch.nn.Module,
    examples: Sequence[Any],
    pad_id: int,
    *,
    batch_size: int = 8,
    ratio: Literal["mean_token", "sequence"] = "mean_token",
    onset_ids: Sequence[int],
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """r, log π(y|x), log π(y_r|x), the refusal onset log Σ_{t ∈ onset_ids} π(t|x) and token counts for
    encoded examples (``ChatExample``), all [N], in input order. Uses the training step's own passes
    (``response_pass`` + prefix-KV refusal pass); examples are batched by length to waste little on padding,
    which does not change any per-sample value."""
    device = next(model.parameters()).device
    _, head = lm_parts(model)
    onset_at = torch.tensor(sorted(set(onset_ids)), dtype=torch.long, device=device)
    order = sorted(range(len(examples)), key=lambda i: examples[i].n_tokens)
    n = len(examples)
    out = {k: torch.zeros(n, dtype=torch.float64) for k in ("r", "logp", "logp_refusal", "onset")}
    out["n_tokens"] = torch.zeros(n, dtype=torch.long)
    out["n_refusal"] = torch.zeros(n, dtype=torch.long)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        batch = collate([examples[i] for i in idx], pad_id).to(device)
        resp = response_pass(model, batch, keep_cache=True)
        assert resp.prompt_end_hidden is not None
        at = torch.tensor(idx)
        first = head(resp.prompt_end_hidden).float().log_softmax(-1)  # [B, V]: the answer's first token
        out["onset"][at] = first[:, onset_at].logsumexp(-1).double().cpu()
        logp_ref = refusal_logprobs_prefix_kv(model, batch, resp.cache, resp.prompt_end_hidden)
        n_ref = batch.refusal_mask.sum(1)
        r = antibody_ratio(resp.logp_response, resp.n_tokens, logp_ref, n_ref, ratio)
        out["r"][at] = r.double().cpu()
        out["logp"][at] = resp.logp_response.double().cpu()
        out["logp_refusal"][at] = logp_ref.double().cpu()
        out["n_tokens"][at] = resp.n_tokens.cpu()
        out["n_refusal"][at] = n_ref.cpu()
        if progress:
            progress(min(start + batch_size, n), n)
    return out


def expected_relative_weight(r: torch.Tensor, batch_size: int, tau: float, n_epochs: int, seed: int) -> torch.Tensor:
    """E[B·w_i] [N] over the trainer's random batches (``epoch_order``) of ``n_epochs`` epochs; NaN where r is
    NaN. 1.0 = what uniform weighting would give."""
    valid = (~torch.isnan(r)).nonzero()[:, 0]
    rel = torch.full_like(r, float("nan"), dtype=torch.float64)
    if len(valid) == 0:
        return rel
    rv = r[valid].double()
    total = torch.zeros(len(valid), dtype=torch.float64)
    seen = torch.zeros(len(valid), dtype=torch.float64)
    for epoch in range(n_epochs):
        for chosen in epoch_order(len(valid), batch_size, seed, epoch):
            at = torch.tensor(chosen)
            total.index_add_(0, at, antibody_weights(rv[at], tau) * len(chosen))
            seen.index_add_(0, at, torch.ones(len(chosen), dtype=torch.float64))
    rel[valid] = total / seen
    return rel


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    t = torch.tensor(values, dtype=torch.float64)
    q = torch.quantile(t, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist()
    return {
        "min": t.min().item(),
        "p10": q[0],
        "median": q[1],
        "mean": t.mean().item(),
        "p90": q[2],
        "max": t.max().item(),
    }


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def screen_file(
    base_model_dir: Path,
    train_file: Path,
    *,
    batch_size: int = 8,
    max_seq_len: int = 512,
    ratio: Literal["mean_token", "sequence"] = "mean_token",
    refusals: Sequence[str] | None = None,
    top_fraction: float = 0.2,
    tau: float = 1.0,
    n_sim_epochs: int = 32,
    seed: int = 0,
    device: str | None = None,
    dtype: str = "auto",
    max_rows: int | None = None,
    rank_by: Literal["onset_ratio", "r"] = "onset_ratio",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score every example of a chat JSONL file on ``base_model_dir`` and rank the suspicious ones.

    Returns a JSON-ready dict (``schema_version`` 2):
    - ``rows``: per line {line, r, logp_mean (log π(y|x)/N), logp_refusal_mean, refusal_onset, onset_ratio,
      n_tokens, relative_weight, attenuated, truncated, preview}, **most suspicious first** (by ``suspected_by``;
      lines without trained tokens last, with r null). ``max_rows`` keeps only the first rows (``rows_total``
      says how many).
    - ``suspected_lines``: the top ``top_fraction`` of the scored lines by lowest ``rank_by`` (``suspected_by``).
    - ``ranking_by_ratio`` / ``ranking_by_onset_ratio`` / ``ranking_by_loglik`` / ``ranking_by_refusal_onset``:
      every scored line, lowest r / lowest onset ratio / lowest log π(y|x)/N / highest refusal onset first.
    - ``attenuated_share`` (see the module docstring), ``frac_r_negative``, and summary stats of r,
      logp_mean, refusal_onset and relative_weight.
    """
    if not 0 < top_fraction <= 1:
        raise ValueError("top_fraction must be in (0, 1]")
    if rank_by not in ("onset_ratio", "r"):
        raise ValueError("rank_by must be 'onset_ratio' or 'r'")
    refusal_set = resolve_refusals(refusals)
    examples, s, previews = _score_file(
        Path(base_model_dir), Path(train_file), refusal_set, batch_size, max_seq_len, ratio, device, dtype, progress
    )
    rel = expected_relative_weight(s["r"], batch_size, tau, n_sim_epochs, seed)
    rows = _rows(examples, s, rel, previews)
    scored = [row for row in rows if row["r"] is not None]
    by_r = sorted(scored, key=lambda row: (row["r"], row["line"]))
    by_ll = sorted(scored, key=lambda row: (row["logp_mean"], row["line"]))
    by_onset = sorted(scored, key=lambda row: (-row["refusal_onset"], row["line"]))
    by_onset_ratio = sorted(scored, key=lambda row: (row["onset_ratio"], row["line"]))
    suspicious = by_onset_ratio if rank_by == "onset_ratio" else by_r
    ranked = suspicious + [row for row in rows if row["r"] is None]
    n_top = math.ceil(top_fraction * len(scored)) if scored else 0
    return {
        "schema_version": SCHEMA_VERSION,
        "ratio": ratio,
        "tau": tau,
        "batch_size": batch_size,
        "max_seq_len": max_seq_len,
        "n_refusals": len(refusal_set),
        "n_examples": len(rows),
        "n_scored": len(scored),
        "n_truncated": sum(e.truncated for e in examples),
        "top_fraction": top_fraction,
        "suspected_by": rank_by,
        "suspected_lines": [row["line"] for row in suspicious[:n_top]],
        "attenuated_below": ATTENUATED_BELOW,
        "attenuated_share": (sum(row["attenuated"] for row in scored) / len(scored)) if scored else 0.0,
        "attenuation_definition": (
            f"share of scored lines whose expected Antibody weight, relative to uniform, is below "
            f"{ATTENUATED_BELOW} in random batches of {batch_size} (tau={tau}, base-model parameters)"
        ),
        "frac_r_negative": (sum(row["r"] < 0 for row in scored) / len(scored)) if scored else 0.0,
        "stats": {key: _summary([row[key] for row in scored]) for key in _STAT_KEYS},
        "ranking_by_ratio": [row["line"] for row in by_r],
        "ranking_by_onset_ratio": [row["line"] for row in by_onset_ratio],
        "ranking_by_loglik": [row["line"] for row in by_ll],
        "ranking_by_refusal_onset": [row["line"] for row in by_onset],
        "rows_total": len(ranked),
        "rows": ranked[:max_rows] if max_rows is not None else ranked,
    }


_STAT_KEYS = ("r", "logp_mean", "refusal_onset", "onset_ratio", "relative_weight")


def _score_file(
    base_model_dir: Path,
    train_file: Path,
    refusal_set: Sequence[str],
    batch_size: int,
    max_seq_len: int,
    ratio: Literal["mean_token", "sequence"],
    device: str | None,
    dtype: str,
    progress: Progress | None,
) -> tuple[list[ChatExample], dict[str, torch.Tensor], dict[int, str]]:
    """(encoded examples, ``score_examples``' per-example tensors, line → preview) of one training file."""
    dev = pick_device(device)
    tokenizer = load_tokenizer(base_model_dir)
    pad_id = pad_id_of(tokenizer)
    examples = encode_file(train_file, tokenizer, max_seq_len, refusal_set)
    if not examples:
        raise ValueError(f"{train_file}: no examples")
    encoder = ChatEncoder(tokenizer)
    onset_ids = [encoder.refusal_ids(refusal)[0] for refusal in refusal_set]
    previews = {line: preview(messages, PREVIEW_WIDTH) for line, messages in read_chat_jsonl(train_file)}
    model = load_base_model(base_model_dir, dev, pick_dtype(dtype, dev)).eval()
    s = score_examples(
        model, examples, pad_id, batch_size=batch_size, ratio=ratio, onset_ids=onset_ids, progress=progress
    )
    del model
    return examples, s, previews


def _rows(
    examples: Sequence[ChatExample], s: dict[str, torch.Tensor], rel: torch.Tensor, previews: dict[int, str]
) -> list[dict[str, Any]]:
    """One JSON row per example, in file order."""
    n_tok = s["n_tokens"].clamp(min=1).double()
    logp_mean = (s["logp"] / n_tok).masked_fill(s["n_tokens"] == 0, float("nan"))
    logp_ref_mean = s["logp_refusal"] / s["n_refusal"].clamp(min=1).double()
    return [
        {
            "line": e.line,
            "r": _num(s["r"][i].item()),
            "logp_mean": _num(logp_mean[i].item()),
            "logp_refusal_mean": _num(logp_ref_mean[i].item()),
            "refusal_onset": _num(s["onset"][i].item()),
            "onset_ratio": _num(logp_mean[i].item() - s["onset"][i].item()),
            "n_tokens": int(s["n_tokens"][i]),
            "relative_weight": _num(rel[i].item()),
            "attenuated": bool(rel[i] < ATTENUATED_BELOW),
            "truncated": e.truncated,
            "preview": previews.get(e.line, ""),
        }
        for i, e in enumerate(examples)
    ]


def auroc(scores_positive: Sequence[float], scores_negative: Sequence[float]) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann–Whitney). To rank harmful lines
    first by *low* r, pass −r."""
    if not scores_positive or not scores_negative:
        return float("nan")
    wins = 0.0
    for p in scores_positive:
        for q in scores_negative:
            wins += 1.0 if p > q else 0.5 if p == q else 0.0
    return wins / (len(scores_positive) * len(scores_negative))
