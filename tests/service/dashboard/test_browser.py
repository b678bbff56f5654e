"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright, against a live server whose
real `ftaas worker` trained a tiny job on a file with a `<script>` line.

Each test gets a fresh browser context (a fresh profile) that ignores the page's Content-Security-Policy: the CSP
would stop an injected script on its own, so only with it off does "the line shows as text and does not run" test
the escaping. axe-core (npm, scripts/ensure-axe-core) checks every page for serious accessibility violations.
Screenshots go to the test's tmp_path, and also to $FTAAS_TEST_SCREENSHOTS when set (for the README's picture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from service.config import Settings
from service.migrate import upgrade
from tests.live import LiveAPI, WorkerProcess, serve, settings_env, wait_for
from tests.service.dashboard.reports import SCRIPT, SCRIPT_LINE, STEP_METRICS, finish_alignment, training_lines
from tests.service.helpers import jsonl

BASE = "tiny-aligned"
ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Cockpit:
    api: LiveAPI
    client: openai.OpenAI
    job_id: str  # succeeded: trained and evaluated by the worker
    worker: WorkerProcess


@pytest.fixture(scope="module")
def cockpit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cockpit]:
    from worker.datasets.assets import tiny_model_dir

    model = tiny_model_dir(tmp_path_factory.mktemp("tiny"))
    home = tmp_path_factory.mktemp("home-browser")
    settings = Settings(env="dev", home=home, broker_url="filesystem://", lease_seconds=3.0, checkpoint_every=2,
                        metrics_every=1, max_seq_len=64, eval_harmful_prompts=4, eval_max_new_tokens=8, eval_fa_max=4)
    upgrade(settings.database_url)
    base_url, server, thread = serve(settings)
    api = LiveAPI("embedded", base_url, settings, server.config.app.state.store, model)
    api.register_base(BASE)
    client = api.client(api.new_key(f"org-{uuid.uuid4().hex[:8]}"))
    worker = WorkerProcess(settings_env(settings, home=home), tmp_path_factory.mktemp("logs") / "worker.log")
    try:
        train = client.files.create(file=("train.jsonl", ("\n".join(training_lines()) + "\n").encode()),
                                    purpose="fine-tune")  # fmt: skip
        valid = client.files.create(file=("valid.jsonl", jsonl(10, start=50)), purpose="fine-tune")
        # A validation file keeps every training line in training (no held-out split), so the script line is
        # among the report's most down-weighted lines of this 12-line file.
        job = client.fine_tuning.jobs.create(model=BASE, training_file=train.id, validation_file=valid.id,
                                             hyperparameters={"n_epochs": 2, "batch_size": 4})  # fmt: skip
        done = lambda: client.fine_tuning.jobs.retrieve(job.id).status in ("succeeded", "failed")  # noqa: E731
        try:
            wait_for(done, 420, "the job")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.log.read_text(errors='replace')[-3000:]}") from None
        assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded", worker.log.read_text()[-3000:]
        yield Cockpit(api, client, job.id, worker)
    finally:
        worker.stop()
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def axe_js() -> str:
    done = subprocess.run([str(ROOT / "scripts" / "ensure-axe-core")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip()).read_text()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    context.close()


def log_in(page: Page, cockpit: Cockpit) -> None:
    page.goto(f"{cockpit.api.base_url}/dashboard")
    page.fill("#api_key", cockpit.api.new_key("ops", admin=True))
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{cockpit.api.base_url}/dashboard")
    assert page.locator("button:has-text('Log out')").is_visible()


def assert_accessible(page: Page, axe_js: str) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    page.add_script_tag(content=axe_js)
    violations = page.evaluate(
        """async () => (await axe.run(document)).violations.map(v => ({
             id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))"""
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: {bad}"


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("FTAAS_TEST_SCREENSHOTS"):
        out = Path(os.environ["FTAAS_TEST_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, out / name)


def widest(page: Page) -> list[str]:
    """The elements wider than the viewport, for a failure message."""
    return page.evaluate(
        """() => [...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right >
             window.innerWidth + 1).slice(0, 5).map(e => e.tagName + "." + e.className)"""
    )


def charts_drawn(page: Page) -> dict[str, int]:
    """Each chart's title and how many data marks its SVG holds."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll("figure.chart")].map(f =>
             [f.querySelector("figcaption b").textContent, f.querySelectorAll("svg .mark").length]))"""
    )


def test_log_in_read_a_finished_job_and_log_out(cockpit: Cockpit, page: Page, axe_js: str, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{cockpit.api.base_url}/dashboard")
    assert_accessible(page, axe_js)
    log_in(page, cockpit)
    assert charts_drawn(page)["Jobs by status"] >= 1
    shoot(page, tmp_path, "overview.png")
    assert_accessible(page, axe_js)

    page.click(f"a:has-text('{cockpit.job_id}')")
    page.wait_for_url(f"**/dashboard/jobs/{cockpit.job_id}")
    assert page.locator("#status").inner_text() == "succeeded"
    drawn = charts_drawn(page)
    for title in ("Timeline", "Loss", "Harmful score and accuracy against the base",
                  "Training lines by relative Antibody weight", "Antibody weights in each batch",
                  "Fraction of the batch with r < 0"):  # fmt: skip
        assert drawn.get(title, 0) > 0, drawn
    loss = page.locator("figure.chart polyline.mark[data-series='train (Antibody-weighted)']")
    assert int(loss.get_attribute("data-points") or 0) == 6  # 12 lines / batch 4 × 2 epochs, every step
    box = loss.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 0  # it is really on screen
    assert page.locator("#gate .badge").inner_text() == "passed"

    preview = page.locator("#attenuation td.preview", has_text=SCRIPT)
    assert preview.count() == 1  # the line's text shows literally...
    assert page.locator("#attenuation script").count() == 0 and page.evaluate("window.__pwned") is None
    assert dialogs == []  # ...and nothing of it ran
    shoot(page, tmp_path, "job.png")
    assert_accessible(page, axe_js)

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the page reflows instead of overflowing
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), widest(page)
    shoot(page, tmp_path, "job-narrow.png")
    page.set_viewport_size({"width": 1280, "height": 900})

    line = page.locator(f"#attenuation a[href$='/lines/{SCRIPT_LINE}']")
    line.click()
    page.wait_for_url(f"**/lines/{SCRIPT_LINE}")
    assert page.locator("body").inner_text().strip() == training_lines()[SCRIPT_LINE - 1]
    assert page.evaluate("window.__pwned") is None and dialogs == []
    page.go_back()

    page.click("button:has-text('Log out')")
    page.wait_for_selector("#api_key")
    page.goto(f"{cockpit.api.base_url}/dashboard/jobs/{cockpit.job_id}")
    assert page.locator("#api_key").is_visible() and cockpit.job_id not in page.content()


def test_cancel_a_running_job_from_its_page(cockpit: Cockpit, page: Page, axe_js: str, tmp_path: Path) -> None:
    client = cockpit.client
    train = client.files.create(file=("long.jsonl", jsonl(24)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train.id,
                                         hyperparameters={"n_epochs": 50, "batch_size": 4})  # fmt: skip
    wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).status == "running", 120, "the job to start")
    log_in(page, cockpit)
    page.goto(f"{cockpit.api.base_url}/dashboard/jobs/{job.id}")
    assert page.locator("#status").inner_text() == "running"
    page.click("#cancel")
    page.wait_for_url(f"**/dashboard/jobs/{job.id}")
    assert page.locator("#cancel").count() == 0  # requested: the worker stops at its next step
    # the page follows the job by itself (it re-renders every few seconds until the job ends): no reload
    page.locator("#status", has_text="cancelled").wait_for(timeout=60_000)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    assert page.get_by_text("Cancellation requested").count() >= 1
    shoot(page, tmp_path, "cancelled.png")
    assert_accessible(page, axe_js)


def test_org_and_alignment_pages_are_accessible_and_fit_a_phone(cockpit: Cockpit, page: Page, axe_js: str,
                                                                tmp_path: Path) -> None:  # fmt: skip
    admin = {"Authorization": f"Bearer {cockpit.api.new_key(admin=True)}"}
    # On a GPU class no worker consumes: it stays queued (the test's worker would otherwise align SmolLM2)
    spec = {"name": f"a-{uuid.uuid4().hex[:6]}", "gpu_class": f"idle{uuid.uuid4().hex[:6]}", "max_steps": 1}
    run = httpx.post(f"{cockpit.api.v1}/admin/base_models/align", json=spec, headers=admin)
    assert run.status_code == 202, run.text
    log_in(page, cockpit)
    page.click(f"a:has-text('{run.json()['name']}')")
    page.wait_for_url(f"**/dashboard/alignments/{run.json()['id']}")
    assert page.locator("#status").inner_text() == "queued"
    assert_accessible(page, axe_js)
    manifest = {"name": spec["name"], "before": {"hs": 40.0}, "after": {"hs": 10.0}, "step_metrics": STEP_METRICS}
    finish_alignment(cockpit.api, run.json()["id"], spec["name"], manifest)
    page.reload()
    assert page.locator("#per-step figure.chart polyline.mark").count() == 9  # λ_t 2 lines, losses 4, cosines 3
    assert_accessible(page, axe_js)

    page.goto(f"{cockpit.api.base_url}/dashboard")
    org = page.locator("#dash td a[href*='/dashboard/orgs/']").first
    org.click()
    page.wait_for_url("**/dashboard/orgs/**")
    page.fill("#q-running_jobs", "3")
    page.click("button:has-text('Save quotas')")
    page.wait_for_url("**/dashboard/orgs/**")
    assert page.locator("#limit-running_jobs").inner_text() == "3"
    assert_accessible(page, axe_js)

    page.set_viewport_size({"width": 390, "height": 844})
    for url in (f"{cockpit.api.base_url}/dashboard", page.url):
        page.goto(url)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (url, widest(page))
    page.goto(f"{cockpit.api.base_url}/dashboard")
    shoot(page, tmp_path, "overview-narrow.png")


def test_with_javascript_off_the_pages_still_log_in_and_draw(cockpit: Cockpit, chromium: Browser) -> None:
    context = chromium.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        log_in(tab, cockpit)  # a plain form POST and a redirect
        tab.goto(f"{cockpit.api.base_url}/dashboard/jobs/{cockpit.job_id}")
        drawn = charts_drawn_static(tab)
        assert drawn["Loss"] >= 3 and drawn["Timeline"] >= 3 and drawn["Training lines by relative Antibody weight"]
        tab.click("a:has-text('Line')")  # sorting is a link, not a script
        tab.wait_for_url("**?sort=line")
        first = tab.locator("#attenuation tbody tr td a").first.inner_text()
        assert first == "1"
    finally:
        context.close()


def charts_drawn_static(page: Page) -> dict[str, int]:
    """charts_drawn without running script in the page: read the served DOM through locators."""
    out = {}
    for figure in page.locator("figure.chart").all():
        out[figure.locator("figcaption b").inner_text()] = figure.locator("svg .mark").count()
    return out
