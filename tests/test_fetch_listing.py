"""`digest fetch` piped into another program: a line per paper, whatever the title's length (a
table laid out at 80 columns put one title word on each line)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ARXIV_TRIMMED
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from digest.cli import app
from digest.sources.arxiv import parse_arxiv_rss


def test_piped_fetch_lists_a_line_per_paper(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("DIGEST_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    httpserver.expect_request("/rss/cs.CL").respond_with_data(
        ARXIV_TRIMMED.read_bytes(), content_type="application/rss+xml"
    )
    config = tmp_path / "digest.toml"
    config.write_text(
        f'[state]\npath = "{tmp_path / "state.sqlite3"}"\n\n'
        f'[[sources]]\nname = "arxiv"\nkind = "arxiv_rss"\nurl = "{httpserver.url_for("/rss/cs.CL")}"\n'
    )
    result = CliRunner().invoke(app, ["fetch", "--config", str(config), "--date", "2024-11-28"])
    assert result.exit_code == 0, result.output
    papers = [p for p in parse_arxiv_rss(ARXIV_TRIMMED.read_bytes(), "arxiv") if not p.is_replacement]
    lines = result.stdout.splitlines()
    assert lines[0] == f"{len(papers)} new papers on 2024-11-28"
    rows = [line.split("\t") for line in lines[1 : 1 + len(papers)]]
    assert [r[0] for r in rows] == [p.id for p in papers]
    assert all(r[1] == "arxiv" and len(r) == 3 for r in rows)
    assert [r[2] for r in rows] == [" ".join(p.title.split()) for p in papers]  # each title whole
    assert max(len(r[2]) for r in rows) > 80  # the test's point: long titles stay on one line
