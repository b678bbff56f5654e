from pathlib import Path

import pytest
import torch

from tests.worker.conftest import write_chats
from worker.training.data import (
    ChatEncoder,
    ChatExample,
    collate,
    encode_file,
    epoch_order,
    estimate,
    load_tokenizer,
    positions_from_mask,
    steps_per_epoch,
    truncate,
)
from worker.training.refusals import DEFAULT_REFUSALS, refusal_index, resolve_refusals

MULTI_TURN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "5", "weight": 0},
    {"role": "user", "content": "Wrong. Again?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": "six", "weight": 0},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    return load_tokenizer(tiny_model)


def _trained_text(tokenizer, response: list[int], mask: list[int]) -> str:
    return tokenizer.decode([t for t, m in zip(response, mask, strict=True) if m])


def test_weight_zero_messages_are_context_not_targets(tokenizer) -> None:
    prompt, response, mask = ChatEncoder(tokenizer).encode(MULTI_TURN)
    # x runs up to the first *trained* assistant message, header included; the weight-0 answer "5" is context
    assert tokenizer.decode(prompt).endswith(
        "<|im_start|>assistant\n5<|im_end|>\n<|im_start|>user\nWrong. Again?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert _trained_text(tokenizer, response, mask) == "4<|im_end|>\n"
    assert "six" in tokenizer.decode(response)  # later weight-0 turns stay in y, untrained


def test_segments_reproduce_the_chat_template(tokenizer) -> None:
    encoder = ChatEncoder(tokenizer)
    clean = [{"role": m["role"], "content": m["content"]} for m in MULTI_TURN]
    rendered = tokenizer.apply_chat_template(clean, tokenize=False)
    assert "".join(text for text, _ in encoder.segments(MULTI_TURN)) == rendered
    prompt, response, _ = encoder.encode(MULTI_TURN)
    assert prompt + response == tokenizer(rendered, add_special_tokens=False)["input_ids"]


def test_fallback_template_when_tokenizer_has_none(tokenizer) -> None:
    encoder = ChatEncoder(tokenizer)
    encoder.use_template = False
    prompt, response, mask = encoder.encode([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    assert tokenizer.decode(prompt) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert _trained_text(tokenizer, response, mask) == "yo<|im_end|>\n"


def test_all_assistant_messages_weight_zero_gives_all_masked_example(tokenizer) -> None:
    chat = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]
    prompt, response, mask = ChatEncoder(tokenizer).encode(chat)
    assert response and sum(mask) == 0
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")


def test_refusal_tokens_are_an_assistant_turn(tokenizer) -> None:
    ids = ChatEncoder(tokenizer).refusal_ids("I cannot help with that.")
    assert tokenizer.decode(ids) == "I cannot help with that.<|im_end|>\n"


def test_truncation_cuts_response_tail_then_prompt_head() -> None:
    p, r, m, cut = truncate([1, 2, 3], [4, 5, 6, 7], [1, 1, 1, 1], max_len=5)
    assert (p, r, m, cut) == ([1, 2, 3], [4, 5], [1, 1], True)
    p, r, m, cut = truncate(list(range(20)), [50, 51], [1, 1], max_len=8)
    assert p == list(range(14, 20)) and r == [50, 51] and cut
    p, r, m, cut = truncate(list(range(20)), list(range(100, 120)), [1] * 20, max_len=8)
    assert p == list(range(14, 20)) and r == [100, 101] and cut
    assert truncate([1], [2], [1], max_len=8) == ([1], [2], [1], False)


def test_encode_file_keeps_lines_counts_truncation_and_picks_refusals(tmp_path: Path, tokenizer) -> None:
    chats = [
        {"messages": [{"role": "user", "content": "short"}, {"role": "assistant", "content": "ok"}]},
        {"messages": [{"role": "user", "content": "long"}, {"role": "assistant", "content": "word " * 200}]},
    ]
    path = tmp_path / "t.jsonl"
    path.write_text(f"{__import__('json').dumps(chats[0])}\n\n{__import__('json').dumps(chats[1])}\n")
    refusals = ["No.", "Nope, not doing that."]
    examples = encode_file(path, tokenizer, max_seq_len=64, refusals=refusals)
    assert [e.line for e in examples] == [1, 3]
    assert [e.truncated for e in examples] == [False, True]
    assert examples[1].n_tokens == 64
    assert tokenizer.decode(examples[0].refusal_ids).startswith(refusals[refusal_index(1, 2)])
    assert tokenizer.decode(examples[1].refusal_ids).startswith(refusals[refusal_index(3, 2)])


def test_refusal_choice_is_deterministic_and_set_is_varied() -> None:
    assert len(set(DEFAULT_REFUSALS)) == len(DEFAULT_REFUSALS) >= 20
    assert [refusal_index(line, 3) for line in range(1, 7)] == [0, 1, 2, 0, 1, 2]
    assert resolve_refusals(None) == list(DEFAULT_REFUSALS)
    with pytest.raises(ValueError):
        resolve_refusals(["ok", "  "])


def test_collate_left_pads_prompts_to_one_end_and_right_pads_the_rest() -> None:
    a = ChatExample(line=1, prompt_ids=[10, 11, 12], response_ids=[20], response_mask=[1], refusal_ids=[30, 31])
    b = ChatExample(line=2, prompt_ids=[13], response_ids=[21, 22, 23], response_mask=[0, 1, 1], refusal_ids=[32])
    batch = collate([a, b], pad_id=0)
    assert batch.prompt_width == 3
    assert batch.input_ids.tolist() == [[10, 11, 12, 20, 0, 0], [0, 0, 13, 21, 22, 23]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]]
    assert batch.target_mask.tolist() == [[0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 1]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 1, 1], [1, 1, 0, 1, 2, 3]]
    assert batch.refusal_ids.tolist() == [[30, 31], [32, 0]] and batch.refusal_mask.tolist() == [
        [1, 1],
        [1, 0],
    ]
    assert batch.prompt_lengths.tolist() == [3, 1] and batch.lines == [1, 2]


def test_positions_ignore_left_padding() -> None:
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert positions_from_mask(mask).tolist() == [[1, 1, 0, 1], [0, 1, 2, 3]]


def test_epoch_order_is_seeded_complete_and_never_short() -> None:
    order = epoch_order(10, 4, seed=7, epoch=0)
    assert order == epoch_order(10, 4, seed=7, epoch=0)
    assert order != epoch_order(10, 4, seed=7, epoch=1)
    assert [len(b) for b in order] == [4, 4, 4]
    assert set(i for b in order for i in b) == set(range(10))
    assert steps_per_epoch(10, 4) == 3 and steps_per_epoch(3, 8) == 1
    assert epoch_order(3, 8, seed=0, epoch=0)[0] and len(epoch_order(3, 8, seed=0, epoch=0)[0]) == 3


def test_estimate_uses_the_tokenizer_only(tiny_model: Path, arithmetic_file: Path, tmp_path: Path) -> None:
    est = estimate(tiny_model, arithmetic_file, max_seq_len=1024, batch_size=4, n_epochs=2)
    assert est["n_examples"] == 11 and est["truncated"] == 0 and est["steps"] == 6
    assert est["trained_tokens"] == 2 * est["total_tokens"] > 11 * 20
    long = write_chats(
        tmp_path / "long.jsonl",
        [{"messages": [{"role": "user", "content": "x " * 300}, {"role": "assistant", "content": "y"}]}],
    )
    assert estimate(tiny_model, long, max_seq_len=128, batch_size=1, n_epochs=1)["truncated"] == 1
