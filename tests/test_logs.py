"""service/logs.py: one JSON object per line (ids, extras, tracebacks), text on a terminal, the context per run."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest

from service import logs


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _capture(fmt: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(fmt)
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_json_lines_carry_the_context_extras_and_the_traceback() -> None:
    logger, stream = _capture(logs.JsonFormatter())
    with logs.log_context(job_id="ftjob-1", attempt=2):
        logs.bind(org_id="org-1", ignored=None)
        logger.info("step %d of %d", 3, 10, extra={"phase": "aligning"})
        try:
            raise ValueError("multi\nline")
        except ValueError:
            logger.exception("it broke")
    logger.warning("outside")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is one JSON object
    assert len(lines) == 3
    first, broken, outside = lines
    assert first["message"] == "step 3 of 10" and first["level"] == "INFO" and first["phase"] == "aligning"
    assert (first["job_id"], first["attempt"], first["org_id"]) == ("ftjob-1", 2, "org-1")
    assert "ignored" not in first and first["ts"].endswith("Z") and first["logger"] == logger.name
    assert broken["level"] == "ERROR" and "ValueError: multi\nline" in broken["exc"] and "Traceback" in broken["exc"]
    assert "job_id" not in outside  # the context ended with the block


def test_text_lines_put_the_ids_first_and_keep_the_traceback() -> None:
    logger, stream = _capture(logs.TextFormatter())
    with logs.log_context(request_id="req_1", job_id="ftjob-1"):
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            logger.exception("failed %s", "here", extra={"status": 500})
    text = stream.getvalue()
    assert " ERROR " in text and "[request_id=req_1 job_id=ftjob-1] failed here status=500" in text
    assert "ZeroDivisionError" in text.splitlines()[-1]


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    assert logs.resolve_format("auto", _Tty()) == "text"
    assert logs.resolve_format("auto", io.StringIO()) == "json"
    assert logs.resolve_format("json", _Tty()) == "json" and logs.resolve_format("text", io.StringIO()) == "text"
    assert isinstance(logs.formatter("auto", _Tty()), logs.TextFormatter)
    with pytest.raises(ValueError, match="auto, json or text"):
        logs.resolve_format("xml")


def test_configure_routes_every_logger_through_one_json_handler_on_stderr() -> None:
    code = (
        "import logging; from service import logs; logs.configure('json', 'INFO');"
        "logging.getLogger('uvicorn.error').info('started');"
        "logging.getLogger('worker.x').debug('hidden')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [("uvicorn.error", "started")]
    assert done.stdout == ""


def test_celerys_own_task_lines_name_the_job_they_are_about(monkeypatch: pytest.MonkeyPatch) -> None:
    from celery.app import trace
    from celery.utils.saferepr import saferepr

    from service import broker

    logger, stream = _capture(logs.JsonFormatter())
    monkeypatch.setattr(trace, "logger", logger)
    # the two shapes Celery logs a task with: the worker's "received" line and the tracer's "succeeded" line
    data = {"id": "c0ffee", "name": broker.PROCESS_JOB, "args": saferepr(("ftjob-42",)), "kwargs": "{}", "eta": None}
    logger.info(trace.LOG_RECEIVED, data, extra={"data": data})
    trace.info(trace.LOG_SUCCESS, {**data, "return_value": "'succeeded'", "runtime": 2.5})
    trace.info(trace.LOG_SUCCESS, {**data, "name": broker.SCREEN_FILE, "args": saferepr(("fscreen-7",)),
                                   "return_value": "'done'", "runtime": 1.0})
    trace.info(trace.LOG_SUCCESS, {**data, "name": "other.task", "return_value": "None", "runtime": 1.0})
    received, succeeded, screened, other = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert "received" in received["message"] and received["job_id"] == "ftjob-42"
    assert "succeeded in 2.5" in succeeded["message"] and succeeded["job_id"] == "ftjob-42"
    assert screened["screen_id"] == "fscreen-7" and "job_id" not in screened
    assert "job_id" not in other
