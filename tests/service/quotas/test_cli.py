"""`ftaas quotas set|show|reset` writes the same overrides the admin API serves."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.live import LiveAPI
from tests.service.test_cli import run


def test_cli_sets_shows_and_resets_an_org_quota(api: LiveAPI) -> None:
    org = f"org-cli-{uuid.uuid4().hex[:8]}"
    api.new_key(org)
    env = {"FTAAS_DATABASE_URL": api.settings.database_url, "FTAAS_QUOTA_QUEUED_JOBS": "7"}
    shown = json.loads(run(["quotas", "set", org, "--running-jobs", "2", "--requests-per-minute", "50"], env).stdout)
    assert shown["overrides"] == {
        "running_jobs": 2, "queued_jobs": None, "upload_bytes_per_day": None, "requests_per_minute": 50
    }  # fmt: skip
    assert shown["limits"]["queued_jobs"] == 7  # the provider default where there is no override
    # A second `set` keeps the overrides it doesn't name; `default` drops one.
    run(["quotas", "set", org, "--running-jobs", "default", "--upload-bytes-per-day", "1000"], env)
    shown = json.loads(run(["quotas", "show", org], env).stdout)
    assert shown["overrides"]["running_jobs"] is None and shown["overrides"]["upload_bytes_per_day"] == 1000
    admin = {"Authorization": f"Bearer {api.new_key(admin=True)}"}
    served = httpx.get(f"{api.v1}/admin/orgs/{shown['org_id']}/quotas", headers=admin).json()
    assert served["overrides"] == shown["overrides"], served
    missing = run(["quotas", "show", "org-nope"], env, check=False)
    assert missing.returncode == 2 and "No such organization" in missing.stderr
