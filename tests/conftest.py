"""Fixtures shared by every test module, and the test tiers. Module-specific fixtures live in
their test files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PgServer

DATA = Path(__file__).parent / "data"
ARXIV_ALL = DATA / "arxiv_rss_2024-11-28_all.xml"
ARXIV_TRIMMED = DATA / "arxiv_rss_2024-11-28_trimmed.xml"
HF_DAY = DATA / "hf_daily_papers_2026-06-12.json"

# Every test is in one tier (registered in pyproject.toml), so `pytest -m unit` is the quick
# loop and `-m "not e2e"` everything short of processes and browsers:
#   unit         pure and in-process: no server, no database, no subprocess
#   integration  real local servers (HTTP, SMTP), SQLite, the CLI run in-process, APScheduler
#   e2e          a real `digest` process (killed, signalled), a browser, other tools' processes
# A module's tier is set here, by file name, unless the test or module carries a tier mark of
# its own (a module mostly of one tier marks its odd tests). A module not listed here is
# `integration` until someone looks: it must not slow down `-m unit` by accident.
TIERS = ("unit", "integration", "e2e")
MODULE_TIERS = {
    "test_archive.py": "unit",
    "test_config.py": "unit",
    "test_docs.py": "unit",
    "test_feeds.py": "unit",
    "test_files.py": "unit",
    "test_match.py": "unit",
    "test_message.py": "unit",
    "test_plan.py": "unit",
    "test_cadence.py": "unit",
    "test_profiles.py": "unit",
    "test_query.py": "unit",
    "test_speed.py": "unit",
    "test_summaries_prompt.py": "unit",
    "test_render_email.py": "unit",
    "test_text_layout.py": "unit",
    "test_schedule.py": "unit",
    "test_sources.py": "unit",
    "test_feeds_corpus.py": "unit",
    "test_diff.py": "integration",
    "test_fetch.py": "integration",
    "test_run.py": "integration",
    "test_sender.py": "integration",
    "test_smtp.py": "integration",
    "test_store.py": "integration",
    "test_architecture.py": "e2e",
    "test_bench_scenario.py": "e2e",
    "test_browser.py": "e2e",
    "test_validators.py": "e2e",
    "test_workflows.py": "e2e",
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the marks added here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if len(tiers) > 1:
            raise pytest.UsageError(f"{item.nodeid}: in more than one tier: {sorted(tiers)}")
        if not tiers:
            item.add_marker(MODULE_TIERS.get(item.path.name, "integration"))
    if os.environ.get("DIGEST_TEST_STATE") == "postgres":  # the PostgreSQL pass (_state_on_postgres)
        items[:] = [item for item in items if item.get_closest_marker("sqlite_only") is None]


@pytest.fixture
def data_dir() -> Path:
    return DATA


# -- PostgreSQL ---------------------------------------------------------------------------------
# One real server per test process (tests/pg_server.py), a fresh database per test that asks.
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with PgServer() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, empty database on the test server (`[state] url`)."""
    return pg_server.new_database()


@pytest.fixture(autouse=True)
def _state_on_postgres(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With DIGEST_TEST_STATE=postgres, every state a test opens by path in this process is a
    PostgreSQL database instead (one per path): the store's tests run again on the server."""
    if os.environ.get("DIGEST_TEST_STATE") != "postgres":
        return
    from digest.store import Store, postgres_store
    from digest.store.sqlite import SqliteState

    server: PgServer = request.getfixturevalue("pg_server")
    databases: dict[Path, str] = {}

    def open_on_postgres(cls: type, path: Path, *, create: bool = True, busy_timeout: float = 30.0) -> Store:
        path = Path(path)
        if path not in databases:
            if not create and not path.exists():
                return SqliteState.__dict__["open"].__func__(Store, path, create=False)  # the file's error
            databases[path] = server.new_database()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()  # so that "is there a state yet" checks see one
        return postgres_store().connect(databases[path], create=create, busy_timeout=busy_timeout)

    monkeypatch.setattr(Store, "open", classmethod(open_on_postgres))
