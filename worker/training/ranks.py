"""One job on N devices of this machine: the calling process is rank 0 (it keeps the callbacks: progress,
checkpoint uploads, stop requests) and ranks 1..N-1 are child processes that train the same config without
any (``python -m worker.training.ranks CONFIG``). ``distributed.py`` keeps Antibody's softmax global and
``loop.py`` makes rank 0 the only writer; this module only starts and stops the ranks.

Usage: ``with spread(cfg, n): result = train(cfg, on_step=…)``. If rank 0 raises (a lost lease, a failure)
the children are killed; a child also dies with its parent (PR_SET_PDEATHSIG), so a worker killed with -9 leaves
no rank holding a GPU.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path

import torch.distributed as dist

from worker.training.config import TrainConfig
from worker.training.distributed import TIMEOUT, backend

PATH_FIELDS = {f.name for f in fields(TrainConfig) if "Path" in str(f.type)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dump(cfg: TrainConfig, path: Path) -> Path:
    values = {k: (str(v) if k in PATH_FIELDS and v is not None else v) for k, v in asdict(cfg).items()}
    path.write_text(json.dumps(values))
    return path


def load(path: Path) -> TrainConfig:
    values = json.loads(path.read_text())
    values = {k: (Path(v) if k in PATH_FIELDS and v is not None else v) for k, v in values.items()}
    values["target_modules"] = tuple(values["target_modules"])
    return TrainConfig(**values)


@contextmanager
def spread(cfg: TrainConfig, n: int) -> Iterator[None]:
    """Inside the block this process is rank 0 of ``n`` (nothing changes for n = 1)."""
    if n <= 1:
        yield
        return
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    config = dump(cfg, cfg.output_dir / "ranks-config.json")
    port = _free_port()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(n)}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "worker.training.ranks", str(config)],
            env={**env, "RANK": str(k), "LOCAL_RANK": str(k)},
        )
        for k in range(1, n)
    ]
    try:
        dist.init_process_group(
            backend(cfg.device), init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=n, timeout=TIMEOUT
        )
        yield
        for child in children:
            if child.wait(timeout=TIMEOUT.total_seconds()) != 0:
                raise RuntimeError(f"training rank {children.index(child) + 1} exited with {child.returncode}")
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        if dist.is_initialized():
            dist.destroy_process_group()


def _rank_main(config: Path) -> None:
    from worker.training.trainer import train

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with rank 0's process
    try:
        train(load(config))  # joins the group from the environment spread() set (distributed.start)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(Path(sys.argv[1]))
