"""Models API: provider base models for everyone, fine-tuned models only for their org."""

from __future__ import annotations

import openai
import pytest

from service.db import session_scope
from service.ids import now
from service.orm import FineTunedModelRow, JobRow
from tests.service.helpers import error_of, upload


def _fine_tuned(api, client: openai.OpenAI, name: str) -> str:
    """Create a job and the model a worker would publish for it (the worker arrives with issue 4)."""
    api.register_base("tiny-aligned")
    job = client.fine_tuning.jobs.create(model="tiny-aligned", training_file=upload(client).id)
    with session_scope(api.settings.database_url) as s:
        row = s.query(JobRow).filter_by(id=job.id).one()
        s.add(
            FineTunedModelRow(
                id=name,
                org_id=row.org_id,
                job_id=job.id,
                base_model="tiny-aligned",
                adapter_prefix=f"jobs/{job.id}/adapter/",
                created_at=now(),
            )
        )
    return name


def test_list_retrieve_delete(api, client: openai.OpenAI) -> None:
    api.register_base("tiny-unaligned", aligned=False)
    mine = _fine_tuned(api, client, f"ft:tiny-aligned:org:s:{id(client)}")
    ids = [m.id for m in client.models.list()]
    assert "tiny-aligned" in ids and mine in ids and "tiny-unaligned" not in ids
    assert client.models.retrieve("tiny-aligned").owned_by == "system"
    model = client.models.retrieve(mine)
    assert (model.id, model.object) == (mine, "model")
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("tiny-aligned")
    deleted = client.models.delete(mine)
    assert deleted.deleted and deleted.id == mine
    assert mine not in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve(mine)
    assert error_of(e.value)["param"] == "model"


def test_other_orgs_fine_tuned_models_are_invisible(api, client: openai.OpenAI) -> None:
    mine = _fine_tuned(api, client, f"ft:tiny-aligned:org:t:{id(client)}")
    other = api.client()
    assert mine not in [m.id for m in other.models.list()]
    for call in (other.models.retrieve, other.models.delete):
        with pytest.raises(openai.NotFoundError):
            call(mine)
