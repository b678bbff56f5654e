"""worker/progress.py: off a terminal, long work prints step/total and an ETA at least every interval."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

from service import logs
from service.config import Settings
from worker.alignment.runner import AlignmentSpec, align_model
from worker.progress import ProgressLines, reporter


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_at_phase_changes_and_every_interval_with_step_total_and_eta() -> None:
    clock, lines = _Clock(), []
    progress = ProgressLines(lambda message, fields: lines.append((clock.now, message, fields)), 30, clock)
    progress("aligning", 0, 40)  # a new phase: a line at once, no rate yet
    for step in range(1, 41):
        clock.now += 2.0  # 2 s a step: a line every 15 steps, then the final one
        progress("aligning", step, 40)
        progress.tick()  # the ticker adds nothing while steps come faster than the interval
    assert [t - 1000 for t, _, _ in lines] == [0, 30, 60, 80]
    assert lines[0][1] == "aligning: 0/40 (0%), elapsed 0m00s, ETA ?" and lines[0][2]["eta_s"] is None
    assert lines[1][1] == "aligning: 15/40 (38%), elapsed 0m30s, ETA 0m50s"
    assert lines[1][2] == {"phase": "aligning", "step": 15, "total": 40, "eta_s": 50.0}
    assert lines[-1][1].endswith("done") and lines[-1][2]["step"] == 40


def test_the_ticker_repeats_the_last_state_when_a_step_takes_longer_than_the_interval() -> None:
    clock, lines = _Clock(), []
    progress = ProgressLines(lambda message, fields: lines.append((clock.now, message)), 30, clock)
    progress("evaluating the aligned model", 16, 100)
    clock.now += 29
    progress.tick()
    clock.now += 1
    progress.tick()
    clock.now += 45
    progress.tick()
    assert [t - 1000 for t, _ in lines] == [0, 30, 75]
    assert lines[-1][1] == "evaluating the aligned model: 16/100 (16%), elapsed 1m15s, ETA ?"


def test_a_piped_stream_gets_progress_lines_from_the_ticker_thread() -> None:
    piped = io.StringIO()  # not a terminal
    with logs.log_context(alignment_id="align-1"), reporter(0.05, "json", piped) as progress:
        progress("aligning", 1, 4)
        time.sleep(0.3)  # one slow step: the ticker keeps printing
        progress("aligning", 4, 4)
    lines = [json.loads(line) for line in piped.getvalue().splitlines()]
    assert len(lines) >= 4 and lines[-1]["message"].startswith("aligning: 4/4 (100%)")
    assert {(line["phase"], line["total"], line["alignment_id"]) for line in lines} == {("aligning", 4, "align-1")}
    assert all(line["logger"] == "ftaas.progress" and "eta_s" in line for line in lines)


def test_a_tiny_alignment_with_its_output_piped_reports_distillation_alignment_and_evaluation(
    tiny_model: Path, tmp_path: Path
) -> None:
    spec = AlignmentSpec(
        name="tiny-aligned", source=str(tiny_model), max_steps=3, batch_size=4, eval_harmful=20, eval_benign=20,
        max_new_tokens=4, max_seq_len=64, retain_max_new_tokens=4,
    )
    piped = io.StringIO()
    # A line at nearly every update: one that lands within 0.01 s of the ticker's line is folded into the next.
    with reporter(0.01, "text", piped) as progress:
        align_model(Settings(home=str(tmp_path / "home")), spec, tmp_path / "run", progress)
    text = piped.getvalue()
    for phase, total in (("answering the retain instructions", r"\d+"), ("aligning", "3"),
                         ("evaluating the source model", "40"), ("evaluating the aligned model", "40")):
        assert re.search(rf"INFO ftaas.progress {phase}[^:]*: {total}/{total} \(100%\), elapsed \S+, done", text), phase
    mid = re.findall(r"evaluating the aligned model: (\d+)/40 \(\d+%\), elapsed \S+, ETA \d+m\d\ds", text)
    assert any(0 < int(done) < 40 for done in mid), "no mid-phase line with an ETA"
