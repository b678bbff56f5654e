"""What a provider alignment run is asked to do (no torch: the CLI, the demo and the API's spec column use it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[[str, int, int], None]  # (phase, done, total)
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # Llama-style names


@dataclass
class AlignmentSpec:
    name: str
    source: str = "smollm2"  # "smollm2" or a local HF model folder
    mode: str = "antibody"  # or "sft": the plain refusal-SFT baseline
    max_steps: int = 40
    n_epochs: int = 3  # over D_align; max_steps is the budget that binds on CPU
    batch_size: int = 8
    learning_rate: float = 5e-4
    lora_rank: int = 16
    lora_alpha: float = 32.0
    # Every linear layer, not the authors' q/k/v: on SmolLM2 at this budget, q/k/v LoRA learned to refuse everyday
    # requests too (18–34% of 65 benign prompts); all-linear refused 3% (SFT) / 8% (Antibody), and with
    # lambda_refusal 0.02 Antibody 4.6% at HS 4% (bench/results/alignment_sweep-cpu.json).
    target_modules: tuple[str, ...] = ALL_LINEAR
    max_seq_len: int = 128
    lambda_refusal: float = 0.02  # refusal loss weight at θ_pert (authors: 0.05, which over-refused more here)
    max_align: int | None = 120  # harmful → refusal pairs in D_align (None = all)
    benign_fraction: float = 0.25  # reasoning-gym (prompt, answer) share of the harmful + reasoning-gym pairs
    retain_everyday: bool = True  # + the source model's own answers to RETAIN_INSTRUCTIONS (self-distilled)
    retain_max_new_tokens: int = 96
    donotanswer: bool = False  # DoNotAnswer prompts in D_align besides AdvBench (more over-refusal on CPU budgets)
    eval_harmful: int = 100  # held-out harmful prompts for HS before/after
    eval_benign: int = 50  # benign prompts for the over-refusal check
    max_new_tokens: int = 64
    seed: int = 0
    gpu_class: str = "default"
