import json
from pathlib import Path

import pytest
import torch

from worker.training import checkpoint as ckpt
from worker.training.model import add_lora, load_base_model


@pytest.fixture
def parts(tiny_model: Path):
    torch.manual_seed(0)
    model = add_lora(load_base_model(tiny_model, torch.device("cpu"), torch.float32), 2, 4, 0.0, ("q_proj",))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def test_save_then_load_restores_everything(parts, tmp_path: Path) -> None:
    model, optimizer, scheduler = parts
    torch.manual_seed(123)
    path = ckpt.save_checkpoint(tmp_path, 7, model, optimizer, scheduler, {"step": 7, "x": [1, 2]})
    expected_next_random = torch.rand(3)
    saved = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    assert path == tmp_path / "step-7"
    manifest = ckpt.read_manifest(path)
    assert manifest["step"] == 7
    assert {
        "adapter/adapter_model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng.pt",
        "trainer_state.json",
    } <= set(manifest["files"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp litter

    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1.0)
    state = ckpt.load_checkpoint(path, model, optimizer, scheduler)
    assert state == {"step": 7, "x": [1, 2]}
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, saved[name])
    assert torch.equal(torch.rand(3), expected_next_random)
    assert scheduler.last_epoch == 1 and len(optimizer.state) > 0


def test_a_crash_mid_write_leaves_no_checkpoint(parts, tmp_path: Path, monkeypatch) -> None:
    model, optimizer, scheduler = parts
    ckpt.save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {})
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        if str(f).endswith("rng.pt"):
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path, 2, model, optimizer, scheduler, {})
    assert not (tmp_path / "step-2").exists()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-1"]


def test_incomplete_or_corrupted_checkpoints_are_rejected(parts, tmp_path: Path) -> None:
    model, optimizer, scheduler = parts
    path = ckpt.save_checkpoint(tmp_path, 3, model, optimizer, scheduler, {})
    (tmp_path / "step-9").mkdir()  # a directory without a manifest (e.g. copied by hand, half-uploaded)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-3"]
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        ckpt.load_checkpoint(tmp_path / "step-9", model, optimizer, scheduler)
    state_file = path / "trainer_state.json"
    state_file.write_text(json.dumps({"tampered": True}))
    with pytest.raises(ValueError, match="does not match the manifest"):
        ckpt.load_checkpoint(path, model, optimizer, scheduler)


def test_prune_keeps_the_newest(parts, tmp_path: Path) -> None:
    model, optimizer, scheduler = parts
    for step in (2, 10, 4):
        ckpt.save_checkpoint(tmp_path, step, model, optimizer, scheduler, {})
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-4", "step-10"]
    ckpt.prune_checkpoints(tmp_path, keep=0)
    assert len(ckpt.list_checkpoints(tmp_path)) == 2
