from pathlib import Path

import pytest

from tests.worker.training.samples import lora_model, make_examples
from worker.training.validation import evaluate


@pytest.mark.parametrize("row_tokens", [None, 96])
def test_packed_validation_scores_what_the_padded_one_does(tiny_model: Path, row_tokens: int | None) -> None:
    model = lora_model(tiny_model)
    examples = make_examples([(5, 30, 3), (12, 4, 2), (3, 9, 4), (20, 25, 3), (7, 2, 2)])
    padded = evaluate(model, examples, 4, 0, "cpu")
    packed = evaluate(model, examples, 4, 0, "cpu", packing=True, row_tokens=row_tokens)
    assert packed["valid_loss"] == pytest.approx(padded["valid_loss"], abs=1e-5)
    assert packed["valid_mean_token_accuracy"] == pytest.approx(padded["valid_mean_token_accuracy"], abs=1e-9)
    assert model.training  # evaluation leaves the model as it found it
