from pathlib import Path

import pytest
import torch

from tests.worker.training.samples import lora_model, make_examples
from worker.training.data import collate
from worker.training.passes import (
    refusal_logprobs_naive,
    refusal_logprobs_prefix_kv,
    response_logprobs_naive,
    response_pass,
)

VARIED = [(3, 5, 4), (17, 2, 9), (1, 7, 2), (9, 9, 1), (30, 1, 6), (6, 12, 3)]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_prefix_kv_refusal_logprobs_equal_naive_second_forward(tiny_model: Path, attn: str) -> None:
    model = lora_model(tiny_model, attn)
    batch = collate(make_examples(VARIED), pad_id=2)
    out = response_pass(model, batch, keep_cache=True)
    ours = refusal_logprobs_prefix_kv(model, batch, out.cache, out.prompt_end_hidden)
    naive = refusal_logprobs_naive(model, batch)
    assert torch.allclose(ours, naive, atol=1e-4, rtol=0), (ours - naive).abs().max()
    # and both equal scoring each sample alone, without any padding
    for i, ex in enumerate(make_examples(VARIED)):
        ids = torch.tensor([ex.prompt_ids + ex.refusal_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        p = len(ex.prompt_ids)
        alone = sum(logp[p - 1 + j, t] for j, t in enumerate(ex.refusal_ids))
        assert abs(alone.item() - ours[i].item()) < 1e-4


def test_training_forward_logprobs_equal_stock_forward(tiny_model: Path) -> None:
    model = lora_model(tiny_model)
    batch = collate(make_examples(VARIED, seed=1), pad_id=2)
    out = response_pass(model, batch, keep_cache=False)
    torch.testing.assert_close(out.logp_response, response_logprobs_naive(model, batch), atol=1e-4, rtol=0)
    assert out.n_tokens.tolist() == [4, 2, 6, 8, 1, 11]
    assert out.nll_sum.requires_grad and not out.logp_response.requires_grad


def test_refusal_pass_leaves_the_training_gradient_intact(tiny_model: Path) -> None:
    model = lora_model(tiny_model)
    batch = collate(make_examples(VARIED, seed=2), pad_id=2)
    params = [p for p in model.parameters() if p.requires_grad]

    plain = response_pass(model, batch, keep_cache=False)
    grads_plain = torch.autograd.grad(plain.nll_sum.sum(), params)

    out = response_pass(model, batch, keep_cache=True)
    refusal_logprobs_prefix_kv(model, batch, out.cache, out.prompt_end_hidden)  # crops the cache, feeds y_r
    grads = torch.autograd.grad(out.nll_sum.sum(), params)
    for a, b in zip(grads, grads_plain, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_single_token_refusal_needs_no_extra_forward(tiny_model: Path) -> None:
    model = lora_model(tiny_model)
    batch = collate(make_examples([(4, 3, 1), (2, 5, 1)]), pad_id=2)
    out = response_pass(model, batch, keep_cache=True)
    ours = refusal_logprobs_prefix_kv(model, batch, out.cache, out.prompt_end_hidden)
    torch.testing.assert_close(ours, refusal_logprobs_naive(model, batch), atol=1e-4, rtol=0)
