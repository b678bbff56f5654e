"""The embedded inference engine: one base model, an LRU of LoRA adapters, a bounded queue and static batching.

Batching: the model thread takes the oldest waiting request, then keeps taking requests for ``batch_window_s``
(or until ``max_batch`` rows) and decodes them together, adapters mixed (``decode``). We chose static batches
over continuous batching because a batch of HF transformers with a dynamic KV cache cannot admit rows mid-flight
without re-padding the cache; on CPU the window costs a few milliseconds against seconds of decoding, and on a
GPU a provider runs vLLM (continuous batching) behind the same protocol instead.

Saturation: ``submit`` raises ``Saturated`` when ``max_queue`` requests already wait, so the server answers 503
with ``retry-after`` at once instead of queueing without bound.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from worker.evaluation.generation import render_prompt, stop_ids
from worker.inference.adapters import AdapterPool
from worker.inference.decode import BASE_ADAPTER, Row, decode
from worker.training.model import load_base_model, pick_device, pick_dtype


class Saturated(RuntimeError):
    """The queue is full; retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"inference queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class UnknownAdapter(KeyError):
    pass


@dataclass
class Request:
    """A chat completion: ``n`` choices of up to ``max_tokens`` new tokens each. ``on_text(index, delta)``
    streams choice ``index``."""

    prompt_ids: list[int]
    max_tokens: int
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = ()
    adapter: str = BASE_ADAPTER
    on_text: Callable[[int, str], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    future: Future = field(default_factory=Future)
    enqueued_at: float = field(default_factory=time.monotonic)

    def rows(self) -> list[Row]:
        def sink(i: int) -> Callable[[str], None] | None:
            return None if self.on_text is None else (lambda delta: self.on_text(i, delta))  # type: ignore[misc]

        return [
            Row(self.prompt_ids, self.max_tokens, self.temperature, self.top_p,
                None if self.seed is None else self.seed + i, self.stop, self.adapter, sink(i), self.cancelled.is_set)
            for i in range(self.n)
        ]


@dataclass
class Result:
    choices: list[Row]
    prompt_tokens: int
    completion_tokens: int
    queued_s: float
    batch_rows: int


class Engine:
    def __init__(self, model_dir: Path, max_adapters: int = 4, max_batch: int = 16, max_queue: int = 64,
                 batch_window_s: float = 0.01, device: str | None = None, dtype: str = "auto"):
        from transformers import AutoTokenizer

        dev = pick_device(device)
        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        base = load_base_model(self.model_dir, dev, pick_dtype(dtype, dev)).eval()
        self.context = int(getattr(base.config, "max_position_embeddings", 2048))
        self.eos_ids = stop_ids(self.tokenizer, base)
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(self.eos_ids)
        self.pool = AdapterPool(base, max_adapters)
        self.max_batch, self.batch_window_s = max_batch, batch_window_s
        self._queue: queue.Queue[Request] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()  # the model: one batch or one adapter load at a time
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.stats = {"requests": 0, "batches": 0, "rows": 0, "completion_tokens": 0}

    # -- adapters ---------------------------------------------------------------------------------------------
    def load_adapter(self, name: str, path: Path) -> bool:
        with self._lock:
            return self.pool.load(name, path)

    def unload_adapter(self, name: str) -> bool:
        with self._lock:
            return self.pool.unload(name)

    def adapters(self) -> list[dict[str, Any]]:
        return self.pool.info()

    # -- requests ---------------------------------------------------------------------------------------------
    def render(self, messages: list[dict[str, Any]]) -> list[int]:
        return render_prompt(self.tokenizer, messages)

    def submit(self, request: Request) -> Future:
        if request.adapter != BASE_ADAPTER and request.adapter not in self.pool:
            raise UnknownAdapter(request.adapter)
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise Saturated(retry_after_s=max(1, round(self.batch_window_s + 1))) from None
        return request.future

    def queue_depth(self) -> int:
        return self._queue.qsize()

    # -- the model thread -------------------------------------------------------------------------------------
    def start(self) -> Engine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="inference-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _take_batch(self) -> list[Request]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch, rows = [first], first.n
        deadline = time.monotonic() + self.batch_window_s
        while rows < self.max_batch:
            try:
                nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            batch.append(nxt)
            rows += nxt.n
        return [r for r in batch if not r.cancelled.is_set() and r.future.set_running_or_notify_cancel()]

    def _loop(self) -> None:
        while not self._stopping.is_set():
            batch = self._take_batch()
            if batch:
                self._run(batch)

    def _run(self, batch: list[Request]) -> None:
        started = time.monotonic()
        with self._lock:
            ready = []
            for req in batch:
                if req.adapter == BASE_ADAPTER or req.adapter in self.pool:
                    if req.adapter != BASE_ADAPTER:
                        self.pool.touch(req.adapter)
                    ready.append(req)
                else:  # evicted while it waited
                    req.future.set_exception(UnknownAdapter(req.adapter))
            rows = {id(req): req.rows() for req in ready}
            flat = [row for req in ready for row in rows[id(req)]]
            try:
                decode(self.pool.model, self.tokenizer, flat, self.eos_ids, self.pad_id)
            except Exception as exc:  # one bad batch must not kill the model thread
                for req in ready:
                    req.future.set_exception(exc)
                return
        self.stats["batches"] += 1
        self.stats["rows"] += len(flat)
        for req in ready:
            choices = rows[id(req)]
            completion = sum(len(c.tokens) for c in choices)
            self.stats["requests"] += 1
            self.stats["completion_tokens"] += completion
            req.future.set_result(Result(choices, len(req.prompt_ids), completion, started - req.enqueued_at,
                                         len(flat)))


def torch_threads(n: int | None) -> None:
    """Intra-op threads for the model thread (the server's event loop needs a core of its own on small hosts)."""
    if n:
        torch.set_num_threads(n)
