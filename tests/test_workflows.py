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


@pytest.mark.parametrize(
    ("code", "fail_on_partial", "step_exit", "says"),
    [
        (0, "false", 0, ""),
        (4, "false", 0, "::warning"),
        (4, "true", 4, "::warning"),
        (5, "false", 0, "::warning title=A source was stale"),
        (3, "false", 3, "::error"),
        (1, "false", 1, "::error"),
    ],
)
def test_digest_workflow_exit_codes_run_as_documented(code: int, fail_on_partial: str, step_exit: int, says: str) -> None:
    # the step's own `case` on digest's exit code, run by bash as the runner would
    script = next(s for s in steps(load(DIGEST)["jobs"]["run"]) if s.get("name") == "Run the digest")["run"]
    case = script[script.index('case "$code" in') : script.index("esac") + len("esac")]
    done = subprocess.run(
        ["bash", "-c", f"code={code}; FAIL_ON_PARTIAL={fail_on_partial}\n{case}"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == step_exit, done.stdout + done.stderr
    assert says in done.stdout


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


# -- the state branch stays one commit (issue 15) ----------------------------------------------------
def _step(name: str) -> dict[str, Any]:
    return next(s for s in steps(load(DIGEST)["jobs"]["run"]) if s.get("name") == name)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    full = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", **env}  # fmt: skip
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=full, capture_output=True, text=True, timeout=60
    )


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _one_run(
    tmp: Path, origin: Path, number: int, content: str, *, race: bool = False
) -> subprocess.CompletedProcess[str]:
    """A runner's restore + (the run writes `content`) + save, with the workflow's own scripts."""
    work = tmp / f"runner{number}"
    _git(tmp, "clone", "-q", str(origin), str(work))
    out = tmp / f"out{number}"
    out.write_text("")
    restored = _bash(
        _step("Restore state from the digest-state branch")["run"], work, {"GITHUB_OUTPUT": str(out)}
    )
    assert restored.returncode == 0, restored.stderr
    (work / "state" / "digest.sqlite3").write_bytes(content.encode())
    (work / "state" / "secret.key").write_text("never committed")
    if race:  # someone else moved the branch after this runner restored it
        other = tmp / f"other{number}"
        _git(tmp, "clone", "-q", "--branch", "digest-state", str(origin), str(other))
        (other / "x").write_text("x")
        _git(other, "add", "x")
        _git(other, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "moved")
        _git(other, "push", "-q", "origin", "digest-state")
    env = {"EXIT_CODE": "0", "PREVIOUS": _outputs(out).get("previous", ""), "GITHUB_RUN_ID": str(number)}
    return _bash(_step("Save state to the digest-state branch")["run"], work, env)


def test_digest_workflow_keeps_the_state_branch_to_one_commit(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", str(origin))
    seed = tmp_path / "seed"
    _git(tmp_path, "clone", "-q", str(origin), str(seed))
    (seed / "digest.toml").write_text("")
    _git(seed, "add", "digest.toml")
    _git(seed, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "repo")
    _git(seed, "push", "-q", "origin", "HEAD:main")
    for number in (1, 2, 3):
        saved = _one_run(tmp_path, origin, number, f"state {number}")
        assert saved.returncode == 0, saved.stdout + saved.stderr
        assert _git(origin, "rev-list", "--count", "digest-state") == "1"  # never a history
        assert _git(origin, "show", "digest-state:state/digest.sqlite3") == f"state {number}"
        files = _git(origin, "ls-tree", "-r", "--name-only", "digest-state").split()
        assert files == ["state/digest.sqlite3"]  # no signing key, no lock
    # a branch that moved since the restore is not overwritten
    refused = _one_run(tmp_path, origin, 4, "state 4", race=True)
    assert refused.returncode != 0
    assert _git(origin, "show", "digest-state:x") == "x"


def test_digest_workflow_keeps_the_previous_state_as_an_artifact() -> None:
    names = [s.get("name") for s in steps(load(DIGEST)["jobs"]["run"])]
    keep = _step("Keep the state this run starts from")
    assert names.index("Restore state from the digest-state branch") < names.index(keep["name"])
    assert names.index(keep["name"]) < names.index("Run the digest")
    assert keep["uses"].startswith("actions/upload-artifact@")
    assert keep["with"]["retention-days"] == 30
    assert "!state/secret.key" in keep["with"]["path"]
    assert "Recovering an older state" in DIGEST.read_text()
    assert (
        "Recovering an older state" in (Path(__file__).parent.parent / "docs" / "deployment.md").read_text()
    )
