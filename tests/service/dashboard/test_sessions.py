"""Dashboard sessions live on the server: logout and key revocation end them, a cookie can't be forged, and every
POST must come from the dashboard's own page (Origin + CSRF token). Against the live server, both backends."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from service.db import session_scope
from service.ids import hash_api_key
from service.orm import ApiKeyRow, DashboardSessionRow
from tests.live import LiveAPI, serve
from tests.service.dashboard.browser import browser, csrf_token, log_in, log_out

LOGGED_OUT = "log in again"


def session_cookie(response: httpx.Response) -> str:
    (value,) = [
        c.split(";")[0].split("=", 1)[1]
        for c in response.headers.get_list("set-cookie")
        if c.startswith("ftaas_dashboard=")
    ]
    return value


def page_with(api: LiveAPI, cookie: str) -> httpx.Response:
    """The dashboard as an attacker replaying a stolen cookie sees it, from a fresh client."""
    return httpx.get(f"{api.base_url}/dashboard", cookies={"ftaas_dashboard": cookie})


def test_a_cookie_replayed_after_logout_is_refused(api: LiveAPI) -> None:
    key = api.new_key(admin=True)
    with browser(api) as tab:
        cookie = session_cookie(log_in(tab, key))
        assert page_with(api, cookie).status_code == 200  # the cookie alone is the session, until logout
        assert log_out(tab).status_code == 303
    replayed = page_with(api, cookie)
    assert replayed.status_code == 401 and LOGGED_OUT in replayed.text and 'name="api_key"' in replayed.text
    assert any(c.startswith('ftaas_dashboard="";') for c in replayed.headers.get_list("set-cookie"))  # dropped

    with session_scope(api.settings.database_url) as db:
        rows = db.scalars(select(DashboardSessionRow).where(DashboardSessionRow.key_hash == hash_api_key(key))).all()
        assert [r.revoked_at is not None for r in rows] == [True]
        assert cookie not in {rows[0].token_hash, rows[0].key_hash}  # a DB dump holds no usable cookie


def test_revoking_or_demoting_the_key_ends_its_sessions_at_once(api: LiveAPI) -> None:
    revoked, demoted = api.new_key(admin=True), api.new_key(admin=True)
    with browser(api) as a, browser(api) as b:
        cookies = {revoked: session_cookie(log_in(a, revoked)), demoted: session_cookie(log_in(b, demoted))}
    with session_scope(api.settings.database_url) as db:
        db.execute(
            update(ApiKeyRow).where(ApiKeyRow.key_hash == hash_api_key(revoked)).values(revoked_at=int(time.time()))
        )
        db.execute(update(ApiKeyRow).where(ApiKeyRow.key_hash == hash_api_key(demoted)).values(is_admin=False))
    for cookie in cookies.values():
        refused = page_with(api, cookie)
        assert refused.status_code == 401 and LOGGED_OUT in refused.text


def test_a_cookie_cannot_be_forged_from_an_admin_key_hash(api: LiveAPI) -> None:
    """The old cookie was key_hash.expiry.HMAC(FTAAS_SECRET_KEY): with the default secret anyone who had read a key
    hash could mint one. Now only a token the server issued, and still holds, opens the page."""
    key_hash = hash_api_key(api.new_key(admin=True))
    payload = f"{key_hash}.{int(time.time()) + 3600}"
    mac_key = hashlib.sha256(b"ftaas-dashboard-session:" + api.settings.secret_key.encode()).digest()
    old_style = f"{payload}.{hmac.new(mac_key, payload.encode(), hashlib.sha256).hexdigest()}"
    for forged in (old_style, key_hash, hashlib.sha256(key_hash.encode()).hexdigest()):
        assert page_with(api, forged).status_code == 401


def test_a_login_without_our_origin_is_refused(api: LiveAPI) -> None:
    key = api.new_key(admin=True)
    foreign = ("https://evil.example", "null", f"{api.base_url}.evil.example", api.base_url.replace("http:", "https:"))
    with browser(api) as tab:
        form = {"api_key": key, "csrf_token": csrf_token(tab.get("/dashboard"))}
        for origin in foreign:
            refused = tab.post("/dashboard/login", data=form, headers={"Origin": origin})
            assert refused.status_code == 403 and "nothing was done" in refused.text, origin
        assert "ftaas_dashboard" not in tab.cookies
    with httpx.Client(base_url=api.base_url) as bare:  # no Origin header: the Referer decides, and none is refused
        form = {"api_key": key, "csrf_token": csrf_token(bare.get("/dashboard"))}
        assert bare.post("/dashboard/login", data=form).status_code == 403
        evil = bare.post("/dashboard/login", data=form, headers={"Referer": "https://evil.example/dashboard"})
        assert evil.status_code == 403
        ours = bare.post("/dashboard/login", data=form, headers={"Referer": f"{api.base_url}/dashboard"})
        assert ours.status_code == 303


def test_the_public_url_is_an_allowed_origin(api: LiveAPI) -> None:
    """Behind a proxy the browser's origin is FTAAS_PUBLIC_URL, not the host uvicorn sees."""
    with httpx.Client(base_url=api.base_url, headers={"Origin": api.settings.public_url}) as tab:
        assert api.settings.public_url != api.base_url
        assert log_in(tab, api.new_key(admin=True)).status_code == 303


def test_posts_without_the_pages_csrf_token_are_refused(api: LiveAPI) -> None:
    key = api.new_key(admin=True)
    with browser(api) as tab, browser(api) as other:
        mine, theirs = csrf_token(tab.get("/dashboard")), csrf_token(other.get("/dashboard"))
        for token in (None, "", theirs, mine[:-1] + ("0" if mine[-1] != "0" else "1")):
            data = {"api_key": key} if token is None else {"api_key": key, "csrf_token": token}
            assert tab.post("/dashboard/login", data=data).status_code == 403, token
        assert "ftaas_dashboard" not in tab.cookies
        tab.cookies.delete("ftaas_dashboard_form")  # the token alone, without the cookie it was made for
        assert tab.post("/dashboard/login", data={"api_key": key, "csrf_token": mine}).status_code == 403

        assert log_in(tab, key).status_code == 303 and log_in(other, key).status_code == 303
        for token in (None, csrf_token(other.get("/dashboard"))):  # no token, or another session's
            data = {} if token is None else {"csrf_token": token}
            assert tab.post("/dashboard/logout", data=data).status_code == 403
        data = {"csrf_token": csrf_token(tab.get("/dashboard"))}
        assert tab.post("/dashboard/logout", data=data, headers={"Origin": "https://evil.example"}).status_code == 403
        still = tab.get("/dashboard")
        assert still.status_code == 200 and "Log out" in still.text  # nothing was logged out


def test_a_new_login_ends_the_session_it_replaces(api: LiveAPI) -> None:
    """Two tabs opened the login form; the second submit replaces the first session instead of adding one."""
    key = api.new_key(admin=True)
    with browser(api) as tab:
        form = {"api_key": key, "csrf_token": csrf_token(tab.get("/dashboard"))}
        first = session_cookie(tab.post("/dashboard/login", data=form))
        second = session_cookie(tab.post("/dashboard/login", data=form))
        assert first != second
    assert page_with(api, first).status_code == 401 and page_with(api, second).status_code == 200


def test_the_login_page_warns_about_a_placeholder_secret(api: LiveAPI) -> None:
    assert api.settings.env == "dev" and api.settings.secret_key == "dev"
    assert "placeholder FTAAS_SECRET_KEY" in httpx.get(f"{api.base_url}/dashboard").text


@pytest.fixture
def https_api(api: LiveAPI) -> Iterator[LiveAPI]:
    """The same stack with an https public URL and a real secret, as a production deployment behind a proxy."""
    settings = api.settings.model_copy(update={"public_url": "https://ftaas.example", "secret_key": "s" * 40})
    base_url, server, thread = serve(settings)
    yield LiveAPI(api.backend, base_url, settings, api.store, api.model_dir)
    server.should_exit = True
    thread.join(10)


def test_cookies_are_secure_when_the_public_url_is_https(https_api: LiveAPI) -> None:
    with httpx.Client(base_url=https_api.base_url, headers={"Origin": "https://ftaas.example"}) as tab:
        form = tab.get("/dashboard")
        assert "placeholder" not in form.text
        # httpx, like a browser, keeps Secure cookies off plain http; the proxy would have spoken https
        nonce = form.cookies["ftaas_dashboard_form"]
        login = tab.post(
            "/dashboard/login",
            data={"api_key": https_api.new_key(admin=True), "csrf_token": csrf_token(form)},
            headers={"Cookie": f"ftaas_dashboard_form={nonce}"},
        )
    assert login.status_code == 303
    cookies = login.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("ftaas_dashboard="))
    assert {"Secure", "HttpOnly", "SameSite=strict", "Path=/dashboard"} <= {p.strip() for p in session.split(";")}
    assert all("Secure" in c for c in [*cookies, *form.headers.get_list("set-cookie")])


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["up", "--port", "0"]])
def test_serve_and_up_refuse_a_placeholder_secret_outside_dev(command: list[str], tmp_path: Path) -> None:
    for secret in ("dev", "change-me", ""):
        env = {**os.environ, "FTAAS_ENV": "prod", "FTAAS_SECRET_KEY": secret, "FTAAS_HOME": str(tmp_path)}
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", *command], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode != 0 and "FTAAS_SECRET_KEY must be set to a real secret" in done.stderr, done.stderr
    assert not (tmp_path / "ftaas.db").exists()  # refused before anything was created


def test_placeholder_secret_gives_no_sessions_unless_dev_mode_was_set_on_purpose(api: LiveAPI) -> None:
    # Every setting as the shared server's, but FTAAS_ENV left at its default rather than set.
    implicit = type(api.settings)(**{k: v for k, v in api.settings.model_dump().items() if k != "env"})
    assert implicit.env == "dev" and implicit.secret_key == "dev"
    base_url, server, thread = serve(implicit)
    try:
        client = httpx.Client(base_url=base_url, headers={"Origin": base_url})
        form = client.get("/dashboard")
        r = client.post("/dashboard/login", data={"api_key": api.new_key(admin=True), "csrf_token": csrf_token(form)})
        assert r.status_code == 403 and "FTAAS_ENV=dev was not set explicitly" in r.text
        assert "ftaas_dashboard=" not in r.headers.get("set-cookie", "")
    finally:
        server.should_exit = True
        thread.join(10)
    # The shared server sets env=dev explicitly (as `ftaas up` does): the same login works there.
    with browser(api) as ok:
        assert log_in(ok, api.new_key(admin=True)).status_code == 303
