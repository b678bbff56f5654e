from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worker.datasets import assets
from worker.evaluation.accuracy import (
    choose_mode,
    evaluate_accuracy,
    extract,
    final_number,
    find_label,
    holdout_indices,
    is_correct,
    normalise_answer,
    score_predictions,
    split_chat,
    valid_metrics,
)
from worker.evaluation.generation import generate
from worker.training.data import ChatEncoder


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Natalia sold 48/2 = 24 clips in May.\n48+24 = 72\n#### 72", "72"),
        ("He pays 3 * 12 = 36 dollars.\n#### 1,234", "1,234"),
        ("#### 5 apples, not 7", "5"),
        ("The final answer is: 42. I double-checked with 6 * 7.", "42"),
        ("So the final answer is -3.5", "-3.5"),
        ("First 3, then 10, so she has 13 left.", "13"),
        ("5-3", "3"),  # a minus between digits is subtraction, not a sign
        ("The temperature dropped to -4 degrees.", "-4"),
        ("It costs $1,000.50 in total.", "1,000.50"),
        ("no digits here", None),
        ("I got 9, then 4 ####", "4"),  # nothing after the marker: the last number
    ],
)
def test_final_number(text: str, number: str | None) -> None:
    assert final_number(text) == number


def test_number_mode_compares_values() -> None:
    assert is_correct("so #### 1,000", "1000.0", "number")
    assert is_correct("The final answer is 72.", "Natalia ... 48+24 = 72\n#### 72", "number")
    assert not is_correct("The final answer is 71.", "#### 72", "number")
    assert not is_correct("I don't know", "#### 72", "number")


def test_label_extraction() -> None:
    labels = ["positive", "negative"]
    assert find_label("The sentiment is Positive.", labels) == "positive"
    assert find_label("negative, not positive", labels) == "negative"  # the first one mentioned wins
    assert find_label("It was negatively received", labels) is None  # whole words only
    assert find_label("Sci/Tech", ["World", "Sports", "Business", "Sci/Tech"]) == "Sci/Tech"
    assert find_label("very positive", ["positive", "very positive"]) == "very positive"
    assert is_correct("Answer: negative", "negative", "label", labels)
    assert not is_correct("Answer: unclear", "negative", "label", labels)


def test_exact_mode_normalises_case_punctuation_and_space() -> None:
    assert normalise_answer("  The  Capital:\nPARIS! ") == "the capital paris"
    assert is_correct("Paris.", "paris", "exact")
    assert is_correct("It\u2019s  fine", "it's fine", "exact")
    assert not is_correct("The capital is Paris", "Paris", "exact")
    assert extract("Paris!", "exact") == "paris"
    with pytest.raises(ValueError):
        extract("x", "regex")  # type: ignore[arg-type]


def test_choose_mode() -> None:
    gsm = ["She has 3 + 4 = 7\n#### 7", "#### 12", "The final answer is 5", "18"]
    assert choose_mode(gsm) == "number"
    assert choose_mode(["positive", "negative", "negative", "positive", "positive", "negative"]) == "label"
    assert choose_mode(["World", "Sports", "Business", "Sci/Tech", "World", "Sports", "World", "Business"]) == "label"
    free = ["The capital of France is Paris.", "Water boils at 100 degrees at sea level.", "Use a bigger pan."]
    assert choose_mode(free) == "exact"
    assert choose_mode(["a", "b", "c"]) == "exact"  # short but never repeated: not a label set
    assert choose_mode([]) == "exact"


def test_fa_arithmetic_and_override() -> None:
    refs = ["#### 7", "#### 12", "#### 5", "#### 18"]
    preds = ["so 7", "The final answer is 12.", "I think 6", "#### 18"]
    fa = score_predictions(preds, refs)
    assert (fa.mode, fa.mode_source, fa.n_correct, fa.n, fa.accuracy) == ("number", "auto", 3, 4, 75.0)
    assert [r.correct for r in fa.records] == [True, True, False, True]
    assert [r.extracted for r in fa.records] == ["7", "12", "6", "18"]
    exact = score_predictions(preds, refs, mode="exact")
    assert (exact.mode_source, exact.n_correct, exact.accuracy) == ("override", 1, 25.0)
    labels = score_predictions(["positive!", "Negative", "meh"], ["positive", "negative", "positive"], "label")
    assert labels.labels == ["negative", "positive"] and labels.n_correct == 2
    assert score_predictions([], []).accuracy == 0.0
    with pytest.raises(ValueError):
        score_predictions(["a"], [])
    with pytest.raises(ValueError):
        score_predictions(["a"], ["a"], mode="fuzzy")  # type: ignore[arg-type]


def test_split_chat_takes_the_last_assistant_message() -> None:
    chat = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]
    prompt, ref = split_chat(chat)
    assert ref == "a2" and [m["content"] for m in prompt] == ["s", "q1", "a1", "q2"]
    with pytest.raises(ValueError):
        split_chat([{"role": "user", "content": "q"}])


def test_holdout_indices() -> None:
    idx = holdout_indices(100, fraction=0.1, seed=3)
    assert idx == holdout_indices(100, fraction=0.1, seed=3) and len(idx) == 10 and idx == sorted(idx)
    assert len(set(idx)) == 10 and all(0 <= i < 100 for i in idx)
    assert len(holdout_indices(5000, fraction=0.1, max_n=200)) == 200
    assert len(holdout_indices(3, fraction=0.1)) == 1
    assert holdout_indices(1) == []


CHATS = [
    assets.chat_line(f"What is {i} + {i + 3}?", f"{i} + {i + 3} = {2 * i + 3}.\n#### {2 * i + 3}") for i in range(5)
]


def test_evaluate_accuracy_scores_the_generated_answers(varied_model, tokenizer) -> None:
    fa = evaluate_accuracy(varied_model, tokenizer, [c["messages"] for c in CHATS], max_new_tokens=8, batch_size=2)
    gens = generate(varied_model, tokenizer, [c["messages"][:-1] for c in CHATS], max_new_tokens=8)
    assert [r.prediction for r in fa.records] == [g.text for g in gens]
    assert fa.mode == "number" and fa.n == 5
    assert fa.accuracy == 100.0 * sum(r.correct for r in fa.records) / 5


def test_valid_metrics_match_a_plain_cross_entropy(varied_model, tokenizer) -> None:
    chats = [c["messages"] for c in CHATS]
    got = valid_metrics(varied_model, tokenizer, chats, batch_size=2)
    encoder = ChatEncoder(tokenizer)
    nll = correct = n = 0.0
    with torch.no_grad():
        for messages in chats:
            prompt, response, mask = encoder.encode(messages)
            ids = torch.tensor([prompt + response])
            logits = varied_model(input_ids=ids).logits[0, len(prompt) - 1 : -1]  # [R, V] predicting the response
            target = torch.tensor(response)
            keep = torch.tensor(mask, dtype=torch.bool)
            nll += F.cross_entropy(logits[keep], target[keep], reduction="sum").item()
            correct += (logits[keep].argmax(-1) == target[keep]).sum().item()
            n += int(keep.sum())
    assert got["valid_loss"] == pytest.approx(nll / n, rel=1e-5)
    assert got["valid_mean_token_accuracy"] == pytest.approx(correct / n)
