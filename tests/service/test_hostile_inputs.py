"""Every operation in /openapi.json, fed hostile strings in each path parameter, query parameter and JSON string
field, answers a 4xx in OpenAI's error shape on both stacks (schemathesis never puts a NUL into a path).

A NUL is valid in Python and SQLite but PostgreSQL refuses it in text columns; 10k characters exceed every column.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.live import LiveAPI

HOSTILE = {"nul": "a\x00b", "long": "x" * 10_000, "json-path": 'a"].$[0', "surrogate-escape": "%ED%A0%80"}
# No field can store these, so they must be refused; the others may be legal free text (an alignment's source path).
REFUSED = {"nul", "long"}


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def _body_fields(doc: dict[str, Any], op: dict[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
    """A minimal valid-looking JSON body for the operation, and its top-level string fields."""
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    props = schema.get("properties", {})

    def is_str(p: dict[str, Any]) -> bool:
        return p.get("type") == "string" or any(a.get("type") == "string" for a in p.get("anyOf", []))

    strings = [name for name, p in props.items() if is_str(p)]
    body = {name: "ok" for name in schema.get("required", []) if name in strings}
    return body, strings


def _assert_refused(r: httpx.Response, what: str, kind: str) -> None:
    low = 400 if kind in REFUSED else 200
    assert low <= r.status_code < 500, (what, r.status_code, r.text[:300])
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        assert set(r.json()) == {"error"}, (what, r.text[:300])


def _quote(value: str) -> str:
    # The surrogate case is already percent-encoded (a lone surrogate can't be encoded as UTF-8 by the client).
    return value if value.startswith("%") else httpx.URL("http://h/", params={"v": value}).query.decode()[2:]


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_no_operation_turns_a_hostile_string_into_a_5xx(api: LiveAPI, kind: str) -> None:
    value = HOSTILE[kind]
    headers = {"Authorization": f"Bearer {api.new_key(admin=True)}"}
    doc = httpx.get(f"{api.base_url}/openapi.json").json()
    with httpx.Client(base_url=api.base_url, headers=headers, timeout=30) as http:
        for method, path, op in _operations(doc):
            if path.endswith("/events"):
                continue  # hostile ids give 404 before any stream starts; covered by the query cases below
            params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]
            filled = re.sub(r"\{[^}]+\}", "id-1", path)
            for p in params:
                if p["in"] == "path":
                    target = path.replace("{" + p["name"] + "}", _quote(value))
                    target = re.sub(r"\{[^}]+\}", "id-1", target)
                    _assert_refused(http.request(method, target), f"{method} {path} path {p['name']}={kind}", kind)
                elif p.get("schema", {}).get("type") != "integer":
                    target = f"{filled}?{p['name']}={_quote(value)}"
                    r = http.request(method, target)
                    assert r.status_code < 500, (method, target[:200], r.status_code, r.text[:300])
            fields = _body_fields(doc, op)
            if fields is None or "{" in path:
                continue
            body, strings = fields
            for name in strings:
                r = http.request(method, path, json={**body, name: value})
                _assert_refused(r, f"{method} {path} body {name}={kind}", kind)


def test_metadata_filter_with_hostile_keys_is_a_4xx_or_empty(api: LiveAPI) -> None:
    headers = {"Authorization": f"Bearer {api.new_key(admin=True)}"}
    with httpx.Client(base_url=api.v1, headers=headers) as http:
        for path in ("/fine_tuning/jobs", "/admin/fine_tuning/jobs"):
            for key in HOSTILE.values():
                r = http.get(f"{path}?metadata[{_quote(key)}]=x")
                assert r.status_code == 400 or (r.status_code == 200 and r.json()["data"] == []), (key, r.text)
