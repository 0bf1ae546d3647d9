"""Listings of several arXiv announcement days, made from the real items of one captured day.

`tests/data/arxiv_rss_2024-11-28_all.xml` is one real rss.arxiv.org listing (Thursday 2024-11-28).
A test of skipped days needs several days, and a test of the backfill needs the arXiv API's Atom
responses for them: both are made here from that file's real `<item>`s, copied byte for byte into
a channel whose `pubDate` says another day (`rss_day`), or rendered as API `<entry>`s from what
digest's own RSS parser read of them (`api_page`). See tests/data/PROVENANCE.md.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import sqlite3
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from conftest import ARXIV_ALL
from pytest_httpserver import HTTPServer

from digest.core.models import Paper
from digest.sources import parse_arxiv_rss
from digest.store.codec import unpack_json

_ITEM = re.compile(rb"<item>.*?</item>", re.S)
_PUB_DATE = rb"Thu, 28 Nov 2024 00:00:00 -0500"


@cache
def _feed() -> bytes:
    return ARXIV_ALL.read_bytes()


@cache
def new_items(category: str = "cs.") -> list[bytes]:
    """The real items announced as `new` whose first category starts with `category`, in order."""
    out = []
    for item in _ITEM.findall(_feed()):
        first = re.search(rb"<category>([^<]+)</category>", item)
        if b"<arxiv:announce_type>new<" in item and first and first.group(1).startswith(category.encode()):
            out.append(item)
    return out


def _rfc822(day: dt.date) -> bytes:
    return day.strftime("%a, %d %b %Y 00:00:00 -0500").encode()


def rss_day(day: dt.date, items: list[bytes]) -> bytes:
    """A real rss.arxiv.org channel announcing `items` on `day` (the channel and item dates moved)."""
    feed = _feed()
    head = feed[: feed.index(b"<item>")]
    tail = b"\n  </channel>\n</rss>\n"
    when = _rfc822(day)
    return head.replace(_PUB_DATE, when) + b"".join(i.replace(_PUB_DATE, when) for i in items) + tail


def papers(items: list[bytes]) -> list[Paper]:
    """What digest's RSS parser reads of `items`."""
    return parse_arxiv_rss(rss_day(dt.date(2024, 11, 28), items), "arxiv")


def api_page(items: list[bytes], *, total: int, start: int = 0) -> bytes:
    """An arXiv API (`/api/query`) Atom response listing `items`, of `total` matches from `start`.

    The shape (namespaces, opensearch counts, `<id>` with the version, one `<author>` each, the
    `arxiv:primary_category`) is that of tests/data/arxiv_api_atom.xml, a real API response.
    """
    entries = []
    for paper in papers(items):
        published = (paper.published or dt.datetime(2024, 11, 27, tzinfo=dt.UTC)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        cats = "".join(
            f'\n    <category term={quoteattr(c)} scheme="http://arxiv.org/schemas/atom"/>'
            for c in paper.categories
        )
        authors = "".join(
            f"\n    <author>\n      <name>{escape(a)}</name>\n    </author>" for a in paper.authors
        )
        entries.append(
            f"""  <entry>
    <id>http://arxiv.org/abs/{paper.id}v{paper.version or 1}</id>
    <title>{escape(paper.title)}</title>
    <updated>{published}</updated>
    <link href="https://arxiv.org/abs/{paper.id}v{paper.version or 1}" rel="alternate" type="text/html"/>
    <summary>{escape(paper.abstract)}</summary>{cats}
    <published>{published}</published>
    <arxiv:primary_category term={quoteattr(paper.categories[0] if paper.categories else "cs.LG")}/>{authors}
  </entry>
"""
        )
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">
  <id>https://arxiv.org/api/backfill</id>
  <title>arXiv Query</title>
  <updated>2024-11-28T02:30:47Z</updated>
  <opensearch:itemsPerPage>{len(entries)}</opensearch:itemsPerPage>
  <opensearch:totalResults>{total}</opensearch:totalResults>
  <opensearch:startIndex>{start}</opensearch:startIndex>
{"".join(entries)}</feed>
""".encode()


def ids(items: list[bytes]) -> list[str]:
    return [p.id for p in papers(items)]


# -- a digest set up against a local server: config, profiles, what each reader got -------------
PROFILES = """
[[subscribers]]
email = "grace@example.org"
all = true
max_papers = 100

[[subscribers]]
email = "ada@example.org"
categories = ["cs.DC"]
"""


def write_config(tmp: Path, server: HTTPServer, *, hf: bool = False, fetch: str = "retries = 0") -> Path:
    """digest.toml for an arXiv source (RSS at /rss/cs.CL, API at /api/query) and, with `hf`, a
    Hugging Face one first; the outbox transport; a tiny API delay so the tests stay fast."""
    hf_source = (
        f'[[sources]]\nname = "hf"\nkind = "hf_daily"\nurl = "{server.url_for("/api/daily_papers")}"\n'
    )
    config = tmp / "digest.toml"
    config.write_text(
        f"""
[state]
path = "state/digest.sqlite3"

{hf_source if hf else ""}
[[sources]]
name = "arxiv"
kind = "arxiv_rss"
url = "{server.url_for("/rss/cs.CL")}"
api_url = "{server.url_for("/api/query")}"

[fetch]
api_delay = 0.01
{fetch}

[output]
dir = "public"

[delivery]
transport = "outbox"
"""
    )
    (tmp / "subscribers.toml").write_text(PROFILES)
    return config


def mailed(tmp: Path) -> dict[str, list[set[str]]]:
    """Per reader, the arXiv ids in each email in the outbox (from the links of its text part)."""
    out: dict[str, list[set[str]]] = {}
    for path in sorted((tmp / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        reader = message["To"].addresses[0].addr_spec
        out.setdefault(reader, []).append(set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", text)))
    return out


def sent(tmp: Path) -> dict[str, set[str]]:
    """Per reader, the papers the state records as emailed (the papers of their sent digests)."""
    conn = sqlite3.connect(tmp / "state" / "digest.sqlite3")
    try:
        rows = conn.execute("SELECT email, papers FROM deliveries WHERE status = 'sent'").fetchall()
    finally:
        conn.close()
    out: dict[str, set[str]] = {}
    for reader, papers in rows:
        out.setdefault(reader, set()).update(unpack_json(papers))
    return out


def dc(items: list[bytes]) -> set[str]:
    """The ids of `items` in cs.DC: what ada's profile matches."""
    return {p.id for p in papers(items) if "cs.DC" in p.categories}
