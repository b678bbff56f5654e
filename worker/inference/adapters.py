"""Several LoRA adapters on one base model in memory, least recently used first out.

The base weights are loaded once and shared; each adapter adds only its LoRA matrices. The model is wrapped in
PEFT on the first load; an eviction loads the newcomer before it deletes the oldest, because PEFT cannot hold a
wrapper with no adapter at all. Not thread-safe on its own: the engine calls it from its one model thread.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from torch import nn


class AdapterError(ValueError):
    """The adapter folder is missing, unreadable or does not fit the base model."""


class AdapterPool:
    def __init__(self, base: nn.Module, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.model: nn.Module = base
        self.capacity = capacity
        self._loaded: OrderedDict[str, dict[str, Any]] = OrderedDict()  # name → {path, loaded_at, uses}

    def names(self) -> list[str]:
        return list(self._loaded)

    def info(self) -> list[dict[str, Any]]:
        return [{"name": n, **meta} for n, meta in self._loaded.items()]

    def __contains__(self, name: str) -> bool:
        return name in self._loaded

    def touch(self, name: str) -> None:
        self._loaded.move_to_end(name)
        self._loaded[name]["uses"] += 1

    def load(self, name: str, path: Path) -> bool:
        """Load ``path`` as ``name`` (False if it is already loaded); evicts the least recently used beyond
        ``capacity``."""
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return False
        if not (Path(path) / "adapter_config.json").is_file():
            raise AdapterError(f"{path} holds no adapter_config.json")
        try:
            if hasattr(self.model, "peft_config"):
                self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            else:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name, is_trainable=False)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise AdapterError(f"cannot load adapter {name!r}: {exc}") from exc
        self.model.eval()
        self._loaded[name] = {"path": str(path), "loaded_at": time.time(), "uses": 0}
        while len(self._loaded) > self.capacity:
            self._loaded.popitem(last=False)
        self._prune()
        return True

    def unload(self, name: str) -> bool:
        """Drop ``name``; False if it was not loaded. The last adapter stays in PEFT's wrapper but is forgotten
        here, so it is never served and the next load replaces it."""
        if name not in self._loaded:
            return False
        del self._loaded[name]
        self._prune()
        return True

    def _prune(self) -> None:
        """Delete from PEFT every adapter this pool no longer lists, except a last one PEFT must keep."""
        stale = [n for n in getattr(self.model, "peft_config", {}) if n not in self._loaded]
        for n in stale[: len(stale) if self._loaded else len(stale) - 1]:
            self.model.delete_adapter(n)
