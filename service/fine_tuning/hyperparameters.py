"""Resolve `"auto"` hyperparameters at create time so the job object always shows what will run."""

from __future__ import annotations

import math

from service.errors import InvalidRequest
from service.fine_tuning.schemas import Hyperparameters, JobCreate

NESTED = "method.supervised.hyperparameters"


def _merge(body: JobCreate) -> tuple[Hyperparameters, dict[str, str]]:
    """The hyperparameters that apply, and where each was set (the `param` an out-of-range value's 400 names)."""
    top = body.hyperparameters or Hyperparameters()
    nested = (body.method.supervised.hyperparameters if body.method and body.method.supervised else None) or (
        Hyperparameters()
    )
    merged, source = {}, {}
    for name in Hyperparameters.model_fields:
        a, b = getattr(top, name), getattr(nested, name)
        if a is not None and b is not None and a != b:
            raise InvalidRequest(
                f"hyperparameters.{name} ({a}) conflicts with {NESTED}.{name} ({b}); "
                f"set it in one place ({NESTED} is preferred).",
                param=f"{NESTED}.{name}",
                code="invalid_value",
            )
        merged[name] = b if b is not None else a
        source[name] = f"{NESTED}.{name}" if b is not None or a is None else f"hyperparameters.{name}"
    return Hyperparameters(**merged), source


def resolve(body: JobCreate, n_examples: int) -> dict[str, int | float]:
    """n_epochs: aim for ~100-25k example visits; batch_size: ~1/64 of the data in [4, 16]; lr multiplier 1."""
    hp, param = _merge(body)
    n = max(1, n_examples)
    n_epochs = hp.n_epochs
    if n_epochs in (None, "auto"):
        n_epochs = min(25, max(1, 3, math.ceil(100 / n))) if n * 3 < 25_000 else max(1, 25_000 // n)
    batch_size = hp.batch_size
    if batch_size in (None, "auto"):
        batch_size = min(16, max(4, n // 64))
    lr_mult = hp.learning_rate_multiplier
    if lr_mult in (None, "auto"):
        lr_mult = 1.0
    if not isinstance(n_epochs, int) or not 1 <= n_epochs <= 50:
        raise InvalidRequest("n_epochs must be an integer between 1 and 50.", param=param["n_epochs"])
    if not isinstance(batch_size, int) or not 2 <= batch_size <= 256:
        # Antibody weighs each sample against the rest of its batch (a softmax); a batch of one gets weight 1.
        raise InvalidRequest(
            "batch_size must be between 2 and 256: Antibody's safety weighting compares samples within a batch.",
            param=param["batch_size"],
        )
    # The floor keeps out subnormals such as 1e-320 (a learning rate that trains nothing); NaN fails every test.
    if not 1e-6 <= float(lr_mult) <= 10:
        raise InvalidRequest(
            "learning_rate_multiplier must be between 0.000001 and 10.", param=param["learning_rate_multiplier"]
        )
    return {"batch_size": batch_size, "learning_rate_multiplier": float(lr_mult), "n_epochs": n_epochs}
