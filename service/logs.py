"""One logging setup for every process (API, worker, inference server, `ftaas up`): JSON lines or text.

`FTAAS_LOG_FORMAT=auto` (the default) writes text when stderr is a terminal and JSON lines otherwise, so a person
at a shell reads plain lines while a container's collector gets one object per line. Every line carries the ids
bound to the current context (`request_id`, `org_id`, `job_id`, `attempt`, …): the API binds them per request
(service/request_id.py), the worker per job or run (`log_context`).

The context is one mutable dict per request or run held in a ContextVar. FastAPI runs sync dependencies in worker
threads with a copy of the context; a copied ContextVar still points at the same dict, so the org id that auth binds
there is visible to the access line the middleware writes afterwards.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import logging
import logging.config
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

_context: ContextVar[dict[str, Any] | None] = ContextVar("ftaas_log_context", default=None)
# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into the JSON object.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "context", "color_message"}
# Text lines show these first and in this order; the rest of the context follows.
_TEXT_ORDER = ("request_id", "org_id", "job_id", "attempt")
# Celery task name → the context field its first argument is (service.broker registers its tasks), so that
# Celery's own lines about a task ("… received", "… succeeded in 2.1s") name the job or run they are about. Those
# lines are written outside the task's own log context, but carry the task's name and argument repr in `data`.
TASK_ID_FIELDS: dict[str, str] = {}


def context() -> dict[str, Any]:
    """The ids bound to the current request or run (a copy)."""
    return dict(_context.get() or {})


def bind(**fields: Any) -> None:
    """Add ids to the current context in place (seen by every later line of the same request or run)."""
    current = _context.get()
    if current is None:
        _context.set({k: v for k, v in fields.items() if v is not None})
        return
    current.update({k: v for k, v in fields.items() if v is not None})


@contextmanager
def log_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """A new context (the enclosing one's ids plus ``fields``) for the duration of the block."""
    token = _context.set({**context(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield _context.get()  # type: ignore[misc]
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current context onto each record as it is handled (in the thread that logged it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "context"):
            record.context = {**_celery_task_ids(record), **context()}
        return True


def _celery_task_ids(record: logging.LogRecord) -> dict[str, str]:
    data = getattr(record, "data", None)
    field = TASK_ID_FIELDS.get(str(data.get("name"))) if isinstance(data, dict) else None
    if data is None or field is None:
        return {}
    try:
        args = ast.literal_eval(str(data.get("args") or "()"))
    except (ValueError, SyntaxError):  # a truncated repr of long arguments
        return {}
    first = args[0] if isinstance(args, tuple | list) and args else None
    return {field: first} if isinstance(first, str) else {}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the context ids, `extra=` fields, exc (a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "context", None) or {})
        line.update(_extras(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-01-01T12:00:00.000Z INFO logger [request_id=… org_id=…] message key=value …` and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        ids = getattr(record, "context", None) or {}
        ordered = [k for k in _TEXT_ORDER if k in ids] + sorted(k for k in ids if k not in _TEXT_ORDER)
        tags = " ".join(f"{k}={ids[k]}" for k in ordered)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        parts = [_timestamp(record), record.levelname, record.name, f"[{tags}]" if tags else "", record.getMessage()]
        text = " ".join(p for p in parts if p) + (f" {extras}" if extras else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


def resolve_format(log_format: str, stream: TextIO | None = None) -> str:
    """`json` or `text`; `auto` looks at whether ``stream`` (stderr) is a terminal."""
    if log_format in ("json", "text"):
        return log_format
    if log_format != "auto":
        raise ValueError(f"FTAAS_LOG_FORMAT must be auto, json or text, not {log_format!r}")
    stream = stream or sys.stderr
    return "text" if getattr(stream, "isatty", lambda: False)() else "json"


def formatter(log_format: str, stream: TextIO | None = None) -> logging.Formatter:
    return JsonFormatter() if resolve_format(log_format, stream) == "json" else TextFormatter()


def dict_config(log_format: str = "auto", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` schema: one stderr handler on the root; uvicorn's and Celery's loggers
    propagate to it. uvicorn takes it as `log_config` and applies it again in each of its worker processes."""
    fmt = resolve_format(log_format)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"main": {"()": JsonFormatter if fmt == "json" else TextFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "main",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery")
        },
    }


def configure(log_format: str = "auto", level: str = "INFO") -> None:
    """Install the root handler for this process (replacing any earlier one)."""
    logging.config.dictConfig(dict_config(log_format, level))


def configure_from_settings(settings: Any, level: str | None = None) -> None:
    configure(settings.log_format, level or settings.log_level)
