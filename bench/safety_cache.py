"""bench/safety.py's store of finished cells, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from finetune_safety_smollm2 import OBJECTIVES, log


class CellCache:
    """Finished cells on disk (``<bases-dir>/cells/<key>.json``), so an interrupted run resumes where it stopped.
    The key hashes the cell, the configuration and the base's alignment manifest, not the judges: a row keeps the
    model's answers, which every run judges afresh, so a new judge re-scores finished cells without retraining
    them. A row read back says ``"cached": true`` (its train_s/eval_s are from the run that computed it)."""

    FORMAT = 2  # rows hold answers, not scores

    def __init__(self, folder: Path, cfg: Any):  # cfg: safety.Config, a dataclass
        self.folder, self.cfg = folder, cfg

    def _path(self, cell: tuple, base_dir: Path) -> Path:
        manifest = hashlib.sha256(Path(base_dir, "alignment_manifest.json").read_bytes()).hexdigest()
        blob = json.dumps([list(cell), dataclasses.asdict(self.cfg), manifest, OBJECTIVES, self.FORMAT], sort_keys=True)
        return self.folder / f"{hashlib.sha256(blob.encode()).hexdigest()[:20]}.json"

    def get(self, cell: tuple, base_dir: Path) -> dict | None:
        path = self._path(cell, base_dir)
        if not path.is_file():
            return None
        row = json.loads(path.read_text()) | {"cached": True}
        log(f"cached: {json.dumps({k: v for k, v in row.items() if k != 'answers'})}")
        return row

    def put(self, cell: tuple, base_dir: Path, row: dict) -> dict:
        path = self._path(cell, base_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".tmp").write_text(json.dumps(row))
        path.with_suffix(".tmp").rename(path)
        return row | {"cached": False}
