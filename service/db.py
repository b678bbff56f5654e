"""Engine and session factory. Sessions are committed by their owner (the request dependency or a worker step)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# Connections one process may open: above the API's in-flight bound (api_max_inflight, 32) plus the stream polls
# (4) and the janitor, so that no request ever waits for a connection (service/inflight.py says why that matters).
POOL_SIZE, MAX_OVERFLOW = 10, 40
POOL_CAPACITY = POOL_SIZE + MAX_OVERFLOW


def _json_loads(data: str | bytes) -> object:
    """JSON columns (a job's hyperparameters, method, metadata, …) decoded by orjson: the stdlib's json.loads was
    a third of the CPU of a 20-job list page. Writes keep the stdlib encoder, which writes NaN for a float NaN (a
    diverged loss); orjson refuses that, so such a value falls back to the stdlib."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


JSON_OPTIONS = {"json_deserializer": _json_loads}


@lru_cache
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            **JSON_OPTIONS,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the API read while a worker writes; foreign keys are off by default in SQLite.
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, **JSON_OPTIONS)


@lru_cache
def get_sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run `fn` once the session's transaction has committed (e.g. enqueue a Celery task with ids only)."""
    session.info.setdefault("after_commit", []).append(fn)


def run_after_commit(session: Session) -> None:
    for fn in session.info.pop("after_commit", []):
        fn()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error, then run the after-commit hooks."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        session.info.pop("after_commit", None)
        raise
    finally:
        session.close()
    run_after_commit(session)
