"""Antibody LoRA fine-tuning as a pure library: no Celery, no DB, no HTTP.

from worker.training import TrainConfig, train
result = train(TrainConfig(base_model_dir=..., train_file=..., output_dir=...))

Modules: ``trainer`` (fine-tuning, stage 2) and ``alignment`` (stage 1, + ``alignment_config``) each supply a
step and its state to ``loop`` (resume, stop/pause, checkpoints via ``checkpoint``, final adapter); the steps are
``fine_tuning_step`` (on ``antibody``'s weighting) and ``alignment_step``; ``data``, ``model``, ``passes``,
``refusals``, ``config`` and ``memory_meter`` are the shared parts, ``cli`` the command line. ``packing`` +
``packed_passes`` (padding-free batches) and ``chunked_ce`` (no full-vocabulary logits) are opt-in speed-ups
(``TrainConfig.packing``, ``loss_chunk_tokens``) that train the same adapter. ``distributed`` (a global
softmax over ranks) and ``ranks`` (rank 0 in this process, the others as children) spread one job over several
devices.
"""

from worker.training.config import StepMetrics, StopRequested, TrainConfig, TrainResult
from worker.training.data import estimate
from worker.training.refusals import DEFAULT_REFUSALS
from worker.training.trainer import train

__all__ = [
    "DEFAULT_REFUSALS",
    "StepMetrics",
    "StopRequested",
    "TrainConfig",
    "TrainResult",
    "estimate",
    "train",
]
