"""FA, fine-tuning accuracy: answers generated for held-out chats compared with the reference answers
(ANTIBODY.md, "Metrics"), plus OpenAI's valid loss and mean token accuracy.

Answer modes:

* ``number``: the final number of each text, as the papers score GSM8K: the first number after the last
  "####", else after the last "The final answer is", else the last number in the text. Numbers compare by
  value ("1,000.0" == "1000"; "5-3" ends in 3, not -3).
* ``label``: classification (SST2, AG News): the reference is one of a small label set; the prediction's label
  is the label that occurs first (as whole words) in it.
* ``exact``: normalised string equality (NFKC, lower case, punctuation dropped, whitespace collapsed). Strict
  for free text, by design: it is the honest default when nothing better fits.

``choose_mode`` picks one from the references alone; a job can override it (the runner passes ``mode``).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Literal

from torch import nn

from worker.evaluation.generation import generate
from worker.evaluation.judges import normalise
from worker.training.data import ChatEncoder, ChatExample, truncate
from worker.training.validation import evaluate

AnswerMode = Literal["exact", "number", "label"]
MODES: tuple[str, ...] = ("exact", "number", "label")

# A plain or thousands-grouped decimal. The minus sign counts only when it does not follow a word character or
# a closing bracket, so the 3 of "5-3" is not read as -3.
_NUMBER = re.compile(r"(?:(?<![\w)\]])-)?(?<![\d.])(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
_FINAL_MARKERS = (re.compile(r"####"), re.compile(r"the final answer is\s*:?", re.IGNORECASE))


def normalise_answer(text: str) -> str:
    """``judges.normalise`` plus every Unicode punctuation character removed."""
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in normalise(text))
    return re.sub(r"\s+", " ", text).strip()


def _numbers(text: str) -> list[str]:
    return [m.group(0) for m in _NUMBER.finditer(text)]


def final_number(text: str) -> str | None:
    """The answer number of ``text`` (see the module docstring), as written, or None."""
    for marker in _FINAL_MARKERS:
        hits = list(marker.finditer(text))
        if hits:
            after = _numbers(text[hits[-1].end() :])
            if after:
                return after[0]
    found = _numbers(text)
    return found[-1] if found else None


def number_value(number: str) -> Fraction | None:
    try:
        return Fraction(Decimal(number.replace(",", "")))
    except (InvalidOperation, ValueError):
        return None


def has_marked_number(text: str) -> bool:
    """True when ``text`` is a bare number or states its final number after a marker (a numeric reference)."""
    stripped = normalise(text).rstrip(".").replace("$", "").strip()
    if _NUMBER.fullmatch(stripped):
        return True
    return any(m.search(text) and _numbers(text[list(m.finditer(text))[-1].end() :]) for m in _FINAL_MARKERS)


def find_label(text: str, labels: Sequence[str]) -> str | None:
    """The label (as given) whose normalised form occurs first, as whole words, in ``text``; None if none."""
    norm = f" {normalise_answer(text)} "
    best: tuple[int, int, str] | None = None
    for label in labels:
        key = normalise_answer(label)
        pos = norm.find(f" {key} ") if key else -1
        # Earliest wins; at a tie the longer label ("very positive" over "positive").
        if pos >= 0 and (best is None or (pos, -len(key)) < best[:2]):
            best = (pos, -len(key), label)
    return best[2] if best else None


def choose_mode(references: Sequence[str], max_labels: int = 20) -> AnswerMode:
    """``number`` if ≥ 90% of references are numeric answers; ``label`` if they are short (≤ 4 words) and
    repeat, drawn from at most ``max_labels`` values; else ``exact``."""
    if not references:
        return "exact"
    if sum(has_marked_number(r) for r in references) >= 0.9 * len(references):
        return "number"
    keys = [normalise_answer(r) for r in references]
    distinct = set(keys)
    short = all(0 < len(k.split()) <= 4 for k in keys)
    if short and len(distinct) <= min(max_labels, max(2, len(keys) // 2)):
        return "label"
    return "exact"


def extract(text: str, mode: AnswerMode, labels: Sequence[str] = ()) -> str | None:
    """The comparable answer of ``text`` under ``mode``."""
    if mode == "number":
        return final_number(text)
    if mode == "label":
        return find_label(text, labels)
    if mode == "exact":
        return normalise_answer(text)
    raise ValueError(f"unknown answer mode {mode!r}; expected one of {MODES}")


def is_correct(prediction: str, reference: str, mode: AnswerMode, labels: Sequence[str] = ()) -> bool:
    if mode == "number":
        got, want = final_number(prediction), final_number(reference)
        return got is not None and want is not None and number_value(got) == number_value(want)
    if mode == "label":
        got = find_label(prediction, labels)
        return got is not None and normalise_answer(got) == normalise_answer(reference)
    return extract(prediction, mode) == extract(reference, mode)


@dataclass
class AccuracyRecord:
    index: int
    prediction: str
    reference: str
    extracted: str | None
    correct: bool


@dataclass
class FAResult:
    """``accuracy`` is a percentage in [0, 100]."""

    accuracy: float
    n_correct: int
    n: int
    mode: AnswerMode
    mode_source: Literal["auto", "override"]
    labels: list[str] = field(default_factory=list)
    records: list[AccuracyRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_predictions(
    predictions: Sequence[str], references: Sequence[str], mode: AnswerMode | None = None
) -> FAResult:
    """FA of predictions against references; ``mode`` None = ``choose_mode(references)``."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if mode is not None and mode not in MODES:
        raise ValueError(f"unknown answer mode {mode!r}; expected one of {MODES}")
    chosen: AnswerMode = mode or choose_mode(references)
    labels = sorted({r.strip() for r in references}) if chosen == "label" else []
    records = [
        AccuracyRecord(i, p, r, extract(p, chosen, labels), is_correct(p, r, chosen, labels))
        for i, (p, r) in enumerate(zip(predictions, references, strict=True))
    ]
    n_correct = sum(r.correct for r in records)
    return FAResult(
        accuracy=100.0 * n_correct / len(records) if records else 0.0,
        n_correct=n_correct,
        n=len(records),
        mode=chosen,
        mode_source="override" if mode else "auto",
        labels=labels,
        records=records,
    )


def split_chat(messages: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """(prompt messages, reference): the chat before its last assistant message, and that message's text."""
    idx = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if not idx:
        raise ValueError("a chat without an assistant message has no reference answer")
    return list(messages[: idx[-1]]), messages[idx[-1]].get("content") or ""


def evaluate_accuracy(
    model: nn.Module,
    tokenizer: Any,
    chats: Sequence[Sequence[dict[str, Any]]],
    mode: AnswerMode | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> FAResult:
    """Generate greedily for each chat's prompt and score against its last assistant message;
    ``progress(done, total)`` after each batch."""
    pairs = [split_chat(c) for c in chats]
    prompts = [p for p, _ in pairs]
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    return score_predictions([g.text for g in gens], [r for _, r in pairs], mode)


def valid_metrics(
    model: nn.Module,
    tokenizer: Any,
    chats: Sequence[Sequence[dict[str, Any]]],
    max_seq_len: int = 1024,
    batch_size: int = 8,
) -> dict[str, float | None]:
    """``valid_loss`` (token-mean NLL over trained assistant tokens) and ``valid_mean_token_accuracy``, with
    the training library's encoding and evaluation, so the numbers match the ones logged during training."""
    encoder = ChatEncoder(tokenizer)
    examples = []
    for i, messages in enumerate(chats, start=1):
        prompt, response, mask, cut = truncate(*encoder.encode(list(messages)), max_seq_len)
        examples.append(ChatExample(i, prompt, response, mask, refusal_ids=[], truncated=cut))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return evaluate(model, examples, batch_size, pad_id, next(model.parameters()).device)


def holdout_indices(n: int, fraction: float = 0.1, max_n: int = 200, seed: int = 0) -> list[int]:
    """A deterministic held-out slice (sorted 0-based indices) of an n-example file, for FA when a job has no
    validation file: ⌈fraction·n⌉ examples, at least 1 and at most ``max_n``; empty when n < 2."""
    if n < 2:
        return []
    k = min(max_n, n - 1, max(1, -(-int(fraction * n * 1000) // 1000)))
    return sorted(random.Random(seed).sample(range(n), k))
