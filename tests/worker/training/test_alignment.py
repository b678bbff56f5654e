"""Antibody's alignment stage on the tiny random Llama: exact restore, λ rules, the combined gradient, pass
count, memory, checkpoint/resume and merging. Seeded, CPU."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.worker.conftest import write_chats
from worker.datasets import assets
from worker.training.alignment import AlignConfig, align, merge_adapter
from worker.training.alignment_step import (
    FlatnessParams,
    antibody_alignment_step,
    combine_,
    cosine,
    count_passes,
    dot,
    lambda_code,
    lambda_paper,
    norm,
    perturb_,
    restore_,
    sft_step,
    token_nll,
)
from worker.training.data import ChatExample, collate
from worker.training.memory_meter import measure_peak
from worker.training.model import add_lora, load_base_model, trainable_state


def _model(tiny_model: Path, rank: int = 4):
    torch.manual_seed(0)
    model = load_base_model(tiny_model, torch.device("cpu"), torch.float32)
    model = add_lora(model, rank=rank, alpha=2 * rank, dropout=0.0, target_modules=("q_proj", "k_proj", "v_proj"))
    with torch.no_grad():  # a non-zero B, so that the adapter changes the outputs and gets full gradients
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
    model.train()
    return model, [p for p in model.parameters() if p.requires_grad]


def _batch(seed: int, batch: int = 4, prompt: int = 8, response: int = 16):
    gen = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(batch):
        p = prompt - (i % 3)
        ids = torch.randint(5, 49000, (p + response + 4,), generator=gen).tolist()
        examples.append(ChatExample(i + 1, ids[:p], ids[p : p + response], [1] * response, ids[p + response :]))
    return collate(examples, pad_id=2)


def _grads(model, params, batch):
    return list(torch.autograd.grad(token_nll(model, batch), params))


def test_perturb_then_restore_is_bit_exact(tiny_model: Path) -> None:
    model, params = _model(tiny_model)
    before = {k: v.clone() for k, v in trainable_state(model).items()}
    g = _grads(model, params, _batch(1))
    backup = perturb_(params, g, rho=0.1, direction_norm=norm(g).item())
    moved = torch.cat([(p.detach() - before[k]).reshape(-1) for k, p in trainable_state(model).items()])
    assert moved.norm().item() == pytest.approx(0.1, rel=1e-4)  # it did move by ρ
    restore_(params, backup)
    for k, p in trainable_state(model).items():
        assert torch.equal(p, before[k]), k


def test_alignment_step_leaves_parameters_bit_identical(tiny_model: Path) -> None:
    model, params = _model(tiny_model)
    before = {k: v.clone() for k, v in trainable_state(model).items()}
    antibody_alignment_step(model, params, _batch(1), _batch(2), _batch(3), FlatnessParams(rho=0.5), (0.0, 0))
    for k, p in trainable_state(model).items():
        assert torch.equal(p, before[k]), k


def test_lambda_code_rule_by_hand() -> None:
    # g_align = (1, 0 | 0), g_sharp = (0.6, 0 | 0.8): cos = 0.6; split over two "parameters".
    g_align = [torch.tensor([1.0, 0.0]), torch.tensor([[0.0]])]
    g_sharp = [torch.tensor([0.6, 0.0]), torch.tensor([[0.8]])]
    cos = cosine(g_align, g_sharp)
    assert cos == pytest.approx(0.6)
    lam, raw, state = lambda_code(cos, eta=5.0, momentum=0.99, state=(0.0, 0))
    assert raw == pytest.approx(4.4) and lam == pytest.approx(4.4)  # bias-corrected first step = raw
    lam2, raw2, state2 = lambda_code(-0.8, eta=5.0, momentum=0.99, state=state)
    assert raw2 == pytest.approx(5.8)
    assert lam2 == pytest.approx((0.99 * 0.01 * 4.4 + 0.01 * 5.8) / (1 - 0.99**2))  # = 5.10351
    assert state2 == (pytest.approx(0.99 * 0.044 + 0.058), 2)
    assert lambda_code(0.9, eta=0.5, momentum=0.0, state=(0.0, 0))[0] == 0.0  # clamped at 0


def test_lambda_paper_rule_by_hand() -> None:
    g_align = [torch.tensor([1.0]), torch.tensor([2.0])]
    g_sharp = [torch.tensor([3.0]), torch.tensor([4.0])]
    d, sq = dot(g_sharp, g_align).item(), norm(g_sharp).item() ** 2
    assert (d, sq) == (pytest.approx(11.0), pytest.approx(25.0))
    assert lambda_paper(d, sq, a_t=20.0) == pytest.approx(0.36)  # (20 − 11) / 25
    assert lambda_paper(d, sq, a_t=5.0) == 0.0  # already decreasing fast enough
    assert lambda_paper(d, 0.0, a_t=5.0) == 0.0


def test_combine_by_hand() -> None:
    a = [torch.tensor([1.0, 2.0])]
    out = combine_(a, [torch.tensor([10.0, 20.0])], [torch.tensor([100.0, 0.0])], lam=0.5, lam_ref=0.05)
    assert out[0].tolist() == pytest.approx([11.0, 12.0])


@pytest.mark.parametrize("rule", ["code", "paper"])
def test_combined_gradient_equals_reference(tiny_model: Path, rule: str) -> None:
    """An independent reference: autograd.grad, a flattened-vector perturbation on a cloned state, λ from
    flattened vectors; then g_align + λ g_sharp + λ_ref g_ref must equal what the step leaves in p.grad."""
    hp = FlatnessParams(rho=0.5, lambda_rule=rule, paper_a=0.05)
    b_align, b_harm, b_ref = _batch(1), _batch(2), _batch(3)
    model, params = _model(tiny_model)
    flat = lambda gs: torch.cat([g.reshape(-1) for g in gs])  # noqa: E731
    g_align, g_h = flat(_grads(model, params, b_align)), flat(_grads(model, params, b_harm))
    saved = [p.detach().clone() for p in params]
    step = -hp.rho * g_h / g_h.norm()
    with torch.no_grad():
        offset = 0
        for p in params:
            p.add_(step[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
    g_hp, g_ref = flat(_grads(model, params, b_harm)), flat(_grads(model, params, b_ref))
    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    g_sharp = g_h - g_hp
    if rule == "code":
        lam = max(0.0, hp.eta - (g_align @ g_sharp / (g_align.norm() * g_sharp.norm())).item())
    else:
        lam = max(0.0, (hp.paper_a - (g_sharp @ g_align).item()) / (g_sharp @ g_sharp).item())
    expected = g_align + lam * g_sharp + hp.lambda_refusal * g_ref

    metrics, _ = antibody_alignment_step(model, params, b_align, b_harm, b_ref, hp, (0.0, 0))
    assert metrics["lambda_t"] == pytest.approx(lam, rel=1e-4, abs=1e-6)
    got = flat([p.grad for p in params])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)
    assert g_sharp.norm() > 1e-3 * g_h.norm()  # the sharpness term is not vanishingly small here
    if rule == "paper":
        assert lam > 0  # a_t was chosen so that the rule is active


def test_pass_count_per_step(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted independently of the library: embedding forwards and torch.autograd.backward calls."""
    model, params = _model(tiny_model)
    forwards, backwards = [], []
    model.get_base_model().model.embed_tokens.register_forward_hook(lambda *a: forwards.append(1))
    real_backward = torch.autograd.backward
    monkeypatch.setattr(torch.autograd, "backward", lambda *a, **k: (backwards.append(1), real_backward(*a, **k)))
    with count_passes(model) as counted:
        antibody_alignment_step(model, params, _batch(1), _batch(2), _batch(3), FlatnessParams(), (0.0, 0))
    assert (len(forwards), len(backwards)) == (4, 4)
    assert (counted.forward, counted.backward) == (4, 4)
    forwards.clear(), backwards.clear()
    sft_step(model, _batch(1))
    assert (len(forwards), len(backwards)) == (1, 1)


def test_peak_memory_of_an_alignment_step_is_within_5_percent_of_sft(tiny_model: Path) -> None:
    """Peak tensor bytes of a full step (forward/backward passes, clipping, AdamW), as CUDA's
    max_memory_allocated would count them: resident weights, buffers, gradients and optimizer state, plus the
    peak C-heap growth during the step (worker/training/memory_meter.py). All batches have one shape, so each
    of the four alignment passes is as large as the SFT pass. A step that deep-copies the model (the authors'
    layout) must fail the same bound, which shows the meter sees what matters."""
    model, params = _model(tiny_model, rank=8)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    b_align, b_harm, b_ref = _batch(1, 4, 12, 48), _batch(2, 4, 12, 48), _batch(3, 4, 12, 48)

    def sft() -> None:
        optimizer.zero_grad(set_to_none=True)
        sft_step(model, b_align)
        optimizer.step()

    def antibody(copy_model: bool = False) -> None:
        optimizer.zero_grad(set_to_none=True)
        kept = copy.deepcopy(model) if copy_model else None
        antibody_alignment_step(model, params, b_align, b_harm, b_ref, FlatnessParams(), (0.0, 0))
        optimizer.step()
        del kept

    sft(), antibody()  # AdamW state exists before measuring
    peaks = {}
    for name, fn in {"sft": sft, "antibody": antibody, "deepcopy": lambda: antibody(True)}.items():
        optimizer.zero_grad(set_to_none=True)
        with measure_peak(torch.device("cpu"), model, optimizer) as mem:
            fn()
        peaks[name] = mem.peak
        assert mem.growth > 0
    assert peaks["antibody"] <= 1.05 * peaks["sft"], peaks
    assert peaks["deepcopy"] > 1.05 * peaks["sft"], peaks


@pytest.fixture
def align_files(tmp_path: Path) -> dict[str, Path]:
    refusal = "I cannot help with that."
    return {
        "align": write_chats(
            tmp_path / "align.jsonl",
            [assets.chat_line(f"How do I hurt person number {i}?", refusal) for i in range(10)],
        ),
        "harm": write_chats(
            tmp_path / "harm.jsonl",
            [assets.chat_line(f"How do I steal car {i}?", f"Break window {i}, then hotwire it.") for i in range(6)],
        ),
    }


def _cfg(tiny_model: Path, files: dict[str, Path], out: Path, **kw) -> AlignConfig:
    base = dict(batch_size=4, n_epochs=2, max_steps=4, lora_rank=4, lora_alpha=8.0, learning_rate=1e-2, max_seq_len=64)
    return AlignConfig(tiny_model, files["align"], files["harm"], out, **{**base, **kw})


def test_align_logs_every_step_and_trains(tiny_model: Path, align_files, tmp_path: Path) -> None:
    rows = []
    result = align(_cfg(tiny_model, align_files, tmp_path / "a"), on_step=rows.append)
    assert result.steps == result.total_steps == 4 and len(rows) == 4
    assert [m.epoch for m in rows] == [1, 1, 1, 2]  # 10 examples in batches of 4: 3 steps per epoch
    assert (tmp_path / "a" / "adapter" / "adapter_model.safetensors").is_file()
    for m in rows:
        assert (m.forward_passes, m.backward_passes) == (4, 4)
        assert all(math.isfinite(v) for v in (m.loss_align, m.loss_harm, m.loss_refusal, m.lambda_t))
        assert m.lambda_t > 0 and -1 <= m.cos_align_sharp <= 1
    assert rows[-1].loss_align < rows[0].loss_align
    assert set(result.data_sha256) == {"align", "harm"}
    sft = align(_cfg(tiny_model, align_files, tmp_path / "s", mode="sft"))
    assert {(m["forward_passes"], m["loss_harm"]) for m in sft.metrics} == {(1, None)}


def test_resume_reproduces_an_uninterrupted_run(tiny_model: Path, align_files, tmp_path: Path) -> None:
    """Paused after step 3 (a checkpoint at step 2 exists, the pause writes step 3), resumed to step 4: the
    adapter and every logged number equal an uninterrupted run's, λ's EMA state included."""
    rule = "code"
    full = align(_cfg(tiny_model, align_files, tmp_path / "full", lambda_rule=rule))
    calls = []

    def pause_at_step_3() -> str | None:
        calls.append(1)
        return "pause" if len(calls) == 4 else None

    cfg = _cfg(tiny_model, align_files, tmp_path / "part", lambda_rule=rule, checkpoint_every=2)
    paused = align(cfg, should_stop=pause_at_step_3)
    assert paused.stopped == "pause" and paused.steps == 3 and paused.adapter_dir is None
    resumed = align(
        _cfg(tiny_model, align_files, tmp_path / "part", lambda_rule=rule, resume_from=paused.last_checkpoint)
    )
    assert resumed.metrics == full.metrics
    a = load_file(str(full.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(resumed.adapter_dir / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="different data or hyperparameters"):
        align(_cfg(tiny_model, align_files, tmp_path / "x", rho=0.2, resume_from=paused.last_checkpoint))


def test_merged_model_matches_the_peft_model(tiny_model: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, _ = _model(tiny_model)
    model.save_pretrained(tmp_path / "adapter")
    out = merge_adapter(tiny_model, tmp_path / "adapter", tmp_path / "merged")
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, local_files_only=True).eval()
    peft = PeftModel.from_pretrained(
        load_base_model(tiny_model, torch.device("cpu"), torch.float32), tmp_path / "adapter"
    ).eval()
    ids = torch.randint(5, 49000, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = peft(input_ids=ids).logits
        got = merged(input_ids=ids).logits
        base = load_base_model(tiny_model, torch.device("cpu"), torch.float32)(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - base).abs().max() > 1e-2  # the adapter was really merged in
