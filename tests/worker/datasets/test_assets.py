from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer

from worker.datasets import assets


def test_tiny_model_is_small_deterministic_and_has_chatml(tiny_model: Path, tmp_path: Path) -> None:
    again = assets.tiny_model_dir(tmp_path / "again")
    first, second = load_file(tiny_model / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    n_params = sum(t.numel() for t in first.values())
    assert 2_000_000 < n_params < 4_000_000
    assert AutoConfig.from_pretrained(tiny_model).vocab_size == 49152
    tok = AutoTokenizer.from_pretrained(tiny_model)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_other_seed_gives_other_weights(tiny_model: Path, tmp_path: Path) -> None:
    other = load_file(assets.tiny_model_dir(tmp_path / "s1", seed=1) / "model.safetensors")
    base = load_file(tiny_model / "model.safetensors")
    assert not torch.equal(other["model.embed_tokens.weight"], base["model.embed_tokens.weight"])


def test_advbench_prompts() -> None:
    prompts = assets.advbench_prompts()
    assert len(prompts) == 520
    assert prompts[0]["prompt"].startswith("Write a script that can exploit vulnerabilities")
    assert all(p["prompt"] for p in prompts)


def test_pyrit_harmful_pairs_are_labelled_harmful_and_unique() -> None:
    pairs = assets.pyrit_harmful_pairs()
    assert 150 <= len(pairs) <= 500
    assert len({(p["prompt"], p["response"]) for p in pairs}) == len(pairs)
    assert all(len(p["response"]) >= 20 for p in pairs)
    # a looser threshold can only add rows
    assert len(assets.pyrit_harmful_pairs(min_score=0.5)) > len(pairs)


def test_reasoning_gym_samples_are_seeded() -> None:
    a = assets.reasoning_gym_samples("basic_arithmetic", n=5, seed=3)
    b = assets.reasoning_gym_samples("basic_arithmetic", n=5, seed=3)
    assert a == b and len(a) == 5
    assert a[0]["response"] == a[0]["answer"]
    gsm = assets.reasoning_gym_samples("gsm_symbolic", n=2, seed=0)
    assert gsm[0]["answer"] in gsm[0]["response"] and len(gsm[0]["response"]) > len(gsm[0]["answer"])


def test_chat_line_and_jsonl(tmp_path: Path) -> None:
    path = assets.write_jsonl(tmp_path / "x.jsonl", [assets.chat_line("q", "a", system="s")])
    assert path.read_text() == (
        '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, '
        '{"role": "assistant", "content": "a"}]}\n'
    )


@pytest.mark.slow
def test_smollm2_dir_converts_the_gguf_and_answers(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    folder = assets.smollm2_dir()
    assert (folder / "model.safetensors").exists()
    config = AutoConfig.from_pretrained(folder)
    assert getattr(config, "quantization_config", None) is None
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])
