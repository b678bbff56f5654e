"""The provider's ops dashboard: queues, workers, jobs with their safety results, alignments, base models."""
