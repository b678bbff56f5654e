"""Read back what `wandb` (0.31) writes in offline mode: `<dir>/wandb/offline-run-<time>-<run id>/run-<id>.wandb`,
a LevelDB-style log of `wandb_internal_pb2.Record`s (the library no longer ships a Python reader, and offline mode
writes no wandb-summary.json). Blocks of 32 KiB; the file starts with a 7-byte header (":W&B", magic, version);
each chunk has a 7-byte header (crc32, length, type) and a record may span blocks (first/middle/last chunks).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7
FULL, LAST = 1, 4


def run_dirs(root: Path, run_id: str) -> list[Path]:
    """The offline run folders of `run_id` under WANDB_DIR `root`, oldest first (a resumed job adds one)."""
    return sorted((root / "wandb").glob(f"offline-run-*-{run_id}"))


def _records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # a block's tail too short for a chunk header is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:
            pos += room
            continue
        pending += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _items(items: Any) -> dict[str, Any]:
    return {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in items}


@dataclass
class OfflineRun:
    run: dict[str, Any] = field(default_factory=dict)  # run id, project, name, entity, tags, config
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per logged step
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


def read(run_dir: Path) -> OfflineRun:
    (log,) = run_dir.glob("run-*.wandb")
    out = OfflineRun()
    for record in _records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            config = {k: v for k, v in _items(r.config.update).items() if k != "_wandb"}
            out.run = {
                "id": r.run_id,
                "project": r.project,
                "entity": r.entity,
                "name": r.display_name,
                "tags": list(r.tags),
                "config": config,
            }
        elif kind == "history":
            out.history.append(_items(record.history.item))
        elif kind == "summary":
            out.summary.update(_items(record.summary.update))
        elif kind == "exit":
            out.exit_code = record.exit.exit_code
    return out


def finished_run(root: Path, run_id: str, timeout: float = 60.0) -> OfflineRun:
    """The newest offline run of `run_id` once its exit record is on disk: wandb's service writes the log after
    `run.finish()` returns, so a read right after it can find only the file header."""
    deadline = time.monotonic() + timeout
    while True:
        dirs = run_dirs(root, run_id)
        run = read(dirs[-1]) if dirs and list(dirs[-1].glob("run-*.wandb")) else None
        if run is not None and run.exit_code is not None:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"no finished W&B run {run_id} under {root} after {timeout} s: {dirs}")
        time.sleep(0.1)
