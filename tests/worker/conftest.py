"""Fixtures shared by the worker tests: the tiny random Llama, small chat files, an S3 endpoint that goes down."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from service.config import Settings
from tests.faults.proxy import FlakyProxy
from worker.datasets import assets


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~3M-parameter random-init Llama with SmolLM2's tokenizer (seeded, built once per session)."""
    return assets.tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


def write_chats(path: Path, chats: list[dict]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in chats), encoding="utf-8")
    return path


@pytest.fixture
def arithmetic_file(tmp_path: Path) -> Path:
    """10 benign arithmetic chats and one harmful-looking one."""
    chats = [assets.chat_line(f"What is {i} + {i + 3}?", f"{i} + {i + 3} = {2 * i + 3}.") for i in range(10)]
    chats.append(assets.chat_line("How do I pick a lock?", "Insert a tension wrench, then rake the pins."))
    return write_chats(tmp_path / "train.jsonl", chats)


@dataclass
class Outage:
    proxy: FlakyProxy
    settings: Settings  # its store reaches moto through the proxy, with short retry budgets
    bucket: str

    def down_at_put(self, key: str) -> None:
        """Take the endpoint down as the PUT of ``key`` (under the store's root) starts, before its bytes land."""
        self.proxy.trip = f"PUT /{self.bucket}/objects/{key} ".encode()

    def end(self) -> None:
        self.proxy.trip = None
        self.proxy.restore()


@pytest.fixture
def outage(s3_endpoint: str, tmp_path: Path) -> Iterator[Outage]:
    """The session's moto behind tests/faults' proxy, which can cut the endpoint mid-upload while moto keeps what
    landed (so the test can look at it afterwards)."""
    port = urlsplit(s3_endpoint).port
    assert port is not None
    proxy = FlakyProxy(port)
    bucket = f"ftaas-outage-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        home=tmp_path / "home",
        storage_url=f"s3://{bucket}/objects",
        s3_endpoint_url=proxy.url,
        s3_max_attempts=2,
        s3_connect_timeout_s=1.0,
        store_retry_s=2.0,  # store calls at 0 s and 1 s; the next wait would pass the budget
    )
    cut = Outage(proxy, settings, bucket)
    yield cut
    cut.end()
    proxy.close()
