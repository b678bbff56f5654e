"""Registering, retiring and reinstating a base model from the overview's forms, against a live server (both
backends): what customers can fine-tune follows them; a forged form, a bad folder or a taken name changes nothing."""

from __future__ import annotations

import uuid

import httpx

from tests.live import LiveAPI
from tests.service.dashboard.browser import browser, csrf_token, log_in


def test_a_base_model_registered_on_the_page_is_offered_to_customers(api: LiveAPI, tmp_path) -> None:
    name = f"form-{uuid.uuid4().hex[:8]}"
    customer = api.client()
    with browser(api) as tab:
        assert log_in(tab, api.new_key(admin=True)).status_code == 303
        page = tab.get("/dashboard")
        assert 'id="register-base"' in page.text
        form = {"csrf_token": csrf_token(page), "name": name, "path": str(api.model_dir), "gpu_class": "default",
                "aligned": "true"}  # fmt: skip

        forged = tab.post("/dashboard/base_models", data={**form, "csrf_token": "nope"})
        assert forged.status_code == 403
        empty = tmp_path / "not-a-model"
        empty.mkdir()
        bad = tab.post("/dashboard/base_models", data={**form, "path": str(empty)})
        assert bad.status_code == 400 and "no config.json" in bad.text
        named = tab.post("/dashboard/base_models", data={**form, "name": "bad name!"})
        assert named.status_code == 400 and "name may use letters" in named.text
        assert name not in {m.id for m in customer.models.list()}

        done = tab.post("/dashboard/base_models", data=form)
        assert done.status_code == 303 and done.headers["location"] == "/dashboard#base-models"
        assert name in {m.id for m in customer.models.list()}  # pre-aligned: customers may fine-tune it
        assert name in tab.get("/dashboard").text

        again = tab.post("/dashboard/base_models", data={**form, "aligned": ""})
        assert again.status_code == 400 and "registered already" in again.text
    admin = {"Authorization": f"Bearer {api.new_key(admin=True)}"}
    listed = httpx.get(f"{api.v1}/admin/base_models", headers=admin).json()["data"]
    assert [b["aligned"] for b in listed if b["name"] == name] == [True]  # not overwritten by the second form


def test_a_base_retired_on_the_page_is_withdrawn_from_customers_until_reinstated(
    api: LiveAPI, gpu_base: tuple[str, str]
) -> None:
    name, customer = gpu_base[0], api.client()
    retire, reinstate = f"/dashboard/base_models/{name}/retire", f"/dashboard/base_models/{name}/reinstate"
    with browser(api) as stranger:  # not logged in: the login page, and nothing retired
        assert "api_key" in stranger.post(retire, data={"csrf_token": "x"}).text
    with browser(api) as tab:
        assert log_in(tab, api.new_key(admin=True)).status_code == 303
        page = tab.get("/dashboard")
        token = csrf_token(page)
        assert f'action="{retire}"' in page.text and f'aria-label="Retire {name}"' in page.text
        assert tab.post(retire, data={"csrf_token": "nope"}).status_code == 403
        assert name in {m.id for m in customer.models.list()}

        done = tab.post(retire, data={"csrf_token": token})
        assert done.status_code == 303 and done.headers["location"] == "/dashboard#base-models"
        assert name not in {m.id for m in customer.models.list()}
        row = tab.get("/dashboard").text.split(f'<td class="mono">{name}</td>')[1].split("</tr>")[0]
        assert "retired" in row and f'action="{reinstate}"' in row and ">Reinstate</button>" in row

        missing = tab.post("/dashboard/base_models/no-such-base/retire", data={"csrf_token": token})
        assert missing.status_code == 404 and "no-such-base" in missing.text
        assert tab.post(reinstate, data={"csrf_token": token}).status_code == 303
        assert name in {m.id for m in customer.models.list()}
