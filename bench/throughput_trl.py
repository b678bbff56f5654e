"""TRL's ``SFTTrainer`` (plain SFT) on ``throughput.py``'s file, with our LoRA, optimizer budget and batch.

Its own settings are the fast ones it supports: no gradient checkpointing (TRL defaults to on), fp32 on CPU and
bf16 on CUDA like ours, SDPA without cuDNN's kernel on CUDA like ours, completion-only loss (the file is converted
to TRL's conversational prompt/completion form, so the prompt is not trained, as in ours). Variants: ``trl``
(padded batches), ``trl_padding_free`` (the batch flattened into one row with position ids) and ``trl_packed``
(best-fit-decreasing packing into rows of ``max_seq_len``; more samples per step, so fewer steps over the same
tokens).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

TRL_ARMS = ("trl", "trl_padding_free", "trl_packed")


class _Counting:
    """Wraps TRL's collator to count each batch's trained targets and real (non-pad) tokens."""

    def __init__(self, collate: Any):
        self.collate = collate
        self.trained = 0
        self.tokens = 0
        self.per_batch: list[int] = []  # real tokens of each batch, in step order (no worker processes)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(features)
        self.trained += int((batch["labels"][:, 1:] != -100).sum())
        mask = batch.get("attention_mask")
        self.per_batch.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        self.tokens += self.per_batch[-1]
        return batch


def _dataset(train_file: Path) -> Any:
    from datasets import Dataset

    rows = []
    for line in train_file.read_text().splitlines():
        messages = json.loads(line)["messages"]
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return Dataset.from_list(rows)


def run_trl(arm: str, spec: dict[str, Any], stamps: list[float]) -> dict[str, Any]:
    """Train with TRL's SFTTrainer and return the step timestamps' companion figures (tokens, steps, loss)."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from worker.training.model import sdpa_without_cudnn

    cuda = spec["device"].startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=dtype).to(spec["device"])
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    packed = arm == "trl_packed"
    config = SFTConfig(
        output_dir=spec["out"],
        per_device_train_batch_size=spec["batch_size"],
        num_train_epochs=spec["epochs"],
        learning_rate=2e-4,
        lr_scheduler_type="linear",
        warmup_steps=0.1,  # a ratio of the steps when < 1 (transformers 5)
        weight_decay=0.1,
        max_grad_norm=1.0,
        seed=spec["seed"],
        max_length=None if arm == "trl_padding_free" else spec["max_seq_len"],
        padding_free=arm == "trl_padding_free",
        packing=packed,
        gradient_checkpointing=False,
        bf16=cuda,
        use_cpu=not cuda,
        save_strategy="no",
        report_to="none",
        logging_steps=1_000_000,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    lora = LoraConfig(
        r=spec["lora_rank"], lora_alpha=2 * spec["lora_rank"], lora_dropout=0.0, target_modules=spec["targets"]
    )
    if arm == "trl_padding_free":  # it does not truncate (TRL refuses max_length here): cut the file first
        train = _truncated(_dataset(Path(spec["train_file"])), tokenizer, spec["max_seq_len"])
    else:
        train = _dataset(Path(spec["train_file"]))
    trainer = SFTTrainer(model=model, args=config, train_dataset=train, processing_class=tokenizer, peft_config=lora)
    counting = _Counting(trainer.data_collator)
    trainer.data_collator = counting

    sync = torch.cuda.synchronize if cuda else lambda: None

    class Stamp(TrainerCallback):
        def on_step_begin(self, *_args: Any, **_kwargs: Any) -> None:
            if not stamps:
                sync()
                stamps.append(time.perf_counter())

        def on_step_end(self, *_args: Any, **_kwargs: Any) -> None:
            sync()
            stamps.append(time.perf_counter())

    trainer.add_callback(Stamp())
    # as ours trains, so the ratio compares trainers, not cuDNN's graph build per new width
    with sdpa_without_cudnn(torch.device(spec["device"])):
        output = trainer.train()
    return {
        "trained_tokens": counting.trained,
        "tokens": counting.tokens,
        "step_tokens": counting.per_batch,
        "loss": round(output.training_loss, 4),
    }


def _truncated(dataset: Any, tokenizer: Any, max_len: int) -> Any:
    """Cut each completion so that the templated prompt + completion fits ``max_len`` tokens, as ours does."""
    rows = []
    for row in dataset:
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
        full = full if isinstance(full, list) else full["input_ids"]  # a BatchEncoding in transformers 5
        if len(full) > max_len:
            content = row["completion"][0]["content"]
            ids = tokenizer(content, add_special_tokens=False)["input_ids"]
            keep = max(1, len(ids) - (len(full) - max_len) - 2)
            row = {**row, "completion": [{"role": "assistant", "content": tokenizer.decode(ids[:keep])}]}
        rows.append(row)
    return type(dataset).from_list(rows)
