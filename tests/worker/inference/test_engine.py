"""The embedded inference engine on the tiny random Llama: batching is exact, sampling is seeded, stops and
budgets end rows, streams add up, adapters change the output and mix in one batch, the queue is bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worker.evaluation.generation import generate
from worker.inference.adapters import AdapterError
from worker.inference.engine import Engine, Request, Saturated, UnknownAdapter

PROMPTS = ["Hello there", "What is two plus two? Answer with care and show every step please.", "Hi"]


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Engine:
    eng = Engine(tiny_model, max_adapters=2, max_batch=8, batch_window_s=0.05).start()
    yield eng
    eng.stop()


@pytest.fixture(scope="module")
def adapter_dirs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two LoRA adapters with random (non-zero) B matrices, so each visibly changes the output."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(tiny_model)
        cfg = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        folder = tmp_path_factory.mktemp(f"adapter{seed}")
        get_peft_model(base, cfg).save_pretrained(folder)
        out.append(folder)
    return out


def run(engine: Engine, prompt: str, **kw) -> object:
    return engine.submit(Request(engine.render([{"role": "user", "content": prompt}]), **kw)).result(timeout=120)


def test_batched_greedy_equals_the_evaluation_generator(engine: Engine):
    futures = [engine.submit(Request(engine.render([{"role": "user", "content": p}]), max_tokens=12,
                                     temperature=0)) for p in PROMPTS]
    results = [f.result(timeout=120) for f in futures]
    assert max(r.batch_rows for r in results) > 1  # they really shared a batch
    reference = generate(engine.pool.model, engine.tokenizer, PROMPTS, max_new_tokens=12, batch_size=1)
    for res, ref in zip(results, reference, strict=True):
        assert res.choices[0].tokens == ref.token_ids


def test_seeded_sampling_repeats_and_n_choices_differ(engine: Engine):
    a = run(engine, "Tell me a story", max_tokens=10, temperature=1.0, seed=7, n=2)
    b = run(engine, "Tell me a story", max_tokens=10, temperature=1.0, seed=7, n=2)
    assert [c.tokens for c in a.choices] == [c.tokens for c in b.choices]
    assert a.choices[0].tokens != a.choices[1].tokens
    assert a.completion_tokens == sum(len(c.tokens) for c in a.choices)


def test_length_limit_and_stop_string(engine: Engine):
    res = run(engine, "Hello there", max_tokens=6, temperature=0)
    row = res.choices[0]
    assert (row.finish_reason, len(row.tokens)) == ("length", 6)
    stop = row.text[2:5]
    cut = run(engine, "Hello there", max_tokens=6, temperature=0, stop=[stop]).choices[0]
    assert cut.finish_reason == "stop" and stop not in cut.text and row.text.startswith(cut.text)


def test_streamed_deltas_add_up_to_the_text(engine: Engine):
    deltas: list[str] = []
    res = run(engine, "Hello there", max_tokens=12, temperature=0, on_text=lambda i, d: deltas.append(d))
    assert "".join(deltas) == res.choices[0].text and len(deltas) > 1


def test_adapters_change_output_and_mix_in_one_batch(engine: Engine, adapter_dirs: list[Path]):
    assert engine.load_adapter("a1", adapter_dirs[0]) is True
    assert engine.load_adapter("a1", adapter_dirs[0]) is False  # already loaded
    alone = {name: run(engine, "Hello there", max_tokens=8, temperature=0, adapter=name).choices[0].tokens
             for name in ("__base__", "a1")}
    assert alone["a1"] != alone["__base__"]
    with engine.pool.model.disable_adapter():
        base_only = generate(engine.pool.model, engine.tokenizer, ["Hello there"], max_new_tokens=8)[0].token_ids
    assert alone["__base__"] == base_only
    futures = {name: engine.submit(Request(engine.render([{"role": "user", "content": "Hello there"}]),
                                           max_tokens=8, temperature=0, adapter=name)) for name in alone}
    mixed = {name: f.result(timeout=120) for name, f in futures.items()}
    assert {name: r.choices[0].tokens for name, r in mixed.items()} == alone


def test_lru_evicts_the_oldest_and_unknown_adapters_are_refused(engine: Engine, adapter_dirs: list[Path]):
    engine.load_adapter("x1", adapter_dirs[0])
    engine.load_adapter("x2", adapter_dirs[1])
    engine.load_adapter("x3", adapter_dirs[0])  # capacity 2: x1 goes
    assert [a["name"] for a in engine.adapters()] == ["x2", "x3"]
    with pytest.raises(UnknownAdapter):
        engine.submit(Request([1, 2, 3], max_tokens=2, adapter="x1"))
    assert engine.unload_adapter("x2") is True and engine.unload_adapter("x2") is False
    with pytest.raises(AdapterError):
        engine.load_adapter("bad", adapter_dirs[0].parent)


def test_a_full_queue_is_refused_at_once(tiny_model: Path):
    eng = Engine(tiny_model, max_queue=1)  # not started: nothing drains the queue
    eng.submit(Request([1, 2, 3], max_tokens=2))
    with pytest.raises(Saturated) as err:
        eng.submit(Request([1, 2, 3], max_tokens=2))
    assert err.value.retry_after_s >= 1
