"""Files past `expires_after` are deleted, as on OpenAI: gone for the API at once, purged (row and bytes) by the
janitor, except while an unfinished job still needs them."""

from __future__ import annotations

import uuid
from pathlib import Path

import openai
import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.engine import make_url

from service.config import Settings
from service.db import session_scope
from service.files import janitor
from service.ids import new_id, now
from service.migrate import upgrade
from service.orm import FileRow, JobRow
from tests.live import LiveAPI, serve
from tests.service.helpers import error_of, jsonl

BASE = "tiny-expiry"


def _fresh_database(url: str) -> str:
    name = f"ftaas_expiry_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def quiet_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path):
    """A server of its own, on its own DB, with the janitor off: only the test decides when a purge runs."""
    values: dict[str, object] = {
        "home": tmp_path_factory.mktemp(f"expiry-{request.param}"),
        "broker_url": "filesystem://",
        "janitor_interval_s": 0,
    }
    if request.param == "postgres":
        values["database_url"] = _fresh_database(request.getfixturevalue("postgres_url"))
        values["storage_url"] = f"s3://ftaas-expiry-{uuid.uuid4().hex[:12]}/objects"
        values["s3_endpoint_url"] = request.getfixturevalue("s3_endpoint")
    settings = Settings(**values)
    upgrade(settings.database_url)
    base_url, server, thread = serve(settings)
    store = server.config.app.state.store
    store.ensure_bucket()
    api = LiveAPI(request.param, base_url, settings, store, tiny_model)
    api.register_base(BASE)
    yield api
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def owner(quiet_api: LiveAPI) -> openai.OpenAI:
    return quiet_api.client()


def _upload(client: openai.OpenAI, name: str = "t.jsonl", *, expires: bool = True):  # type: ignore[no-untyped-def]
    extra = {"expires_after": {"anchor": "created_at", "seconds": 3600}} if expires else {}
    return client.files.create(file=(name, jsonl()), purpose="fine-tune", **extra)


def _expire(api: LiveAPI, file_id: str) -> None:
    """Move the file's expiry into the past (the shortest `expires_after` is an hour)."""
    with session_scope(api.settings.database_url) as session:
        session.execute(update(FileRow).where(FileRow.id == file_id).values(expires_at=now() - 1))


def _row(api: LiveAPI, file_id: str) -> FileRow | None:
    with session_scope(api.settings.database_url) as session:
        return session.scalar(select(FileRow).where(FileRow.id == file_id))


def _job(api: LiveAPI, org_id: str, status: str, training_file: str, validation_file: str | None = None) -> str:
    job_id = new_id("ftjob-")
    with session_scope(api.settings.database_url) as session:
        session.add(
            JobRow(
                id=job_id, org_id=org_id, model=BASE, training_file=training_file, validation_file=validation_file,
                status=status, seed=0, created_at=now(),
            )  # fmt: skip
        )
    return job_id


def _set_status(api: LiveAPI, job_id: str, status: str) -> None:
    with session_scope(api.settings.database_url) as session:
        session.execute(update(JobRow).where(JobRow.id == job_id).values(status=status))


def test_expired_file_is_gone_for_the_api(quiet_api: LiveAPI, owner: openai.OpenAI) -> None:
    expiring, keeper = _upload(owner, "expiring.jsonl"), _upload(owner, "keeper.jsonl", expires=False)
    assert owner.files.retrieve(expiring.id).id == expiring.id
    _expire(quiet_api, expiring.id)

    with pytest.raises(openai.NotFoundError):
        owner.files.retrieve(expiring.id)
    with pytest.raises(openai.NotFoundError):
        owner.files.content(expiring.id)
    assert [f.id for f in owner.files.list()] == [keeper.id]
    with pytest.raises(openai.BadRequestError) as e:
        owner.fine_tuning.jobs.create(model=BASE, training_file=expiring.id)
    assert error_of(e.value)["param"] == "training_file"
    with pytest.raises(openai.BadRequestError) as e:
        owner.fine_tuning.jobs.create(model=BASE, training_file=keeper.id, validation_file=expiring.id)
    assert error_of(e.value)["param"] == "validation_file"
    assert owner.files.content(keeper.id).content == jsonl()


def test_owner_deletes_an_expired_file_before_the_purge(quiet_api: LiveAPI, owner: openai.OpenAI) -> None:
    f = _upload(owner)
    key = f"files/{f.id}.jsonl"
    _expire(quiet_api, f.id)
    with pytest.raises(openai.NotFoundError):
        quiet_api.client().files.delete(f.id)  # another org: still not theirs
    assert quiet_api.store.exists(key)

    deleted = owner.files.delete(f.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (f.id, "file", True)
    assert _row(quiet_api, f.id) is None
    assert not quiet_api.store.exists(key)
    with pytest.raises(openai.NotFoundError):
        owner.files.delete(f.id)


def test_janitor_purges_expired_rows_and_bytes(quiet_api: LiveAPI, owner: openai.OpenAI) -> None:
    expired, live = _upload(owner), _upload(owner)
    _expire(quiet_api, expired.id)

    assert janitor.sweep(quiet_api.settings, quiet_api.store).expired >= 1
    assert _row(quiet_api, expired.id) is None
    assert not quiet_api.store.exists(f"files/{expired.id}.jsonl")
    assert owner.files.retrieve(live.id).expires_at is not None
    assert owner.files.content(live.id).content == jsonl()


def test_files_of_an_unfinished_job_outlive_their_expiry(quiet_api: LiveAPI, owner: openai.OpenAI) -> None:
    train, valid, other = _upload(owner), _upload(owner), _upload(owner)
    org_id = _row(quiet_api, train.id).org_id  # type: ignore[union-attr]
    running = _job(quiet_api, org_id, "running", train.id, valid.id)
    _job(quiet_api, org_id, "succeeded", other.id)
    for f in (train, valid, other):
        _expire(quiet_api, f.id)

    janitor.sweep(quiet_api.settings, quiet_api.store)
    # The worker downloads the files again whenever the job (re)starts, e.g. after its lease expired.
    for f in (train, valid):
        assert _row(quiet_api, f.id) is not None
        assert quiet_api.store.get_bytes(f"files/{f.id}.jsonl") == jsonl()
    assert _row(quiet_api, other.id) is None
    with pytest.raises(openai.NotFoundError):
        owner.files.retrieve(train.id)  # hidden all the same

    _set_status(quiet_api, running, "cancelled")
    janitor.sweep(quiet_api.settings, quiet_api.store)
    for f in (train, valid):
        assert _row(quiet_api, f.id) is None
        assert not quiet_api.store.exists(f"files/{f.id}.jsonl")

