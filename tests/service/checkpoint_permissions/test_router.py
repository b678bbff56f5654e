"""The permissions API with the official SDK (strict parsing): create, list (paging, order, filter), delete."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.service.checkpoint_permissions.conftest import Org, add_checkpoint, new_org
from tests.service.helpers import error_of, http_error


def test_create_list_and_delete(api, owner: Org, checkpoint: str) -> None:
    perms = owner.client.fine_tuning.checkpoints.permissions
    b, c = new_org(api), new_org(api)
    created = perms.create(checkpoint, project_ids=[b.org_id, c.org_id, b.org_id])
    assert [p.project_id for p in created.data] == [b.org_id, c.org_id]  # repeats collapse, order kept
    assert {p.object for p in created.data} == {"checkpoint.permission"}
    assert all(p.id.startswith("cp_") and p.created_at > 0 for p in created.data)
    # Granting again is a no-op that answers the existing grant (the SDK retries POSTs on timeouts).
    again = perms.create(checkpoint, project_ids=[c.org_id])
    assert [p.id for p in again.data] == [created.data[1].id]

    listed = perms.list(checkpoint)
    assert [p.id for p in listed.data] == [created.data[1].id, created.data[0].id]  # newest first by default
    assert listed.has_more is False and listed.last_id == created.data[0].id
    with pytest.warns(DeprecationWarning):
        old = perms.retrieve(checkpoint, order="ascending")
    assert [p.id for p in old.data] == [p.id for p in created.data] and old.first_id == created.data[0].id

    gone = perms.delete(created.data[0].id, fine_tuned_model_checkpoint=checkpoint)
    assert (gone.id, gone.deleted, gone.object) == (created.data[0].id, True, "checkpoint.permission")
    assert [p.project_id for p in perms.list(checkpoint).data] == [c.org_id]
    with pytest.raises(openai.NotFoundError) as err:
        perms.delete(created.data[0].id, fine_tuned_model_checkpoint=checkpoint)
    assert error_of(err.value)["param"] == "permission_id"


def test_list_pages_orders_and_filters(api, owner: Org, checkpoint: str) -> None:
    perms = owner.client.fine_tuning.checkpoints.permissions
    projects = [new_org(api).org_id for _ in range(5)]
    ids = [perms.create(checkpoint, project_ids=[p]).data[0].id for p in projects]

    first = perms.list(checkpoint, limit=2, order="ascending")
    assert [p.id for p in first.data] == ids[:2] and first.has_more is True
    assert [p.id for p in first.get_next_page().data] == ids[2:4]
    assert [p.id for p in perms.list(checkpoint, limit=2, order="ascending")] == ids  # auto-paging follows last_id
    assert [p.id for p in perms.list(checkpoint, limit=2, order="descending")] == ids[::-1]
    after = perms.list(checkpoint, after=ids[3], order="descending")
    assert [p.id for p in after.data] == ids[:3][::-1] and after.has_more is False
    only = perms.list(checkpoint, project_id=projects[2])
    assert [(p.id, p.project_id) for p in only.data] == [(ids[2], projects[2])]
    assert perms.list(checkpoint, project_id="org-nobody").data == []
    # Another checkpoint of the same org has grants of its own.
    assert perms.list(add_checkpoint(api, owner, 8)).data == []


def test_invalid_requests_name_the_param(api, owner: Org, checkpoint: str) -> None:
    perms = owner.client.fine_tuning.checkpoints.permissions
    with pytest.raises(openai.BadRequestError) as err:
        perms.create(checkpoint, project_ids=["org-doesnotexist"])
    assert error_of(err.value)["param"] == "project_ids" and "organization_id" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        perms.create(checkpoint, project_ids=[owner.org_id])
    assert error_of(err.value)["param"] == "project_ids"
    with pytest.raises(openai.BadRequestError) as err:
        perms.create(checkpoint, project_ids=[])
    assert error_of(err.value)["param"] == "project_ids"
    with pytest.raises(openai.BadRequestError) as err:
        perms.list(checkpoint, after="cp_unknown")
    assert error_of(err.value)["param"] == "after"
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {owner.client.api_key}"}) as http:
        path = f"/fine_tuning/checkpoints/{checkpoint}/permissions"
        assert http_error(http.get(path, params={"order": "asc"}))["param"] == "order"
        assert http_error(http.get(path, params={"limit": 0}))["param"] == "limit"
        assert http_error(http.post(path, json={"project_ids": "org-x"}))["param"] == "project_ids"
        assert http_error(http.post(path, json={"project_ids": [1]}))["param"] == "project_ids.0"
        assert http_error(http.post(path, json={}))["param"] == "project_ids"
        assert http_error(http.post(path, json={"project_ids": [owner.org_id], "x": 1}))["param"] == "x"
        assert http_error(http.get(path, headers={"Authorization": "Bearer nope"}), 401)


def test_unknown_checkpoints_and_the_job_name_itself_are_404(owner: Org, checkpoint: str) -> None:
    perms = owner.client.fine_tuning.checkpoints.permissions
    for name in (checkpoint + "0", checkpoint.split(":ckpt-step-")[0], "ft:nope"):
        with pytest.raises(openai.NotFoundError) as err:
            perms.list(name)
        assert error_of(err.value)["param"] == "fine_tuned_model_checkpoint"
