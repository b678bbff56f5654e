"""Fine-tuning (Antibody's stage 2): a plain PyTorch loop, readable top to bottom.

load data → build model + LoRA → ``loop.run_loop``: (resume) → for each step: stop? → batch → Antibody step
(``fine_tuning_step.py``) → optimizer → log → validate → checkpoint → final adapter + attenuation report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import worker.training.distributed as distributed
import worker.training.memory_plan as memory_plan
from worker.training.antibody import weight_stats, weighted_nll
from worker.training.config import StepMetrics, TrainConfig, TrainResult
from worker.training.data import (
    Batch,
    ChatEncoder,
    ChatExample,
    collate,
    encode_file,
    epoch_order,
    load_tokenizer,
    pad_id_of,
    steps_per_epoch,
)
from worker.training.fine_tuning_step import Attenuation, StepStats, antibody_backward
from worker.training.frozen_ratio import frozen_ratios
from worker.training.loop import LoopSpec, OnCheckpoint, ShouldStop, checkpoint_due, run_loop
from worker.training.model import load_base_model, pick_device, pick_dtype, trainable_lora
from worker.training.packing import PackedBatch, pack
from worker.training.refusals import resolve_refusals
from worker.training.validation import evaluate

OnStep = Callable[[StepMetrics], None]


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Linear warmup over ``warmup_ratio`` of the steps, then linear/cosine decay (not to zero) or
    constant."""
    warmup = round(cfg.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        if cfg.lr_scheduler == "linear":
            return 1.0 - progress
        if cfg.lr_scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def _fingerprint(cfg: TrainConfig) -> str:
    """What must not change between a run and its resume (same data, same batches, same objective, same
    starting adapter)."""
    digest = hashlib.sha256(Path(cfg.train_file).read_bytes())
    if cfg.safety_mix_file is not None:
        digest.update(Path(cfg.safety_mix_file).read_bytes())
    if cfg.init_adapter_dir is not None:
        for path in sorted(p for p in Path(cfg.init_adapter_dir).rglob("*") if p.is_file()):
            digest.update(path.relative_to(cfg.init_adapter_dir).as_posix().encode() + path.read_bytes())
    for value in (
        cfg.batch_size,
        cfg.micro_batch_size,
        cfg.seed,
        cfg.n_epochs,
        cfg.max_seq_len,
        cfg.lora_rank,
        cfg.tau,
        cfg.ratio,
        cfg.ratio_model,
        cfg.refusal_reference,
        tuple(cfg.target_modules),
        tuple(cfg.refusals or ()),
    ):
        digest.update(repr(value).encode())
    return digest.hexdigest()


@dataclass
class FineTuneRun:
    """The fine-tuning side of ``loop.Run``: batches by seeded epoch order, the Antibody step, optimizer and
    scheduler, validation, and the state a resume needs (tokens seen, metrics rows, attenuation)."""

    cfg: TrainConfig
    model: nn.Module
    params: Sequence[nn.Parameter]
    optimizer: torch.optim.Optimizer
    examples: list[ChatExample]
    valid: list[ChatExample]
    pad_id: int
    device: torch.device
    trained_tokens: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    attenuation: Attenuation = field(default_factory=Attenuation)
    _order: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.batch_size = min(self.cfg.batch_size, len(self.examples))
        self.micro = min(self.cfg.micro_batch_size or self.batch_size, self.batch_size)
        self.per_epoch = steps_per_epoch(len(self.examples), self.batch_size)
        self.total_steps = self.cfg.n_epochs * self.per_epoch
        # HF drops the cache when checkpointing activations, so the prefix-KV pass has no cache to reuse there.
        self.refusal_pass = "naive" if self.cfg.gradient_checkpointing else self.cfg.refusal_pass
        self.scheduler = make_scheduler(self.optimizer, self.cfg, self.total_steps)
        self.fixed_r = self._fixed_ratios()

    def _fixed_ratios(self) -> dict[int, float] | None:
        """r by line when no step rescores it: 0 for every line (plain SFT), or from the frozen aligned base
        (recomputed on resume: the base does not change, so neither does r). None: the current model scores it."""
        if self.cfg.ratio_model == "none":
            return dict.fromkeys((e.line for e in self.examples), 0.0)
        if self.cfg.ratio_model == "current":
            return None
        encoder = ChatEncoder(load_tokenizer(Path(self.cfg.base_model_dir)))
        refusals = [encoder.refusal_ids(r) for r in resolve_refusals(self.cfg.refusals)]
        return frozen_ratios(
            self.model,
            self.examples,
            refusals,
            self.cfg.ratio,
            self.cfg.refusal_reference,
            self.micro,
            self.pad_id,
            self.device,
        )

    def state(self) -> dict[str, Any]:
        return {"trained_tokens": self.trained_tokens, "metrics": self.metrics, "attenuation": self.attenuation.rows}

    def restore(self, state: dict[str, Any]) -> None:
        self.trained_tokens, self.metrics = state["trained_tokens"], state["metrics"]
        self.attenuation = Attenuation(state["attenuation"])

    def step(self, step: int) -> StepMetrics:
        cfg = self.cfg
        epoch, index = divmod(step, self.per_epoch)
        if index == 0 or not self._order:
            self._order = epoch_order(len(self.examples), self.batch_size, cfg.seed, epoch)
        chosen = [self.examples[i] for i in self._order[index]]
        rank, ranks = distributed.world()
        mine = distributed.share(chosen, rank, ranks)  # the whole batch on one process
        micro_batches = [self._batch(mine[i : i + self.micro]) for i in range(0, len(mine), self.micro)]
        self.optimizer.zero_grad(set_to_none=True)
        stats = antibody_backward(self.model, micro_batches, cfg.tau, cfg.ratio, self.refusal_pass,
                                  cfg.loss_chunk_tokens, self.fixed_r, data_parallel=ranks > 1)  # fmt: skip
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.trained_tokens += sum(e.n_tokens for e in chosen if not e.provider)
        self.attenuation.add(stats)
        row = self._row(step + 1, epoch + 1, lr, stats)
        self.metrics.append(row.row())
        return row

    def _batch(self, examples: list[ChatExample]) -> Batch | PackedBatch:
        if self.cfg.packing:
            naive = self.refusal_pass == "naive"
            return pack(examples, self.pad_id, naive, self.cfg.packing_row_tokens).to(self.device)
        return collate(examples, self.pad_id).to(self.device)

    def _row(self, step: int, epoch: int, lr: float, stats: StepStats) -> StepMetrics:
        """The metrics of (1-based) ``step``, with the validation scores when they are due."""
        n = stats.n_tokens.sum().item()
        row = StepMetrics(
            step=step,
            total_steps=self.total_steps,
            epoch=epoch,
            train_loss=weighted_nll(stats.nll_sum, stats.n_tokens, stats.weights).item(),
            train_loss_unweighted=stats.nll_sum.sum().item() / n if n else float("nan"),
            train_mean_token_accuracy=stats.n_correct.sum().item() / n if n else float("nan"),
            learning_rate=lr,
            trained_tokens=self.trained_tokens,
            **weight_stats(stats.weights, stats.r),
        )
        every = self.cfg.eval_every
        eval_due = (step % every == 0) if every > 0 else checkpoint_due(step, self.cfg.checkpoint_every)
        if self.valid and (eval_due or step == self.total_steps):
            scores = evaluate(
                self.model,
                self.valid,
                self.micro,
                self.pad_id,
                self.device,
                self.cfg.packing,
                self.cfg.packing_row_tokens,
            )
            row.valid_loss = scores["valid_loss"]
            row.valid_mean_token_accuracy = scores["valid_mean_token_accuracy"]
        return row


def _load_examples(cfg: TrainConfig) -> tuple[list[ChatExample], list[ChatExample], int]:
    """(training examples with the safety mix after the customer's, validation examples, pad id), encoded with
    the base model's tokenizer."""
    refusals = resolve_refusals(cfg.refusals)
    tokenizer = load_tokenizer(Path(cfg.base_model_dir))
    examples = encode_file(Path(cfg.train_file), tokenizer, cfg.max_seq_len, refusals)
    if not examples:
        raise ValueError(f"{cfg.train_file}: no training examples")
    if cfg.safety_mix_file is not None:
        after = examples[-1].line + 1
        examples += encode_file(Path(cfg.safety_mix_file), tokenizer, cfg.max_seq_len, refusals, after, provider=True)
    valid = []
    if cfg.validation_file:
        valid = encode_file(Path(cfg.validation_file), tokenizer, cfg.max_seq_len, refusals)
        valid = valid[: cfg.max_valid_examples]
    return examples, valid, pad_id_of(tokenizer)


def train(
    cfg: TrainConfig,
    on_step: OnStep | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    should_stop: ShouldStop | None = None,
) -> TrainResult:
    """Fine-tune a LoRA on ``cfg.base_model_dir`` with Antibody's weighted objective (always on): a fresh one, or
    the adapter in ``cfg.init_adapter_dir`` trained further (the weights Antibody scores with are the ones being
    trained either way)."""
    device = distributed.start(cfg.device)  # under torchrun: this rank's share of every batch (distributed.py)
    dtype = pick_dtype(cfg.dtype, device)
    torch.manual_seed(cfg.seed)  # the same on every rank: the replicas start identical
    examples, valid, pad_id = _load_examples(cfg)
    ranks = distributed.world()[1]
    if min(cfg.batch_size, len(examples)) < ranks:
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the {ranks} ranks it is spread over")
    cfg = dataclasses.replace(cfg, gradient_checkpointing=memory_plan.choose(cfg, examples, ranks, device, dtype))
    model, params, optimizer = trainable_lora(
        Path(cfg.base_model_dir),
        device,
        dtype,
        rank=cfg.lora_rank,
        alpha=cfg.lora_alpha,
        dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        learning_rate=cfg.base_learning_rate * cfg.learning_rate_multiplier,
        weight_decay=cfg.weight_decay,
        gradient_checkpointing=cfg.gradient_checkpointing,
        init_adapter_dir=cfg.init_adapter_dir,
    )
    run = FineTuneRun(cfg, model, params, optimizer, examples, valid, pad_id, device)
    output_dir = Path(cfg.output_dir)
    spec = LoopSpec(
        model,
        optimizer,
        run.scheduler,
        output_dir,
        run.total_steps,
        _fingerprint(cfg),
        cfg.checkpoint_every,
        cfg.keep_checkpoints,
    )
    done = run_loop(
        spec, run, resume_from=cfg.resume_from, on_step=on_step, on_checkpoint=on_checkpoint, should_stop=should_stop
    )
    provider_lines = {e.line for e in examples if e.provider}
    attenuation = [row for row in run.attenuation.report() if row["line"] not in provider_lines]
    report = None
    if done.adapter_dir is not None:
        report = output_dir / "attenuation.json"
        if distributed.leads():
            report.write_text(json.dumps(attenuation, indent=1))
    return TrainResult(
        adapter_dir=done.adapter_dir,
        steps=done.steps,
        total_steps=run.total_steps,
        trained_tokens=run.trained_tokens,
        metrics=run.metrics,
        attenuation=attenuation,
        truncated_examples=sum(e.truncated for e in examples if not e.provider),
        stopped=done.stopped,
        last_checkpoint=done.last_checkpoint,
        attenuation_file=report,
    )


def load_adapter_model(base_model_dir: Path, adapter_dir: Path, device: str | None = None) -> Any:
    """The base model with a trained adapter applied (evaluation and tests)."""
    from peft import PeftModel

    dev = pick_device(device)
    base = load_base_model(Path(base_model_dir), dev, pick_dtype("auto", dev))
    return PeftModel.from_pretrained(base, adapter_dir).eval()
