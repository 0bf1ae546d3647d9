"""The GitHub workflows: valid against GitHub's workflow schema (offline), and doing what
docs/deployment.md says they do."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from digest.config import ScheduleConfig
from digest.config.cron import next_fire_times

WORKFLOWS = Path(__file__).parent.parent / ".github" / "workflows"
DIGEST = WORKFLOWS / "digest.yml"
CI = WORKFLOWS / "ci.yml"


def load(path: Path) -> dict[str, Any]:
    # YAML 1.2 (ruamel's safe loader): `on:` stays the string "on", not True as in YAML 1.1.
    return YAML(typ="safe").load(path.read_text())


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    # --builtin-schema uses the copy vendored in check-jsonschema: no network needed.
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def uses(job: dict[str, Any]) -> list[str]:
    return [s["uses"].split("@")[0] for s in steps(job) if "uses" in s]


def scripts(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


@pytest.mark.parametrize("path", [DIGEST, CI], ids=lambda p: p.name)
def test_workflow_is_valid(path: Path) -> None:
    result = schema_check(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("runs-on:", "run-on:"),  # a typo'd key
        ("workflow_dispatch:", "workflow-dispatch:"),  # an event that does not exist
        ("contents: write", "contents: writable"),  # a value that does not exist
    ],
)
def test_an_invalid_workflow_fails_the_check(tmp_path: Path, old: str, new: str) -> None:
    text = DIGEST.read_text()
    assert old in text
    broken = tmp_path / "digest.yml"
    broken.write_text(text.replace(old, new, 1))
    result = schema_check(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors" in result.stdout + result.stderr


def test_digest_workflow_runs_on_weekday_mornings_and_by_hand() -> None:
    workflow = load(DIGEST)
    crons = [entry["cron"] for entry in workflow["on"]["schedule"]]
    assert "30 6 * * 1-5" in crons
    assert "workflow_dispatch" in workflow["on"]
    # Actions reads crontab weekdays as crontab does, and so does our parser: Monday to Friday.
    fires = next_fire_times(ScheduleConfig(cron=crons[0]), dt.datetime(2026, 6, 1, tzinfo=dt.UTC), 10)
    assert {t.strftime("%a") for t in fires} == {"Mon", "Tue", "Wed", "Thu", "Fri"}


def test_digest_workflow_never_overlaps() -> None:
    concurrency = load(DIGEST)["concurrency"]
    assert concurrency["group"]
    assert concurrency["cancel-in-progress"] is False


def test_digest_workflow_runs_digest_between_restoring_and_saving_state() -> None:
    run = load(DIGEST)["jobs"]["run"]
    names = [s.get("name", s.get("uses", "")) for s in steps(run)]
    restore = names.index("Restore state from the digest-state branch")
    digest = names.index("Run the digest")
    save = names.index("Save state to the digest-state branch")
    assert restore < digest < save
    assert "digest run" in steps(run)[digest]["run"]
    assert "--config digest.toml" in steps(run)[digest]["run"]
    restore_script = steps(run)[restore]["run"]
    assert "git ls-remote --exit-code --heads origin digest-state" in restore_script
    assert "state-branch" in restore_script
    assert "--orphan digest-state" in restore_script  # created when missing
    save_step = steps(run)[save]
    # saved whatever the run did, but never over the real state after a failed restore
    assert save_step["if"].startswith("always()")
    assert "steps.restore.outcome == 'success'" in save_step["if"]
    assert "git push" in save_step["run"]
    assert "secret.key" in save_step["run"]  # the signing key is never committed
    assert run["permissions"]["contents"] == "write"


def test_digest_workflow_installs_with_a_pip_cache() -> None:
    run = load(DIGEST)["jobs"]["run"]
    setup = next(s for s in steps(run) if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["cache"] == "pip"
    assert setup["with"]["cache-dependency-path"] == "pyproject.toml"
    assert "pip install ." in scripts(run)


def test_digest_workflow_takes_secrets_from_repository_secrets() -> None:
    env = next(s for s in steps(load(DIGEST)["jobs"]["run"]) if s.get("name") == "Run the digest")["env"]
    assert env["DIGEST_SMTP__PASSWORD"] == "${{ secrets.DIGEST_SMTP__PASSWORD }}"
    assert env["DIGEST_SECRET"] == "${{ secrets.DIGEST_SECRET }}"
    assert "secrets." not in DIGEST.read_text().split("Run the digest", 1)[0]  # nowhere earlier


def test_digest_workflow_treats_exit_4_as_a_warning() -> None:
    script = next(s for s in steps(load(DIGEST)["jobs"]["run"]) if s.get("name") == "Run the digest")["run"]
    assert "::warning" in script
    assert 'echo "exit_code=$code" >> "$GITHUB_OUTPUT"' in script


def test_digest_workflow_deploys_pages() -> None:
    jobs = load(DIGEST)["jobs"]
    assert "actions/upload-pages-artifact" in uses(jobs["run"])
    upload = next(
        s for s in steps(jobs["run"]) if s.get("uses", "").startswith("actions/upload-pages-artifact@")
    )
    assert upload["with"]["path"] == "public"
    deploy = jobs["deploy-pages"]
    assert deploy["needs"] == "run"
    assert uses(deploy) == ["actions/deploy-pages"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"


def test_digest_workflow_keeps_its_schedule_alive() -> None:
    workflow = load(DIGEST)
    keepalive = workflow["jobs"]["keepalive"]
    monthly = [e["cron"] for e in workflow["on"]["schedule"] if e["cron"] != "30 6 * * 1-5"]
    assert len(monthly) == 1
    assert monthly[0] in keepalive["if"]
    assert monthly[0] in workflow["jobs"]["run"]["if"]  # the digest does not run on that one
    assert "actions/workflows/digest.yml/enable" in scripts(keepalive)
    assert keepalive["permissions"] == {"actions": "write"}


def test_ci_runs_the_tests_and_checks_profiles_on_pull_requests() -> None:
    workflow = load(CI)
    assert "pull_request" in workflow["on"]
    assert "push" in workflow["on"]
    jobs = workflow["jobs"]
    assert "bash .ci/run" in scripts(jobs["test"])
    check = scripts(jobs["profiles"])
    assert 'digest check --config "$config" --subscribers "$subscribers"' in check
    assert "subscribers.example.toml" in check
