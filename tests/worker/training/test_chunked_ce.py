import pytest
import torch
from torch import nn

from worker.training.antibody import target_logprobs
from worker.training.chunked_ce import chunked_target_logprobs


def _case(n: int = 37, h: int = 16, v: int = 301, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(h, v, bias=True)
    with torch.no_grad():
        head.weight.copy_(torch.randn(v, h, generator=gen))
        head.bias.copy_(torch.randn(v, generator=gen))
    hidden = torch.randn(n, h, generator=gen, requires_grad=True)
    targets = torch.randint(0, v, (n,), generator=gen)
    return hidden, head, targets


@pytest.mark.parametrize("chunk", [1, 5, 36, 37, 100, None])
def test_chunked_equals_full_in_value_and_gradient(chunk: int | None) -> None:
    hidden, head, targets = _case()
    full, full_correct = target_logprobs(hidden, head, targets)
    weights = torch.linspace(0.5, 2.0, hidden.shape[0])  # a non-uniform upstream gradient
    g_full = torch.autograd.grad((full * weights).sum(), [hidden, head.weight, head.bias])

    ours, correct = chunked_target_logprobs(hidden, head, targets, chunk)
    g_ours = torch.autograd.grad((ours * weights).sum(), [hidden, head.weight, head.bias])

    torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-6)
    assert torch.equal(correct, full_correct)
    for a, b in zip(g_ours, g_full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_no_call_projects_more_than_a_chunk_forward_or_backward() -> None:
    hidden, head, targets = _case(n=50)
    rows: list[int] = []
    head.register_forward_hook(lambda _m, _i, out: rows.append(out.shape[0]))
    logp, _ = chunked_target_logprobs(hidden, head, targets, chunk_tokens=8)
    forward_calls = len(rows)
    logp.sum().backward()
    assert max(rows) == 8 and forward_calls == 7
    assert len(rows) == 2 * forward_calls  # backward rebuilt each chunk's logits instead of keeping them
    assert hidden.grad is not None and head.weight.grad is not None


def test_without_gradients_it_still_chunks_and_matches() -> None:
    hidden, head, targets = _case(n=20)
    with torch.no_grad():
        full, _ = target_logprobs(hidden, head, targets)
        ours, _ = chunked_target_logprobs(hidden, head, targets, chunk_tokens=6)
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-6)
    assert not ours.requires_grad


def test_rejects_a_non_positive_chunk() -> None:
    hidden, head, targets = _case(n=4)
    with pytest.raises(ValueError):
        chunked_target_logprobs(hidden, head, targets, chunk_tokens=0)
