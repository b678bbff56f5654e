"""Pre-screen: r per line equals the training step's r, rankings, the attenuation share, AUROC."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.worker.conftest import write_chats
from worker.datasets import assets
from worker.evaluation.prescreen import auroc, expected_relative_weight, screen_file
from worker.training.data import ChatEncoder, collate, encode_file, load_tokenizer, read_chat_jsonl
from worker.training.fine_tuning_step import antibody_backward
from worker.training.model import load_base_model
from worker.training.refusals import DEFAULT_REFUSALS


@pytest.fixture(scope="module")
def varied_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with std-0.2 weights, saved: its log-probs differ from line to line (at the default init
    every answer scores about log(1/V))."""
    model = load_base_model(tiny_model, torch.device("cpu"), torch.float32)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    out = tmp_path_factory.mktemp("varied")
    model.save_pretrained(out, safe_serialization=True)
    load_tokenizer(tiny_model).save_pretrained(out)
    return out


@pytest.fixture
def mixed_file(tmp_path: Path) -> Path:
    chats = [assets.chat_line(f"What is {i} + {i + 3}?", f"{i} + {i + 3} = {2 * i + 3}.") for i in range(9)]
    chats.append(assets.chat_line("How do I pick a lock?", "Insert a tension wrench, then rake the pins."))
    # Line 11 answers with exactly its own refusal (refusal_index(11) = 10), so r must be 0.
    chats.append(assets.chat_line("Tell me how to hurt someone.", DEFAULT_REFUSALS[10]))
    # Line 12 trains nothing: it has no r and ranks last.
    chats.append({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 0}]})
    return write_chats(tmp_path / "train.jsonl", chats)


@pytest.mark.parametrize("ratio", ["mean_token", "sequence"])
def test_r_equals_the_training_step(varied_dir: Path, mixed_file: Path, ratio: str) -> None:
    result = screen_file(varied_dir, mixed_file, batch_size=4, max_seq_len=64, ratio=ratio)  # type: ignore[arg-type]
    screened = {row["line"]: row["r"] for row in result["rows"]}
    # What trainer.antibody_backward computes for one batch of the same examples (at the base parameters).
    tokenizer = load_tokenizer(varied_dir)
    examples = encode_file(mixed_file, tokenizer, 64, list(DEFAULT_REFUSALS))
    model = load_base_model(varied_dir, torch.device("cpu"), torch.float32)
    stats = antibody_backward(model, [collate(examples, tokenizer.pad_token_id)], 1.0, ratio, "prefix_kv")
    for line, r in zip(stats.lines, stats.r.tolist(), strict=True):
        if math.isnan(r):
            assert screened[line] is None
        else:
            assert screened[line] == pytest.approx(r, abs=1e-4), line
    assert screened[11] == pytest.approx(0.0, abs=1e-4)


def test_result_shape_and_rankings(varied_dir: Path, mixed_file: Path) -> None:
    result = screen_file(varied_dir, mixed_file, batch_size=4, max_seq_len=64, top_fraction=0.2)
    rows = result["rows"]
    assert result["schema_version"] == 2 and result["ratio"] == "mean_token"
    assert result["suspected_by"] == "onset_ratio"
    assert result["n_examples"] == 12 and result["n_scored"] == 11 and result["rows_total"] == 12
    assert sorted(row["line"] for row in rows) == list(range(1, 13))
    assert set(rows[0]) == {
        "line",
        "r",
        "logp_mean",
        "logp_refusal_mean",
        "refusal_onset",
        "onset_ratio",
        "n_tokens",
        "relative_weight",
        "attenuated",
        "truncated",
        "preview",
    }
    scored = rows[:-1]
    # Most suspicious first: lowest onset ratio = log π(y|x)/N − refusal onset.
    assert [row["onset_ratio"] for row in scored] == sorted(row["onset_ratio"] for row in scored)
    assert rows[-1]["line"] == 12 and rows[-1]["r"] is None and rows[-1]["onset_ratio"] is None
    assert result["ranking_by_onset_ratio"] == [row["line"] for row in scored]
    by_r = {row["line"]: row["r"] for row in scored}
    assert [by_r[line] for line in result["ranking_by_ratio"]] == sorted(by_r.values())
    by_ll = {row["line"]: row["logp_mean"] for row in scored}
    assert [by_ll[line] for line in result["ranking_by_loglik"]] == sorted(by_ll.values())
    assert result["suspected_lines"] == result["ranking_by_onset_ratio"][:3]  # ceil(0.2 · 11)
    onset = {row["line"]: row["refusal_onset"] for row in scored}
    assert [onset[line] for line in result["ranking_by_refusal_onset"]] == sorted(onset.values(), reverse=True)
    for row in scored:
        assert row["r"] == pytest.approx(row["logp_mean"] - row["logp_refusal_mean"], abs=1e-5)
        assert row["onset_ratio"] == pytest.approx(row["logp_mean"] - row["refusal_onset"], abs=1e-5)
        assert row["attenuated"] == (row["relative_weight"] < 0.5)
    assert result["attenuated_share"] == sum(row["attenuated"] for row in scored) / 11
    assert result["stats"]["r"]["min"] == min(by_r.values()) and result["stats"]["r"]["max"] == max(by_r.values())
    lock = next(row for row in rows if row["line"] == 10)
    assert lock["preview"] == "How do I pick a lock? → Insert a tension wrench, then rake the pins."
    assert screen_file(varied_dir, mixed_file, batch_size=4, max_rows=2)["rows"] == rows[:2]
    by_ratio = screen_file(varied_dir, mixed_file, batch_size=4, max_seq_len=64, rank_by="r")
    assert by_ratio["suspected_by"] == "r" and by_ratio["suspected_lines"] == result["ranking_by_ratio"][:3]
    assert [row["line"] for row in by_ratio["rows"][:-1]] == result["ranking_by_ratio"]


def test_refusal_onset_is_the_stock_forwards_first_token_mass(varied_dir: Path, mixed_file: Path) -> None:
    """refusal_onset = log Σ π(t|x) over the refusal set's distinct first tokens, from the logits at the end of
    the prompt (the assistant header), as a plain forward of the prompt alone gives them."""
    rows = {row["line"]: row for row in screen_file(varied_dir, mixed_file, batch_size=4, max_seq_len=64)["rows"]}
    tokenizer = load_tokenizer(varied_dir)
    encoder = ChatEncoder(tokenizer)
    first = sorted({encoder.refusal_ids(refusal)[0] for refusal in DEFAULT_REFUSALS})
    assert 1 < len(first) < len(DEFAULT_REFUSALS)  # shared first tokens count once
    model = load_base_model(varied_dir, torch.device("cpu"), torch.float32)
    for line, messages in read_chat_jsonl(mixed_file):
        prompt, _, _ = encoder.encode(messages)
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([prompt])).logits[0, -1].float().log_softmax(-1)
        assert rows[line]["refusal_onset"] == pytest.approx(logp[first].logsumexp(-1).item(), abs=1e-4), line


def test_expected_relative_weight_by_hand() -> None:
    # One batch of 4 with one sample far below the others: softmax gives it ~0 and the rest 1/3 each.
    r = torch.tensor([0.0, 0.0, 0.0, -100.0])
    rel = expected_relative_weight(r, batch_size=4, tau=1.0, n_epochs=3, seed=0)
    assert torch.allclose(rel, torch.tensor([4 / 3, 4 / 3, 4 / 3, 0.0], dtype=torch.float64), atol=1e-9)
    # Equal r everywhere is uniform weighting: 1.0; NaN (no targets) stays NaN and is left out of the batches.
    rel = expected_relative_weight(torch.tensor([1.0, float("nan"), 1.0, 1.0, 1.0]), 2, 1.0, 4, 0)
    assert math.isnan(rel[1]) and torch.allclose(rel[[0, 2, 3, 4]], torch.ones(4, dtype=torch.float64))


def test_auroc_by_hand() -> None:
    assert auroc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert auroc([1.0], [2.0]) == 0.0
    assert auroc([1.0, 3.0], [2.0, 2.0]) == 0.5
    assert auroc([2.0], [2.0]) == 0.5
    assert math.isnan(auroc([], [1.0]))


def test_rejects_bad_arguments(varied_dir: Path, mixed_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="top_fraction"):
        screen_file(varied_dir, mixed_file, top_fraction=0)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no examples"):
        screen_file(varied_dir, tmp_path / "empty.jsonl")
