"""Live processes for end-to-end tests: the API in a uvicorn thread and real `ftaas worker` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import uvicorn
from pydantic import SecretStr

from service.app import create_app
from service.auth.service import create_key
from service.base_models import service as base_models
from service.config import Settings
from service.db import session_scope
from service.storage import ObjectStore
from tests import servers


@dataclass
class LiveAPI:
    backend: str
    base_url: str  # http://127.0.0.1:PORT
    settings: Settings
    store: ObjectStore
    model_dir: Path

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def new_key(self, org: str | None = None, *, admin: bool = False) -> str:
        with session_scope(self.settings.database_url) as session:
            return create_key(session, org or f"org-{uuid.uuid4().hex[:10]}", admin=admin)

    def client(self, key: str | None = None, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(api_key=key or self.new_key(), base_url=self.v1, max_retries=0, **kwargs)

    def register_base(self, name: str, *, aligned: bool = True) -> None:
        """Register ``name`` and offer it: registering alone keeps a retired base retired, and the server is shared
        by every test of a session, so one test's retirement must not refuse the next test's jobs."""
        with session_scope(self.settings.database_url) as session:
            base_models.register(session, self.store, name=name, path=str(self.model_dir), aligned=aligned)
            base_models.reinstate(session, name)


def serve(settings: Settings) -> tuple[str, uvicorn.Server, threading.Thread]:
    """Start the app on a free port in a daemon thread; returns (base URL, server, thread)."""
    return serve_asgi(create_app(settings))


def serve_asgi(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    """Start any ASGI app (the API, the embedded inference server) like ``serve``."""
    port = servers.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


def settings_env(settings: Settings, **overrides: object) -> dict[str, str]:
    """The FTAAS_* environment that makes another process see the same settings."""
    def text(v: object) -> str:
        if isinstance(v, SecretStr):  # str() of one is its mask
            return v.get_secret_value()
        return json.dumps(v) if isinstance(v, dict | list) else str(v)  # pydantic-settings reads complex values as JSON

    env = {f"FTAAS_{k.upper()}": text(v) for k, v in settings.model_dump().items() if v is not None}
    env.update({f"FTAAS_{k.upper()}": text(v) for k, v in overrides.items()})
    return env


class CliProcess:
    """`python -m service.cli ARGS` in its own process group, so a test can SIGKILL all of it."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            env={**os.environ, **env},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()


class WorkerProcess(CliProcess):
    def __init__(self, env: dict[str, str], log: Path) -> None:
        super().__init__(["worker", "--loglevel", "INFO"], env, log)


class ServerProcess(CliProcess):
    """`ftaas serve` on a free port; returns once /healthz answers."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1) -> None:
        port = servers.free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        super().__init__(["serve", "--port", str(port), "--workers", str(workers)], env, log)
        wait_for(self._healthy, 60, f"the API server to start (log: {log})")

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, f"the API server exited (log: {self.log})"
        try:
            return httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
