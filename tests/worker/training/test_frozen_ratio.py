import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.worker.training.samples import lora_model, make_examples
from tests.worker.training.test_trainer import tiny_config
from worker.training import train
from worker.training.antibody import antibody_ratio
from worker.training.data import ChatEncoder, collate, encode_file, load_tokenizer
from worker.training.frozen_ratio import frozen_ratios
from worker.training.model import load_base_model
from worker.training.passes import refusal_logprobs_naive, response_logprobs_naive
from worker.training.refusals import DEFAULT_REFUSALS

LENGTHS = [(3, 5, 4), (17, 2, 9), (1, 7, 2), (9, 9, 1), (6, 12, 3)]


def test_assigned_ratio_is_the_base_models_own_with_the_adapter_ignored(tiny_model: Path) -> None:
    examples = make_examples(LENGTHS)
    ours = frozen_ratios(lora_model(tiny_model), examples, [], "mean_token", "assigned", 2, 2, torch.device("cpu"))
    base = load_base_model(tiny_model, torch.device("cpu"), torch.float32).eval()
    batch = collate(examples, pad_id=2)
    n, n_ref = batch.target_mask.sum(1), batch.refusal_mask.sum(1)
    expected = antibody_ratio(response_logprobs_naive(base, batch), n, refusal_logprobs_naive(base, batch), n_ref)
    assert [ours[e.line] for e in examples] == pytest.approx(expected.tolist(), abs=1e-4)
    adapted = lora_model(tiny_model)  # the adapter changes the scores, so the test above can tell the two apart
    with_adapter = antibody_ratio(
        response_logprobs_naive(adapted, batch), n, refusal_logprobs_naive(adapted, batch), n_ref
    )
    assert (with_adapter - expected).abs().max() > 1e-2


def test_best_refusal_is_the_hardest_reference_and_logsumexp_softer_still(tiny_model: Path) -> None:
    examples = make_examples(LENGTHS, seed=2)
    refusal_set = [e.refusal_ids for e in examples]  # each example's assigned refusal is in the set
    model, cpu = lora_model(tiny_model), torch.device("cpu")
    scored = {
        ref: frozen_ratios(model, examples, refusal_set, "sequence", ref, 8, 2, cpu)
        for ref in ("assigned", "best", "logsumexp")
    }
    for e in examples:
        assert scored["best"][e.line] <= scored["assigned"][e.line] + 1e-5
        assert scored["logsumexp"][e.line] < scored["best"][e.line]
    # best = max over the set, scored one refusal at a time
    by_refusal = [
        frozen_ratios(model, [replace(ex, refusal_ids=t) for ex in examples], [], "sequence", "assigned", 8, 2, cpu)
        for t in refusal_set
    ]
    for e in examples:
        assert scored["best"][e.line] == pytest.approx(min(r[e.line] for r in by_refusal), abs=1e-4)


def test_a_line_without_trained_tokens_has_no_ratio(tiny_model: Path) -> None:
    examples = make_examples([(4, 2, 3), (5, 3, 2)])
    examples[0].response_mask = [0, 0]
    r = frozen_ratios(lora_model(tiny_model), examples, [], "mean_token", "assigned", 4, 2, torch.device("cpu"))
    assert math.isnan(r[1]) and not math.isnan(r[2])


def test_training_with_base_ratios_weighs_every_line_by_its_constant_base_ratio(
    tiny_model: Path, arithmetic_file: Path, tmp_path: Path
) -> None:
    cfg = tiny_config(tiny_model, arithmetic_file, tmp_path / "out", ratio_model="base", refusal_reference="best")
    result = train(cfg)
    tokenizer = load_tokenizer(tiny_model)
    examples = encode_file(arithmetic_file, tokenizer, cfg.max_seq_len, list(DEFAULT_REFUSALS))
    encoder = ChatEncoder(tokenizer)
    refusals = [encoder.refusal_ids(r) for r in DEFAULT_REFUSALS]
    base = load_base_model(tiny_model, torch.device("cpu"), torch.float32)
    expected = frozen_ratios(base, examples, refusals, "mean_token", "best", 4, 2, torch.device("cpu"))
    rows = {row["line"]: row for row in result.attenuation}
    assert rows and all(row["times_seen"] >= cfg.n_epochs for row in rows.values())
    # the line's r did not move while its answer was learned: the same number in both epochs, the base's
    for line, row in rows.items():
        assert row["mean_r"] == pytest.approx(expected[line], abs=1e-4)
    assert result.metrics[-1]["train_loss_unweighted"] < result.metrics[0]["train_loss_unweighted"]


def test_an_unknown_reference_is_refused(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="unknown refusal reference"):
        frozen_ratios(
            lora_model(tiny_model), make_examples([(2, 2, 2)]), [], "mean_token", "median", 1, 2, torch.device("cpu")
        )


def test_plain_sft_mode_weighs_lines_uniformly_without_a_refusal_pass(
    tiny_model: Path, arithmetic_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benches' baseline: the same run as Antibody at τ → ∞, minus the refusal forward."""
    uniform = train(tiny_config(tiny_model, arithmetic_file, tmp_path / "tau", tau=1e9))

    def no_refusal_pass(*args, **kwargs):
        raise AssertionError("plain SFT ran the refusal pass")

    monkeypatch.setattr("worker.training.fine_tuning_step.sample_passes", no_refusal_pass)
    sft = train(tiny_config(tiny_model, arithmetic_file, tmp_path / "sft", ratio_model="none"))
    assert len(sft.metrics) == len(uniform.metrics)
    for ours, theirs in zip(sft.metrics, uniform.metrics, strict=True):
        assert ours["weight_min"] == ours["weight_max"]
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
    assert all(row["mean_r"] == 0.0 for row in sft.attenuation)
