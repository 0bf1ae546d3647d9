"""`digest demo`: the whole pipeline, offline, on a bundled two-day sample of real listings.

The sample (digest/demo_data/) is cut byte for byte from real captured responses: the Hugging
Face Daily Papers list of 2026-06-12 split over two days, and cs.* items of the arXiv RSS feed of
2024-11-28 split likewise (see tests/data/PROVENANCE.md). An in-process HTTP transport answers the
requests the real sources make, so fetching, parsing, the snapshot, the diff, matching, rendering,
the outbox and the site all run exactly as in production; only the network is missing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from digest.config import HF_DAILY_URL, DeliveryConfig, OutputConfig, Settings, SourceConfig, StateConfig
from digest.core.errors import ConfigError
from digest.pipeline import run

ARXIV_URL = "https://rss.arxiv.org/rss/cs.CL+cs.LG+cs.CV+cs.AI+cs.IR"
DAYS = (dt.date(2026, 6, 11), dt.date(2026, 6, 12))
# Where the demo's site is served, for the emails' and feeds' absolute links (RSS requires a
# channel link): `python3 -m http.server --directory OUT/public 8000` serves it there.
DEMO_BASE_URL = "http://localhost:8000/"


# The sample, read as package data. subscribers.example.toml lives at the top of the repository,
# where users look for it; digest/demo_data/ links to it, and the wheel carries the file itself.
SAMPLE = resources.files("digest") / "demo_data"


def example_subscribers() -> Path:
    """subscribers.example.toml, the demo's profiles (a real file: the pipeline reads it by path)."""
    return Path(str(SAMPLE / "subscribers.example.toml"))


class SampleTransport(httpx.BaseTransport):
    """Answers the sample sources' URLs from the bundled files, as the real services would."""

    def __init__(self, day_index: int) -> None:
        self.day_index = day_index

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url.copy_with(query=None))
        if url == HF_DAILY_URL:
            date = request.url.params.get("date", "")
            page = int(request.url.params.get("p", "0"))
            sample = SAMPLE / f"hf_{date}.json"
            body = sample.read_bytes() if sample.is_file() and page == 0 else b"[]"
            return httpx.Response(200, content=body, headers={"content-type": "application/json"})
        if url == ARXIV_URL:
            body = (SAMPLE / f"arxiv_day{self.day_index + 1}.xml").read_bytes()
            return httpx.Response(200, content=body, headers={"content-type": "application/rss+xml"})
        return httpx.Response(404, content=b"not in the demo sample")


class _DemoSettings(Settings):
    """Settings from the demo's own values only: the demo is offline and self-contained, so
    DIGEST_* variables, a .env or a secrets folder meant for the real digest do not reach it."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(out: Path, base_url: str = DEMO_BASE_URL) -> Settings:
    try:
        output = OutputConfig(dir=out / "public", base_url=base_url)
    except ValidationError:
        raise ConfigError(
            f"--base-url {base_url!r}: not an http(s) URL; write it as http://localhost:8000/"
        ) from None
    return _DemoSettings(
        state=StateConfig(path=out / "state" / "digest.sqlite3"),
        sources=[
            SourceConfig(name="hf", kind="hf_daily", url=HF_DAILY_URL),
            SourceConfig(name="arxiv", kind="arxiv_rss", url=ARXIV_URL),
        ],
        delivery=DeliveryConfig(transport="outbox", outbox=out / "outbox"),
        output=output,
    )


def run_demo(out: Path, *, base_url: str = DEMO_BASE_URL) -> Iterator[str]:
    """Day 1, then day 2, so the diff is real; yields lines for the user. `base_url` is where the
    site (`out`/public) will be served: a ConfigError when it is not an http(s) URL."""
    out = out.resolve()
    settings = demo_settings(out, base_url)
    subscribers = example_subscribers()
    yield f"digest demo: two days of real listings, the profiles in {subscribers.name}, everything under {out}"
    if settings.state.exists():  # a run of a date it sent sends nothing again: say why it is quiet
        yield f"(an earlier demo's state is in {out}: what it sent is not sent again; delete it or use --out to start over)"
    for index, day in enumerate(DAYS):
        now = dt.datetime.combine(day, dt.time(7, 0), tzinfo=dt.UTC)
        summary = run(
            settings,
            subscribers_path=subscribers,
            date=day,
            now=now,
            transport=SampleTransport(index),
        )
        yield (
            f"day {index + 1} ({day}): {summary.new} new papers, {summary.updates} updates, "
            f"{summary.sent} digests written, {summary.skipped} skipped"
        )
    emails = sorted((out / "outbox").glob("*.eml"))
    yield ""
    yield f"emails:   {out / 'outbox'} ({len(emails)} .eml files; open one in your mail program)"
    yield f"feed:     {out / 'public' / 'feed.xml'}"
    yield f"archive:  {out / 'public' / 'index.html'}"
    yield f"site:     python3 -m http.server --directory {out / 'public'} {_port(settings)}, then {settings.output.base_url}"
    yield ""
    yield "Next: copy digest.example.toml to digest.toml and subscribers.example.toml to subscribers.toml,"
    yield "point [[sources]] at real feeds and [smtp] at your mail server (password in DIGEST_SMTP__PASSWORD),"
    yield "then `digest check` and `digest run`. See docs/reference.md."


def _port(settings: Settings) -> int:
    parts = urlsplit(settings.output.base_url or DEMO_BASE_URL)
    return parts.port or (443 if parts.scheme == "https" else 80)
