import math

import pytest
import torch
import torch.nn.functional as F

from worker.training.antibody import (
    antibody_ratio,
    antibody_weights,
    per_sample_sum,
    target_logprobs,
    weight_stats,
    weighted_nll,
)


def _masked_batch(seed: int = 0, b: int = 3, t: int = 7, h: int = 8, v: int = 11):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, t, h, generator=gen, requires_grad=True)
    head = torch.nn.Linear(h, v, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(v, h, generator=gen))
    labels = torch.randint(0, v, (b, t), generator=gen)
    mask = torch.rand(b, t, generator=gen) > 0.4
    mask[:, 0] = True
    return hidden, head, labels, mask


def test_uniform_weights_equal_masked_cross_entropy() -> None:
    hidden, head, labels, mask = _masked_batch()
    logp, _ = target_logprobs(hidden[mask], head, labels[mask])
    sample = mask.nonzero()[:, 0]
    nll_sum = per_sample_sum(-logp, sample, 3)
    ours = weighted_nll(nll_sum, mask.sum(1), torch.full((3,), 1 / 3))
    reference = F.cross_entropy(head(hidden).flatten(0, 1), labels.masked_fill(~mask, -100).flatten())
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)
    ours_grad = torch.autograd.grad(ours, hidden)[0]
    ref_grad = torch.autograd.grad(reference, hidden)[0]
    torch.testing.assert_close(ours_grad, ref_grad, rtol=1e-5, atol=1e-7)


def test_target_logprobs_match_log_softmax_and_accuracy() -> None:
    hidden, head, labels, mask = _masked_batch(seed=1)
    logp, correct = target_logprobs(hidden[mask], head, labels[mask])
    full = torch.log_softmax(head(hidden), -1)
    torch.testing.assert_close(logp, full.gather(-1, labels[..., None])[..., 0][mask])
    assert torch.equal(correct, full.argmax(-1)[mask] == labels[mask])


def test_hand_computed_two_sample_weights() -> None:
    logp_y, n_y = torch.tensor([-2.0, -6.0]), torch.tensor([2, 3])
    logp_r, n_r = torch.tensor([-3.0, -3.0]), torch.tensor([3, 1])
    # mean-token: r = (-2/2 − (−3/3), −6/3 − (−3/1)) = (0, 1)
    r = antibody_ratio(logp_y, n_y, logp_r, n_r, "mean_token")
    torch.testing.assert_close(r, torch.tensor([0.0, 1.0]))
    w = antibody_weights(r, tau=1.0)
    torch.testing.assert_close(w, torch.tensor([1 / (1 + math.e), math.e / (1 + math.e)]))
    # sequence: r = (−2 + 3, −6 + 3) = (1, −3): softmax = (1, e^−4) / (1 + e^−4)
    r_seq = antibody_ratio(logp_y, n_y, logp_r, n_r, "sequence")
    torch.testing.assert_close(r_seq, torch.tensor([1.0, -3.0]))
    w_seq = antibody_weights(r_seq)
    torch.testing.assert_close(w_seq, torch.tensor([1 / (1 + math.exp(-4)), math.exp(-4) / (1 + math.exp(-4))]))
    # temperature 2 halves the logit gap
    torch.testing.assert_close(
        antibody_weights(r_seq, tau=2.0),
        torch.tensor([1 / (1 + math.exp(-2)), math.exp(-2) / (1 + math.exp(-2))]),
    )


def test_hand_computed_weighted_nll() -> None:
    nll_sum, n = torch.tensor([2.0, 6.0]), torch.tensor([2, 3])
    loss = weighted_nll(nll_sum, n, torch.tensor([0.25, 0.75]))
    assert loss.item() == pytest.approx((0.25 * 2 + 0.75 * 6) / (0.25 * 2 + 0.75 * 3))
    # invariant to rescaling the weights (what gradient accumulation relies on)
    assert weighted_nll(nll_sum, n, torch.tensor([1.0, 3.0])).item() == pytest.approx(loss.item())


def test_large_tau_gives_uniform_weights() -> None:
    r = torch.tensor([-30.0, 0.5, 4.0, 12.0])
    torch.testing.assert_close(antibody_weights(r, tau=1e9), torch.full((4,), 0.25))
    assert antibody_weights(r, tau=1.0)[0] < 1e-15  # and a small tau does not


def test_weights_are_detached_and_sum_to_one() -> None:
    r = torch.randn(5, requires_grad=True)
    w = antibody_weights(r, tau=0.7)
    assert not w.requires_grad
    assert w.sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        antibody_weights(r, tau=0.0)


def test_all_masked_sample_gets_no_weight_and_no_loss() -> None:
    logp_y, n_y = torch.tensor([-3.0, 0.0, -1.0]), torch.tensor([3, 0, 1])
    r = antibody_ratio(logp_y, n_y, torch.tensor([-4.0, -4.0, -4.0]), torch.tensor([2, 2, 2]))
    assert torch.isnan(r[1]) and not torch.isnan(r[[0, 2]]).any()
    w = antibody_weights(r)
    assert w[1] == 0 and w.sum().item() == pytest.approx(1.0)
    stats = weight_stats(w, r)
    assert stats["frac_r_negative"] == 0.0 and stats["weight_min"] > 0


def test_all_masked_batch_gives_zero_loss_with_a_graph() -> None:
    hidden = torch.randn(0, 4, requires_grad=True)
    nll_sum = per_sample_sum(
        -target_logprobs(hidden, torch.nn.Linear(4, 5), torch.zeros(0, dtype=torch.long))[0],
        torch.zeros(0, dtype=torch.long),
        2,
    )
    r = antibody_ratio(-nll_sum.detach(), torch.tensor([0, 0]), torch.tensor([-1.0, -1.0]), torch.tensor([1, 1]))
    w = antibody_weights(r)
    assert torch.equal(w, torch.zeros(2))
    loss = weighted_nll(nll_sum, torch.tensor([0, 0]), w)
    assert loss.item() == 0.0
    loss.backward()  # must not raise: an all-masked batch is a no-op step, not a crash
    assert math.isnan(weight_stats(w, r)["weight_mean"])


def test_weight_stats_entropy_and_negative_fraction() -> None:
    r = torch.tensor([-1.0, -2.0, 3.0, 3.0])
    w = antibody_weights(r, tau=1e9)
    stats = weight_stats(w, r)
    assert stats["weight_entropy"] == pytest.approx(math.log(4))
    assert stats["frac_r_negative"] == 0.5
    assert stats["weight_min"] == pytest.approx(0.25) and stats["weight_max"] == pytest.approx(0.25)
