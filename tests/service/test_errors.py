"""Every error, including unknown routes, validation failures and crashes, has OpenAI's shape (never `detail`)."""

from __future__ import annotations

import httpx
import openai
import pytest

from service.models import service as models_service


def _shape(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def test_unknown_route_and_method(api) -> None:
    key = api.new_key()
    h = {"Authorization": f"Bearer {key}"}
    r = httpx.get(f"{api.v1}/nope", headers=h)
    assert r.status_code == 404 and _shape(r)["code"] == "not_found"
    r = httpx.put(f"{api.v1}/files", headers=h)
    assert r.status_code == 405 and _shape(r)


def test_validation_error_names_param(api) -> None:
    h = {"Authorization": f"Bearer {api.new_key()}"}
    r = httpx.get(f"{api.v1}/files", params={"limit": "abc"}, headers=h)
    assert r.status_code == 400 and _shape(r)["param"] == "limit"
    r = httpx.post(
        f"{api.v1}/fine_tuning/jobs", content=b"{not json", headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and _shape(r)


def test_unexpected_error_is_500_in_openai_shape(api, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(models_service, "list_models", boom)
    client = api.client()
    with pytest.raises(openai.InternalServerError) as e:
        client.models.list()
    err = e.value.response.json()["error"]
    assert err["type"] == "server_error" and "secret" not in err["message"]


def test_authentication_error_from_sdk(api) -> None:
    client = openai.OpenAI(api_key="sk-wrong", base_url=api.v1, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        client.files.list()
    assert e.value.code == "invalid_api_key"
