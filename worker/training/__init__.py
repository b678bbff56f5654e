"""Antibody LoRA fine-tuning as a pure library: no Celery, no DB, no HTTP.

from worker.training import TrainConfig, train
result = train(TrainConfig(base_model_dir=..., train_file=..., output_dir=...))
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
