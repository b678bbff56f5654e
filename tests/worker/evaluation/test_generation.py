from __future__ import annotations

import torch

from worker.evaluation.generation import (
    generate,
    greedy_decode,
    left_pad,
    render_prompt,
    stop_ids,
)

PROMPTS = [
    "Hi",
    "Tell me a long story about a dragon who lived in a mountain and hoarded gold for a thousand years.",
    "What is 2+2?",
    "word " * 30,
    "Bonjour, comment ça va ?",
    "Summarise the plot of Hamlet in one sentence.",
    "?",
]


def test_left_pad_puts_pads_on_the_left() -> None:
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_render_prompt_applies_the_chat_template(tokenizer) -> None:
    text = tokenizer.decode(render_prompt(tokenizer, "What is 2+2?"))
    assert "<|im_start|>user\nWhat is 2+2?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    with_system = tokenizer.decode(render_prompt(tokenizer, "Hi", system="Be terse."))
    assert "<|im_start|>system\nBe terse.<|im_end|>" in with_system


def test_batched_equals_one_at_a_time_token_for_token(varied_model, tokenizer) -> None:
    single = [generate(varied_model, tokenizer, [p], max_new_tokens=20, batch_size=1)[0] for p in PROMPTS]
    lengths = {len(render_prompt(tokenizer, p)) for p in PROMPTS}
    assert len(lengths) >= 5  # rows of one batch get different amounts of padding
    assert len({tuple(s.token_ids) for s in single}) == len(PROMPTS)  # outputs differ: the check has teeth
    for batch_size in (3, len(PROMPTS)):
        batched = generate(varied_model, tokenizer, PROMPTS, max_new_tokens=20, batch_size=batch_size)
        assert [b.token_ids for b in batched] == [s.token_ids for s in single]
        assert [b.text for b in batched] == [s.text for s in single]


def test_single_prompt_matches_hf_generate(varied_model, tokenizer) -> None:
    ids = torch.tensor([render_prompt(tokenizer, PROMPTS[1])])
    ref = varied_model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=16,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=tokenizer.pad_token_id,
    )[0, ids.shape[1] :].tolist()
    tokens, finished = greedy_decode(varied_model, ids, torch.ones_like(ids), 16, {-1}, tokenizer.pad_token_id)
    assert tokens == [ref] and finished == [False]


def test_each_row_stops_at_its_own_eos(varied_model, tokenizer) -> None:
    prompts = PROMPTS[:4]
    free = [generate(varied_model, tokenizer, [p], max_new_tokens=12, batch_size=1)[0].token_ids for p in prompts]
    eos = free[1][5]  # a token that row 1 emits at step 5
    ids, mask = left_pad([render_prompt(tokenizer, p) for p in prompts], tokenizer.pad_token_id)
    tokens, finished = greedy_decode(varied_model, ids, mask, 12, {eos}, tokenizer.pad_token_id)
    for row, (got, done) in enumerate(zip(tokens, finished, strict=True)):
        cut = free[row].index(eos) if eos in free[row] else None
        assert got == (free[row] if cut is None else free[row][:cut]), row
        assert done == (cut is not None)
    assert finished[1] and len(tokens[1]) <= 5


def test_generate_restores_training_mode_and_order(varied_model, tokenizer) -> None:
    varied_model.train()
    try:
        out = generate(varied_model, tokenizer, PROMPTS[:3], max_new_tokens=2, batch_size=2)
        assert varied_model.training
    finally:
        varied_model.eval()
    again = [generate(varied_model, tokenizer, [p], max_new_tokens=2)[0] for p in PROMPTS[:3]]
    assert [o.token_ids for o in out] == [a.token_ids for a in again]
    assert generate(varied_model, tokenizer, [], max_new_tokens=2) == []


def test_stop_ids_include_the_tokenizer_eos(varied_model, tokenizer) -> None:
    assert tokenizer.eos_token_id in stop_ids(tokenizer, varied_model)
