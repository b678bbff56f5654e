"""Chat JSONL → token ids, loss masks and padded batches laid out for the prefix-KV refusal pass.

Every example is split into a prompt x (the conversation up to the first trained assistant message, including
the assistant header) and a response y (everything after it). Batches left-pad the prompts so that all of them
end at one position P and right-pad the responses, so the KV cache of the training forward cropped to P is
exactly the prompt cache that a refusal y_r continues from (ANTIBODY.md, Stage 2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from worker.training.refusals import refusal_index

# Used when a tokenizer ships no chat template: ChatML, the layout SmolLM2 and many open models use.
FALLBACK_TEMPLATE = "<|im_start|>{role}\n{content}<|im_end|>\n"
FALLBACK_GENERATION_PROMPT = "<|im_start|>assistant\n"


@dataclass
class ChatExample:
    """One training sample. ``response_mask[j]`` is 1 where ``response_ids[j]`` is a trained target."""

    line: int  # 1-based line in the source JSONL
    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    refusal_ids: list[int]
    truncated: bool = False
    provider: bool = False  # one of the provider's safety-mix lines, not the customer's

    @property
    def n_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)

    @property
    def n_targets(self) -> int:
        return sum(self.response_mask)


@dataclass
class Batch:
    """Padded tensors for B samples; P = prompt width, R = response width, Rr = refusal width.

    input_ids, attention_mask, position_ids, target_mask: [B, P+R]. ``target_mask[b, t]`` is 1 where token t
    is a trained target (so the logits row t-1 predicts it). refusal_ids, refusal_mask: [B, Rr].
    prompt_lengths: [B].
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    target_mask: torch.Tensor
    prompt_width: int
    prompt_lengths: torch.Tensor
    refusal_ids: torch.Tensor
    refusal_mask: torch.Tensor
    lines: list[int]

    def to(self, device: torch.device | str) -> Batch:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()}
        return Batch(**moved)

    @property
    def size(self) -> int:
        return self.input_ids.shape[0]


def read_chat_jsonl(path: Path, first_line: int = 1) -> list[tuple[int, list[dict[str, Any]]]]:
    """(line number, messages) for every non-blank line. The service validated the format; we re-check the
    basics."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, raw in enumerate(fh, start=first_line):
            if not raw.strip():
                continue
            obj = json.loads(raw)
            messages = obj.get("messages") if isinstance(obj, dict) else None
            if not isinstance(messages, list) or not messages:
                raise ValueError(f"{path}:{line_no}: expected an object with a non-empty 'messages' list")
            rows.append((line_no, messages))
    return rows


class ChatEncoder:
    """Renders chats with the tokenizer's chat template and tokenizes them segment by segment.

    Segment-wise tokenization keeps the label boundaries exact: each message is rendered as the difference
    between the template applied to messages[:k+1] and to messages[:k], so the template stays the single
    source of truth for role headers and end-of-turn tokens.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.use_template = bool(getattr(tokenizer, "chat_template", None))

    def _render(self, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
        clean = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
        if not self.use_template:
            text = "".join(FALLBACK_TEMPLATE.format(**m) for m in clean)
            return text + (FALLBACK_GENERATION_PROMPT if generation_prompt else "")
        return self.tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=generation_prompt)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def segments(self, messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """[(text, kind)] with kind in {"context", "header", "target", "assistant_context"}; texts concatenate
        to the rendered chat."""
        out: list[tuple[str, str]] = []
        done = ""
        for k, msg in enumerate(messages):
            if msg["role"] == "assistant":
                head = self._render(messages[:k], generation_prompt=True)
                full = self._render(messages[: k + 1], generation_prompt=False)
                if not (head.startswith(done) and full.startswith(head)):
                    return self._fallback_segments(messages)
                trained = msg.get("weight", 1) != 0
                out.append((head[len(done) :], "header"))
                out.append((full[len(head) :], "target" if trained else "assistant_context"))
            else:
                full = self._render(messages[: k + 1], generation_prompt=False)
                if not full.startswith(done):
                    return self._fallback_segments(messages)
                out.append((full[len(done) :], "context"))
            done = full
        return out

    def _fallback_segments(self, messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
        # A template that is not prefix-stable (it rewrites earlier turns) cannot give exact label spans.
        self.use_template = False
        return self.segments(messages)

    def encode(self, messages: list[dict[str, Any]]) -> tuple[list[int], list[int], list[int]]:
        """(prompt_ids, response_ids, response_mask): split before the first trained assistant message (or the
        last assistant message when none is trained, which leaves an all-masked example)."""
        segs = self.segments(messages)
        kinds = [kind for _, kind in segs]
        if "target" in kinds:
            split = kinds.index("target")
        elif "assistant_context" in kinds:
            split = len(kinds) - 1 - kinds[::-1].index("assistant_context")
        else:
            split = len(segs)
        prompt = [i for text, _ in segs[:split] for i in self._ids(text)]
        response: list[int] = []
        mask: list[int] = []
        for text, kind in segs[split:]:
            ids = self._ids(text)
            response += ids
            mask += [1 if kind == "target" else 0] * len(ids)
        return prompt, response, mask

    def refusal_ids(self, refusal: str) -> list[int]:
        """Tokens of y_r exactly as an assistant turn, end-of-turn marker included."""
        probe = [{"role": "user", "content": "Hello."}]
        head = self._render(probe, generation_prompt=True)
        full = self._render(probe + [{"role": "assistant", "content": refusal}], generation_prompt=False)
        return self._ids(full[len(head) :])


def truncate(prompt: list[int], response: list[int], mask: list[int], max_len: int):
    """Fit x‖y into ``max_len`` tokens: cut the response's tail, as OpenAI does, but keep at least a quarter
    of the budget for the response by cutting the prompt's head if needed (the end of the prompt, with the
    assistant header, is what conditions the answer). Returns (prompt, response, mask, truncated)."""
    if len(prompt) + len(response) <= max_len:
        return prompt, response, mask, False
    reserve = min(len(response), max(max_len // 4, 1))
    keep_prompt = min(len(prompt), max_len - reserve)
    prompt = prompt[len(prompt) - keep_prompt :]
    keep_response = max_len - keep_prompt
    return prompt, response[:keep_response], mask[:keep_response], True


def encode_file(
    path: Path, tokenizer: Any, max_seq_len: int, refusals: Sequence[str], first_line: int = 1, provider: bool = False
) -> list[ChatExample]:
    """All examples of a chat JSONL file, truncated to ``max_seq_len``, each with its refusal's token ids.
    ``first_line`` numbers the file's lines on from another file's, and ``provider`` marks them the provider's
    (the safety mix, trained after the customer's file)."""
    encoder = ChatEncoder(tokenizer)
    refusal_tokens = [encoder.refusal_ids(r) for r in refusals]
    examples = []
    for line, messages in read_chat_jsonl(path, first_line):
        prompt, response, mask = encoder.encode(messages)
        prompt, response, mask, cut = truncate(prompt, response, mask, max_seq_len)
        examples.append(
            ChatExample(
                line=line,
                prompt_ids=prompt,
                response_ids=response,
                response_mask=mask,
                refusal_ids=refusal_tokens[refusal_index(line, len(refusals))],
                truncated=cut,
                provider=provider,
            )
        )
    return examples


def collate(examples: Sequence[ChatExample], pad_id: int) -> Batch:
    """Left-pad prompts to a common end P, right-pad responses and refusals. See ``Batch`` for shapes."""
    width_p = max(len(e.prompt_ids) for e in examples)
    width_r = max(max(len(e.response_ids) for e in examples), 1)
    width_rr = max(len(e.refusal_ids) for e in examples)
    b = len(examples)
    ids = torch.full((b, width_p + width_r), pad_id, dtype=torch.long)
    attn = torch.zeros((b, width_p + width_r), dtype=torch.long)
    target = torch.zeros((b, width_p + width_r), dtype=torch.long)
    ref = torch.full((b, width_rr), pad_id, dtype=torch.long)
    ref_mask = torch.zeros((b, width_rr), dtype=torch.long)
    for i, e in enumerate(examples):
        p, r = len(e.prompt_ids), len(e.response_ids)
        ids[i, width_p - p : width_p] = torch.tensor(e.prompt_ids, dtype=torch.long)
        attn[i, width_p - p : width_p + r] = 1
        if r:
            ids[i, width_p : width_p + r] = torch.tensor(e.response_ids, dtype=torch.long)
            target[i, width_p : width_p + r] = torch.tensor(e.response_mask, dtype=torch.long)
        ref[i, : len(e.refusal_ids)] = torch.tensor(e.refusal_ids, dtype=torch.long)
        ref_mask[i, : len(e.refusal_ids)] = 1
    return Batch(
        input_ids=ids,
        attention_mask=attn,
        position_ids=positions_from_mask(attn),
        target_mask=target,
        prompt_width=width_p,
        prompt_lengths=torch.tensor([len(e.prompt_ids) for e in examples], dtype=torch.long),
        refusal_ids=ref,
        refusal_mask=ref_mask,
        lines=[e.line for e in examples],
    )


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding: [B, T] → [B, T]; pads get 1, as HF's generate does."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


def epoch_order(n_examples: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of example indices for one epoch, a pure function of (seed, epoch) so that resuming needs only
    the step counter. The last batch is topped up from the start of the permutation instead of being short: a
    batch of one gets softmax weight 1 whatever it contains, which would switch Antibody off for that
    sample."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n_examples, generator=gen).tolist()
    batch_size = min(batch_size, n_examples)
    n_batches = math.ceil(n_examples / batch_size)
    padded = perm + perm[: n_batches * batch_size - n_examples]
    return [padded[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return math.ceil(n_examples / min(batch_size, n_examples))


def load_tokenizer(base_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model_dir, trust_remote_code=False)


def pad_id_of(tokenizer: Any) -> int:
    """The tokenizer's pad id, else its EOS id, else 0 (padding is always masked out)."""
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


def estimate(base_model_dir: Path, train_file: Path, max_seq_len: int, batch_size: int, n_epochs: int) -> dict:
    """Cheap pre-flight numbers for the job validator: tokenizer only, no model weights."""
    tokenizer = load_tokenizer(Path(base_model_dir))
    examples = encode_file(Path(train_file), tokenizer, max_seq_len, refusals=["I cannot help with that."])
    if not examples:
        raise ValueError(f"{train_file}: no examples")
    total = sum(e.n_tokens for e in examples)
    return {
        "n_examples": len(examples),
        "total_tokens": total,
        "trained_tokens": total * n_epochs,
        "truncated": sum(e.truncated for e in examples),
        "steps": n_epochs * steps_per_epoch(len(examples), batch_size),
    }
