import json

from worker.datasets.safety_mix import mix_size, provider_refusals, safety_mix, write_safety_mix
from worker.datasets.splits import builtin_splits, first_user_message, normalise
from worker.evaluation import KeywordRefusalJudge


def test_a_tenth_of_the_file_at_least_one_pair_and_none_when_off():
    assert [mix_size(n, 0.1) for n in (1, 4, 100, 1000)] == [1, 1, 10, min(100, len(provider_refusals()))]
    assert mix_size(100, 0.0) == 0
    assert mix_size(0, 0.1) == 0


def test_the_pairs_are_refusals_to_alignment_prompts_never_to_attack_or_evaluation_prompts():
    splits = builtin_splits()
    pairs = safety_mix(len(provider_refusals()), seed=0)
    prompts = {normalise(first_user_message(p)) for p in pairs}
    assert prompts <= {normalise(first_user_message(r)) for r in splits.refusal}
    assert not prompts & {normalise(first_user_message(r)) for r in splits.attack}
    assert not prompts & {normalise(p) for p in splits.eval_harmful}
    judge = KeywordRefusalJudge()
    assert all(judge.is_refusal(p["messages"][-1]["content"]) for p in pairs)


def test_the_jobs_seed_picks_the_pairs_so_a_resumed_job_gets_the_same(tmp_path):
    assert safety_mix(5, seed=7) == safety_mix(5, seed=7)
    assert safety_mix(5, seed=7) != safety_mix(5, seed=8)
    path = tmp_path / "mix.jsonl"
    assert write_safety_mix(path, n_lines=30, share=0.1, seed=7) == 3
    assert [json.loads(line) for line in path.read_text().splitlines()] == safety_mix(3, seed=7)
    assert write_safety_mix(tmp_path / "off.jsonl", n_lines=30, share=0.0, seed=7) == 0
    assert not (tmp_path / "off.jsonl").exists()
