from pathlib import Path

import pytest
import torch

from tests.worker.training.samples import lora_model, make_examples
from worker.training.data import collate
from worker.training.fine_tuning_step import antibody_backward
from worker.training.packed_passes import packed_refusal_logprobs, packed_response_pass, packed_sample_passes
from worker.training.packing import pack
from worker.training.passes import refusal_logprobs_naive, response_pass

# (prompt, response, refusal) lengths, deliberately uneven so that rows hold several samples
VARIED = [(3, 5, 4), (17, 2, 9), (1, 7, 2), (9, 9, 1), (30, 1, 6), (6, 12, 3), (2, 3, 5), (4, 0, 3)]


@pytest.mark.parametrize(("attn", "row_tokens"), [("sdpa", None), ("eager", None), ("sdpa", 1000)])
def test_packed_sums_equal_the_padded_pass(tiny_model: Path, attn: str, row_tokens: int | None) -> None:
    model = lora_model(tiny_model, attn)
    examples = make_examples(VARIED)
    packed = pack(examples, pad_id=2, row_tokens=row_tokens)
    assert packed.input_ids.shape[0] == (1 if row_tokens else 4)  # several samples really share a row
    padded = collate(examples, pad_id=2)

    ours = packed_response_pass(model, packed, keep_cache=True)
    ref = response_pass(model, padded, keep_cache=False)
    torch.testing.assert_close(ours.nll_sum, ref.nll_sum, atol=1e-4, rtol=0)
    assert ours.n_tokens.tolist() == ref.n_tokens.tolist() == [4, 2, 6, 8, 1, 11, 2, 0]
    assert ours.n_correct.tolist() == ref.n_correct.tolist()

    refusal = packed_refusal_logprobs(model, packed, ours.cache, ours.prompt_end_hidden)
    naive = refusal_logprobs_naive(model, padded)
    torch.testing.assert_close(refusal, naive, atol=1e-4, rtol=0)


def test_packed_naive_refusal_equals_the_prefix_kv_one(tiny_model: Path) -> None:
    model = lora_model(tiny_model)
    packed = pack(make_examples(VARIED, seed=1), pad_id=2, naive_refusal=True)
    _, prefix_kv, n_kv = packed_sample_passes(model, packed, "prefix_kv")
    _, naive, n_naive = packed_sample_passes(model, packed, "naive")
    torch.testing.assert_close(prefix_kv, naive, atol=1e-4, rtol=0)
    assert n_kv.tolist() == n_naive.tolist() == [rr for _, _, rr in VARIED]


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("micro", "chunk", "ratio", "tau"),
    [(8, None, "mean_token", 0.5), (3, 5, "mean_token", 0.5), (8, 4, "sequence", 50.0)],
)
def test_packed_step_equals_the_padded_step(
    tiny_model: Path, micro: int, chunk: int | None, ratio: str, tau: float
) -> None:
    model = lora_model(tiny_model)
    examples = make_examples(VARIED, seed=2)
    groups = [examples[i : i + micro] for i in range(0, len(examples), micro)]

    model.zero_grad(set_to_none=True)
    ref = antibody_backward(model, [collate(g, 2) for g in groups], tau, ratio, "prefix_kv")
    ref_grads = _grads(model)

    model.zero_grad(set_to_none=True)
    ours = antibody_backward(model, [pack(g, 2) for g in groups], tau, ratio, "prefix_kv", chunk)
    grads = _grads(model)

    torch.testing.assert_close(ours.weights, ref.weights, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.r, ref.r, atol=1e-4, rtol=0, equal_nan=True)
    torch.testing.assert_close(ours.nll_sum, ref.nll_sum, atol=1e-4, rtol=0)
    assert ours.n_tokens.tolist() == ref.n_tokens.tolist() and ours.lines == ref.lines
    assert 1e-3 < ref.weights[ref.weights > 0].min() < 0.5 * ref.weights.max()  # far from uniform, none vanishing
    assert any(g.abs().max() > 0 for g in ref_grads.values())
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_single_token_refusals_need_no_refusal_queries(tiny_model: Path) -> None:
    model = lora_model(tiny_model)
    examples = make_examples([(4, 3, 1), (2, 5, 1), (3, 1, 1)])
    packed = pack(examples, pad_id=2)
    assert packed.ref_ids.shape[1] == 0
    _, ours, _ = packed_sample_passes(model, packed, "prefix_kv")
    torch.testing.assert_close(ours, refusal_logprobs_naive(model, collate(examples, 2)), atol=1e-4, rtol=0)
