"""Shared pieces of the fault suites: a live API on chosen servers, named worker processes, and how a suite
publishes its figures (one JSON line on stdout; ``FTAAS_FAULTS_SAVE=1`` also writes bench/results/)."""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.migrate import upgrade
from service.storage import S3ObjectStore
from tests.live import CliProcess, LiveAPI, serve, settings_env
from tests.worker.fine_tuning.test_runner import BASE, chats

ROOT = Path(__file__).resolve().parents[2]
# Small jobs on the ~3M-parameter random Llama: a step takes well under a second on a CPU core
FAST = dict(
    # 4 s, not 2: on a loaded 2-core machine a survivor's 1 s heartbeat once ran more than 2 s late and it lost its
    # lease too (a second "Worker lost" in one kill trial)
    lease_seconds=4.0,
    checkpoint_every=2,
    metrics_every=1,
    max_seq_len=32,
    eval_harmful_prompts=4,
    eval_max_new_tokens=8,
    eval_fa_max=4,
    janitor_interval_s=0,  # its start-up pass would race the bucket's creation and log a NoSuchBucket
)


def publish(name: str, figures: dict[str, Any]) -> None:
    """The suite's figures: one JSON line on stdout (`pytest -s`), and bench/results/faults-<name>-cpu.json when
    FTAAS_FAULTS_SAVE=1 (what the README's reliability section quotes)."""
    line = json.dumps({"suite": f"faults-{name}", **figures}, sort_keys=True)
    sys.stdout.write(line + "\n")
    if os.environ.get("FTAAS_FAULTS_SAVE") == "1":
        (ROOT / "bench" / "results" / f"faults-{name}-cpu.json").write_text(
            json.dumps({"suite": f"faults-{name}", **figures}, indent=2, sort_keys=True) + "\n"
        )


class NamedWorker(CliProcess):
    """`ftaas worker --name NAME`, so a test knows which process holds a job (jobs carry host:NAME@host)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.name = f"fault-{uuid.uuid4().hex[:6]}"
        self.worker_id = f"{socket.gethostname()}:{self.name}@{socket.gethostname()}"
        super().__init__(["worker", "--loglevel", "INFO", "--name", self.name], env, logs / f"{self.name}.log")


@dataclass
class FaultStack:
    api: LiveAPI
    env: dict[str, str]
    logs: Path
    stop_api: Callable[[], None]
    workers: list[NamedWorker] = field(default_factory=list)

    def worker(self, **env: str) -> NamedWorker:
        w = NamedWorker({**self.env, **env}, self.logs)
        self.workers.append(w)
        return w

    def job(self, client: openai.OpenAI, n: int = 16, epochs: int = 3, batch: int = 4) -> Any:
        f = client.files.create(file=("train.jsonl", chats(n)), purpose="fine-tune")
        hp = {"n_epochs": epochs, "batch_size": batch}
        method = {"type": "supervised", "supervised": {"hyperparameters": hp}}
        return client.fine_tuning.jobs.create(model=BASE, training_file=f.id, suffix="fault", method=method)

    def row(self, job_id: str) -> Any:
        with session_scope(self.api.settings.database_url) as session:
            return jobs.get_one(session, job_id)

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("*.log")))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from worker.datasets.assets import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("faults-tiny"))


@pytest.fixture
def make_stack(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., FaultStack]]:
    """Build a live API on the given settings (servers chosen by the test); workers and API stop at the end."""
    made: list[FaultStack] = []

    def make(**values: Any) -> FaultStack:
        settings = Settings(home=tmp_path_factory.mktemp("faults-home"), **{**FAST, **values})
        upgrade(settings.database_url)
        base_url, server, thread = serve(settings)
        store = server.config.app.state.store
        if isinstance(store, S3ObjectStore):
            store.ensure_bucket()

        def stop_api() -> None:
            server.should_exit = True
            thread.join(10)

        api = LiveAPI("faults", base_url, settings, store, tiny_base)
        api.register_base(BASE)
        env = settings_env(settings, home=settings.home)
        stack = FaultStack(api, env, tmp_path_factory.mktemp("faults-logs"), stop_api)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        for w in stack.workers:
            if w.proc.poll() is None:
                w.kill9()  # nothing left to finish, and a warm shutdown costs seconds a worker
        stack.stop_api()
