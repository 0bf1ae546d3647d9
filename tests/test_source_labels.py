"""What readers see as a paper's source: `[[sources]] display_name`, else the kind's label.

The label travels on the paper (`Paper.source_labels`, set by `fetch_listing`), so render needs no
lookup of configured names: a source named "hugging" still shows as "Hugging Face".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from digest.config import FetchConfig, SourceConfig
from digest.config.settings import load_settings
from digest.core.errors import ConfigError
from digest.core.models import Paper
from digest.render.views import Views
from digest.sources import Fetcher, fetch_listing

DATA = Path(__file__).parent / "data"
NOW = dt.datetime(2026, 6, 12, 12, 0, tzinfo=dt.UTC)


def _listing(httpserver: HTTPServer, **config: object) -> tuple[Paper, ...]:
    httpserver.expect_request("/api/daily_papers").respond_with_data(
        (DATA / "hf_daily_papers_2026-06-12.json").read_bytes(), content_type="application/json"
    )
    source = SourceConfig(kind="hf_daily", url=httpserver.url_for("/api/daily_papers"), days=1, **config)  # type: ignore[arg-type]
    with Fetcher(FetchConfig(timeout=2, retries=0)) as fetcher:
        listing, _ = fetch_listing(source, fetcher, NOW.date(), now=NOW)
    return listing.papers


@pytest.mark.parametrize(
    ("config", "shown"),
    [
        ({"name": "hugging"}, "Hugging Face"),
        ({"name": "hf"}, "Hugging Face"),
        ({"name": "hugging", "display_name": "HF <Daily>"}, "HF <Daily>"),
    ],
)
def test_the_view_shows_the_display_name(httpserver: HTTPServer, config: dict[str, str], shown: str) -> None:
    paper = _listing(httpserver, **config)[0]
    view = Views()(paper)
    assert view.sources == (shown,) and view.facts[0] == shown
    assert paper.sources == (config["name"],)  # subscribers still pick sources by name


def test_a_paper_from_two_sources_shows_both_labels_once() -> None:
    a = Paper(id="1", title="t", sources=("cs",), source_labels=("arXiv",))
    b = Paper(id="1", title="t", sources=("math",), source_labels=("arXiv",))
    c = Paper(id="1", title="t", sources=("hugging",), source_labels=("Hugging Face",))
    merged = a.merge(b).merge(c)
    assert Views()(merged).sources == ("arXiv", "Hugging Face")
    # What the store keeps brings the labels back.
    assert Paper.from_json(merged.to_json()) == merged


def test_a_paper_without_labels_falls_back_to_the_known_names() -> None:
    # Snapshots stored before display names existed carry no labels.
    old = Paper(id="1", title="t", sources=("hf", "arxiv", "mine"))
    assert Views()(old).sources == ("Hugging Face", "arXiv", "mine")


def test_a_blank_display_name_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text('[[sources]]\nkind = "feed"\nurl = "https://example.org/rss"\ndisplay_name = "  "\n')
    with pytest.raises(ConfigError, match="display_name"):
        load_settings(path)
