"""Queued runs: what fine-tuning jobs, file screens and provider alignments share on their way through the broker."""
