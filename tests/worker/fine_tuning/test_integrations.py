"""worker/fine_tuning/integrations.py against the real `wandb` library in offline mode (its run files read back),
plus the failures that must never reach the training job."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from service.orm import JobRow
from tests import servers
from tests.worker.fine_tuning.wandb_files import finished_run, run_dirs
from worker.fine_tuning import integrations
from worker.leases import Lease
from worker.training import StepMetrics

pytest.importorskip("wandb")

SPEC = {"project": "antibody", "name": "run-a", "entity": None, "tags": ["exp-1"]}
HP = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 1.0}


@pytest.fixture(autouse=True)
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """WANDB_MODE=offline and every wandb folder under tmp_path: nothing under ~, and nothing left in os.environ."""
    root = tmp_path / "wandb-root"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(root))
    for sub in ("config", "cache", "data", "artifact"):
        monkeypatch.setenv(f"WANDB_{sub.upper()}_DIR", str(root / sub))
    return root


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(home=tmp_path / "home", wandb_base_url="http://127.0.0.1:9", **values)


def job(job_id: str = "ftjob-unit1", **values: Any) -> JobRow:
    fields: dict[str, Any] = dict(
        id=job_id,
        model="tiny-aligned",
        hyperparameters=HP,
        seed=7,
        training_file="file-t",
        validation_file=None,
        suffix=None,
        integrations=[{"type": "wandb", "wandb": SPEC}],
    )
    return JobRow(**{**fields, **values})


def step(n: int, total: int = 3) -> StepMetrics:
    return StepMetrics(
        step=n,
        total_steps=total,
        epoch=1,
        train_loss=1.0 / n,
        train_loss_unweighted=1.1 / n,
        train_mean_token_accuracy=0.1 * n,
        learning_rate=1e-4,
        weight_min=0.5,
        weight_mean=1.0,
        weight_max=1.5,
        weight_entropy=1.3,
        frac_r_negative=0.25,
        trained_tokens=100 * n,
        valid_loss=0.9 if n == total else None,
    )


def test_offline_run_holds_every_step_and_the_final_summary(tmp_path: Path, wandb_env: Path) -> None:
    warnings: list[str] = []
    tracker = integrations.WandbTracker(settings(tmp_path), job(), warnings.append)
    tracker.start(SPEC)
    seen: list[int] = []
    on_step = tracker.observe(lambda m: seen.append(m.step))
    for n in (1, 2, 3):
        on_step(step(n))
    done = job(status="succeeded", evaluation={"hs": 12.5, "fa": 80.0, "base_hs": None}, trained_tokens=300)
    tracker.finish(done, 0)

    assert warnings == [] and seen == [1, 2, 3]
    run = finished_run(wandb_env, "ftjob-unit1")
    assert len(run_dirs(wandb_env, "ftjob-unit1")) == 1
    assert run.run["id"] == "ftjob-unit1" and run.run["project"] == "antibody" and run.run["name"] == "run-a"
    assert run.run["tags"][:2] == ["exp-1", "ftaas/finetune"] and "ftaas/ftjob-unit1" in run.run["tags"]
    assert {k: run.run["config"][k] for k in ("model", *HP)} == {"model": "tiny-aligned", **HP}
    assert [h["_step"] for h in run.history] == [1, 2, 3]
    assert [h["train_loss"] for h in run.history] == [pytest.approx(1.0 / n) for n in (1, 2, 3)]
    assert "valid_loss" not in run.history[0] and run.history[2]["valid_loss"] == pytest.approx(0.9)
    assert run.summary["hs"] == 12.5 and run.summary["fa"] == 80.0 and "base_hs" not in run.summary
    assert run.summary["status"] == "succeeded" and run.summary["trained_tokens"] == 300
    assert run.exit_code == 0


def test_a_failed_delivery_finishes_the_run_with_a_non_zero_exit_code(
    tmp_path: Path, wandb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tracking` around a delivery that raises (the runner then marks the job failed)."""
    row = job("ftjob-unit2")
    monkeypatch.setattr(integrations, "_final_job", lambda settings, job_id: row)
    with pytest.raises(RuntimeError), integrations.tracking(settings(tmp_path), Lease(row.id, "t", 1)) as tracker:
        tracker.observe(lambda m: None)(step(1))
        raise RuntimeError("training blew up")
    run = finished_run(wandb_env, row.id)
    assert run.exit_code == 1 and [h["_step"] for h in run.history] == [1]


def test_a_job_failed_at_the_gate_ends_its_run_failed(
    tmp_path: Path, wandb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = iter([job("ftjob-unit3"), job("ftjob-unit3", status="failed", evaluation={"hs": 90.0})])
    monkeypatch.setattr(integrations, "_final_job", lambda settings, job_id: next(rows))
    with integrations.tracking(settings(tmp_path), Lease("ftjob-unit3", "t", 1)):
        pass
    run = finished_run(wandb_env, "ftjob-unit3")
    assert run.exit_code == 1 and run.summary["hs"] == 90.0 and run.summary["status"] == "failed"


def test_a_job_without_the_integration_gets_a_tracker_that_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = job("ftjob-unit4", integrations=None)
    monkeypatch.setattr(integrations, "_final_job", lambda settings, job_id: row)
    monkeypatch.setitem(sys.modules, "wandb", None)  # importing it would raise
    on_step = lambda m: None  # noqa: E731
    with integrations.tracking(settings(tmp_path), Lease(row.id, "t", 1)) as tracker:
        assert tracker.observe(on_step) is on_step
    assert not (tmp_path / "home" / "wandb").exists()


class _Broken:
    """A wandb whose run fails on log (a dead internal service, say)."""

    def __init__(self) -> None:
        self.finished: list[int] = []

    def log(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("wandb-core went away; key sk-secret-123")

    def finish(self, exit_code: int = 0) -> None:
        self.finished.append(exit_code)


def test_a_raising_wandb_becomes_one_warning_and_training_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _Broken()
    fake = types.SimpleNamespace(init=lambda **kwargs: run, Settings=lambda **kwargs: kwargs)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    warnings: list[str] = []
    tracker = integrations.WandbTracker(settings(tmp_path, wandb_api_key="sk-secret-123"), job(), warnings.append)
    tracker.start(SPEC)
    seen: list[int] = []
    on_step = tracker.observe(lambda m: seen.append(m.step))
    for n in (1, 2, 3):
        on_step(step(n))
    tracker.finish(job(status="succeeded"), 0)
    assert seen == [1, 2, 3] and run.finished == [1]
    (warning,) = warnings
    assert warning.startswith("W&B logging stopped: ConnectionError") and "job goes on without it" in warning
    assert "sk-secret-123" not in warning


def test_init_that_raises_or_a_missing_library_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def init(**kwargs: Any) -> None:
        raise PermissionError("bad API key")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init, Settings=lambda **kwargs: kwargs))
    warnings: list[str] = []
    tracker = integrations.WandbTracker(settings(tmp_path), job(), warnings.append)
    tracker.start(SPEC)
    tracker.observe(lambda m: None)(step(1))
    tracker.finish(job(), 0)
    monkeypatch.setitem(sys.modules, "wandb", None)
    integrations.WandbTracker(settings(tmp_path), job(), warnings.append).start(SPEC)
    assert len(warnings) == 2 and "bad API key" in warnings[0] and "`wandb` extra" in warnings[1]


def test_an_unreachable_server_gives_up_within_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE")  # the online mode of the setting applies
    dead = f"http://127.0.0.1:{servers.free_port()}"
    cfg = Settings(home=tmp_path, wandb_base_url=dead, wandb_api_key="k" * 40, wandb_timeout_s=3, wandb_mode="online")
    warnings: list[str] = []
    tracker = integrations.WandbTracker(cfg, job("ftjob-unit5"), warnings.append)
    tracker.start(SPEC)
    tracker.observe(lambda m: None)(step(1))
    tracker.finish(job("ftjob-unit5"), 0)
    (warning,) = warnings
    assert warning.startswith("W&B logging stopped") and "k" * 40 not in warning


def test_run_settings_carry_the_provider_server_and_never_the_machine(tmp_path: Path) -> None:
    values = integrations.run_settings(settings(tmp_path, wandb_api_key="key-1", wandb_mode="offline"))
    assert values["base_url"] == "http://127.0.0.1:9" and values["api_key"] == "key-1"
    assert values["x_disable_stats"] and values["disable_git"] and values["save_code"] is False
    import wandb

    wandb.Settings(**values)  # every name is one wandb 0.31 knows


def test_a_requeued_job_continues_the_run_named_after_it() -> None:
    kwargs = integrations.init_kwargs(job("ftjob-unit6", integrations=None), {"project": "p"})
    assert kwargs["id"] == "ftjob-unit6" and kwargs["resume"] == "allow" and kwargs["name"] == "ftjob-unit6"
