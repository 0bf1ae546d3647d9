"""Every feed in tests/data/feeds/ read as a new user's `kind = "feed"` source would read it.

The files are real feeds other feed projects keep as test data (journals' and bioRxiv's RDF, blogs,
news, podcasts, Atom with XHTML, RSS 1.0 and 2.0, JSON Feed, odd encodings), copied byte for byte;
tests/data/feeds/PROVENANCE.md names the repository, commit, path and licence of each. What the
parser gives is checked against feedparser itself (or, for a JSON Feed, against the JSON), never
against numbers written here: every entry with a link or an id and something to list it under is
a paper, each leftover is counted, and what readers see holds no markup, entity or mojibake that
the feed did not itself escape as text.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import feedparser
import pytest

from digest.config import SourceConfig
from digest.core.errors import ParseError
from digest.matching.terms import author_name, authors_match
from digest.sources import SOURCES, Parsed
from digest.sources.entries import entry_text, load_feed
from digest.sources.text import split_authors, strip_html

FEEDS = Path(__file__).parent / "data" / "feeds"
FILES = sorted(p.name for p in FEEDS.iterdir() if p.name != "PROVENANCE.md")
# The captures that are broken as published, and what their one-line error must name.
BROKEN = {
    "feedjira-InvalidDateFormat.xml": "ends before it is complete",  # its `</rss>` is missing
    # an `<itunes:category>` never closed: the items sit inside it, `</channel>` mismatches
    "feedjira-ITunesWithSingleQuotedAttributes.xml": "not well-formed XML (line 65, column 2: mismatched tag)",
    "rsparser-ScriptingNews.json": "not a JSON Feed",  # RSS 2.0 mapped to JSON by hand
}
READABLE = [name for name in FILES if name not in BROKEN]
XML = [name for name in READABLE if not name.endswith(".json")]

TAG_RE = re.compile(r"</?([A-Za-z][\w:.-]*)(?:\s[^<>]*)?/?>")
ENTITY_RE = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
# UTF-8 read as Latin-1 or cp1252 ("Ã©", "â€™"), C1 controls, the replacement character.
MOJIBAKE_RE = re.compile(r"[ÃÂ][\u0080-\u00bf\u2018-\u203a]|â€|[\u0080-\u009f]|\ufffd")
EMAIL_RE = re.compile(r"\S+@\S+\.\S+")


def _parse(name: str, body: bytes | None = None) -> Parsed:
    source = SOURCES["feed"](SourceConfig(name=name, kind="feed", url="https://example.org/feed"))
    return source.parse((FEEDS / name).read_bytes() if body is None else body)


def _has_text(*values: object) -> bool:
    """Whether any value has text once tags are gone (a crude reading, independent of ours)."""
    return any(isinstance(v, str) and html.unescape(re.sub(r"<[^>]*>", " ", v)).strip() for v in values)


def _feedparser_entries(name: str) -> list[dict[str, Any]]:
    """The entries as the reference reads them: feedparser, or the JSON of a JSON Feed, each as
    {"key": link or id, "title": title, "values": [(title, summary or content, is_html), ...]}."""
    body = (FEEDS / name).read_bytes()
    out = []
    if name.endswith(".json"):
        for item in json.loads(body)["items"]:
            key = item.get("url") or item.get("external_url") or item.get("id")
            values = [(item.get("title"), False), (item.get("content_html"), True)]
            values += [(item.get("content_text"), False), (item.get("summary"), False)]
            values = [(v, h) for v, h in values if isinstance(v, str)]
            out.append({"key": key, "title": item.get("title"), "values": values})
        return out
    for entry in feedparser.parse(io.BytesIO(body), sanitize_html=False).entries:
        values = []
        for key in ("title", "summary"):
            if isinstance(entry.get(key), str):
                kind = (entry.get(f"{key}_detail") or {}).get("type") or "text/plain"
                values.append((entry[key], "html" in kind))
        values += [(c.get("value"), "html" in (c.get("type") or "")) for c in entry.get("content") or ()]
        out.append(
            {"key": entry.get("link") or entry.get("id"), "title": entry.get("title"), "values": values}
        )
    return out


def test_the_corpus_is_big_enough_small_enough_and_every_file_has_its_provenance() -> None:
    assert len(FILES) >= 40
    assert sum((FEEDS / name).stat().st_size for name in FILES) < 5_000_000
    provenance = (FEEDS / "PROVENANCE.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `([^`]+)` \|", provenance, re.M)
    assert sorted(listed) == FILES
    for row in provenance.splitlines():
        if row.startswith("| `"):  # file | what | repository @ commit, path | licence
            assert re.search(r"\| [\w.-]+/[\w.-]+ @ [0-9a-f]{12}, `[^`]+` \| (MIT|BSD-2-Clause) \|$", row), (
                row
            )


@pytest.mark.parametrize("name", READABLE)
def test_every_entry_with_a_link_or_id_is_a_paper_and_the_rest_are_counted(name: str) -> None:
    entries = _feedparser_entries(name)
    listable = [e for e in entries if e["key"] and _has_text(*(v for v, _ in e["values"]))]
    parsed = _parse(name)
    assert len(parsed.papers) + parsed.duplicates == len(listable)
    assert parsed.skipped == len(entries) - len(listable)
    assert len({p.id for p in parsed.papers}) == len(parsed.papers)
    for paper in parsed.papers:
        assert paper.title and paper.title == " ".join(paper.title.split())


@pytest.mark.parametrize("name", READABLE)
def test_no_markup_entity_or_mojibake_in_titles_authors_and_abstracts(name: str) -> None:
    # A tag or an entity may show only where the feed escaped it once more, as text ("the
    # &lt;title&gt; tag" in an HTML post, `&amp;rsquo;` double-escaped): a browser shows it too.
    values = [value for entry in _feedparser_entries(name) for value in entry["values"]]
    as_html = " ".join(v for v, is_html in values if is_html)
    as_text = " ".join(v for v, is_html in values if not is_html)
    for paper in _parse(name).papers:
        for text in (paper.title, paper.abstract):
            for tag in TAG_RE.finditer(text):
                escaped = re.search(rf"&(?:lt|#0*60|#x0*3c);/?{re.escape(tag[1])}", as_html, re.I)
                assert escaped or tag[0] in as_text, (tag[0], text[:200])
            for entity in ENTITY_RE.finditer(text):
                assert f"&amp;{entity[0][1:]}" in as_html or entity[0] in as_text, (entity[0], text[:200])
            assert not MOJIBAKE_RE.search(text), text[:200]
        for author in paper.authors:
            assert not (TAG_RE.search(author) or ENTITY_RE.search(author) or MOJIBAKE_RE.search(author))
            assert not EMAIL_RE.fullmatch(author), author


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_feed_gives_one_line_naming_the_problem(name: str) -> None:
    with pytest.raises(ParseError) as info:
        _parse(name)
    message = str(info.value)
    assert BROKEN[name] in message and "\n" not in message and message.startswith(f"source {name!r}: ")


@pytest.mark.parametrize("name", XML)
def test_a_feed_cut_short_says_try_again_and_a_broken_one_says_it_will_stay_broken(name: str) -> None:
    body = (FEEDS / name).read_bytes()
    with pytest.raises(ParseError) as cut:
        _parse(name, body[: len(body) // 2])
    assert "ends before it is complete" in str(cut.value) and "try again later" in str(cut.value)
    # The root's end tag misspelt: expat's "mismatched tag", a fault no retry mends.
    misspelt = re.sub(rb"</([\w:.-]+)>((?:\s|<!--.*?-->)*)$", rb"</\1x>\2", body, flags=re.S)
    assert misspelt != body
    with pytest.raises(ParseError) as broken:
        _parse(name, misspelt)
    message = str(broken.value)
    assert "not well-formed XML" in message and "retrying will not help" in message
    assert "try again" not in message and "\n" not in message


@pytest.mark.parametrize("name", XML)
def test_whitespace_or_a_bom_before_the_document_changes_nothing(name: str) -> None:
    body = (FEEDS / name).read_bytes()
    bare = body.removeprefix(b"\xef\xbb\xbf").lstrip()
    expected = _parse(name, bare).papers
    assert _parse(name, b"\n  \t\r\n" + bare).papers == expected
    if b'encoding="utf-8"' in bare[:100].lower() or b"encoding" not in bare[:100]:
        assert _parse(name, b"\xef\xbb\xbf\r\n" + bare).papers == expected


# -- the cases the corpus was gathered for ---------------------------------------------------------

CHARDET = [name for name in FILES if name.startswith("feedparser-chardet-")]


@pytest.mark.parametrize("name", CHARDET)
def test_a_feed_that_declares_no_encoding_is_decoded_by_detection(name: str) -> None:
    body = (FEEDS / name).read_bytes()
    expected = re.search(rb"encoding == '([^']+)'", body)  # each file says what it is in
    assert expected is not None and b"encoding=" not in body
    parsed = load_feed(body, name)
    texts = [entry_text(e, key) for e in parsed.entries for key in ("title", "summary")]
    texts = [t for t in [*texts, parsed.feed.get("title") or ""] if t.strip()]
    assert texts
    encoding = expected[1].decode()
    for text in texts:
        assert not text.isascii() and not MOJIBAKE_RE.search(text)
        # Decoded right: written back in the file's encoding it is the file's own bytes (a
        # detector may name a superset, cp874 for TIS-620: its extra characters are left out).
        runs = _encodable_runs(text, encoding)
        assert sum(map(len, runs)) >= 0.8 * len(text)
        assert all(run.encode(encoding) in body for run in runs)


def _encodable_runs(text: str, encoding: str) -> list[str]:
    """The runs of `text` that `encoding` can write, split also where the XML may have escaped a
    character or the parser collapsed whitespace."""
    runs, run = [], ""
    for char in text:
        try:
            char.encode(encoding)
        except UnicodeEncodeError:
            char = " "
        if char.isspace() or char in "\"&'<>":
            runs, run = [*runs, run] if run else runs, ""
        else:
            run += char
    return [*runs, run] if run else runs


def test_biorxiv_surname_initials_lists_give_one_author_per_pair() -> None:
    name = "rsparser-bio.rdf"
    raw = {e.link: e.author for e in feedparser.parse(io.BytesIO((FEEDS / name).read_bytes())).entries}
    papers = _parse(name).papers
    assert len(papers) == len(raw) == 30
    for paper in papers:
        pieces = [p.strip() for p in raw[paper.url or ""].split(",") if p.strip()]
        assert len(paper.authors) * 2 == len(pieces), (paper.authors, pieces)
        for author, surname, initials in zip(paper.authors, pieces[0::2], pieces[1::2], strict=True):
            assert author == f"{initials} {surname}"
    authors = {a for p in papers for a in p.authors}
    assert {"M. Pereira Mendes", "S. C. M. Van Wees", "L. Ma", "A. K. Pandey"} <= authors


@pytest.mark.parametrize(
    ("followed", "found"),
    [
        ("Marcelo Pereira Mendes", "M. Pereira Mendes"),
        ("Lin Ma", "L. Ma"),
        ("Saskia Van Wees", "S. C. M. Van Wees"),
        ("Ashish Kumar Pandey", "A. K. Pandey"),
    ],
)
def test_a_biorxiv_author_can_be_followed(followed: str, found: str) -> None:
    # What the split was wrong for: a follow of the author found none of their papers.
    wanted = author_name(followed)
    assert wanted is not None
    authors = {a for p in _parse("rsparser-bio.rdf").papers for a in p.authors}
    matched = {a for a in authors if (name := author_name(a)) and authors_match(wanted, name)}
    assert found in matched


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("Pereira Mendes, M., Ma, L.", ["M. Pereira Mendes", "L. Ma"]),
        ("LAPALU, N., Ma, L., de Vries, j.", ["N. LAPALU", "L. Ma", "j. de Vries"]),
        ("Ma, L., Li, L., Li, X.", ["L. Ma", "L. Li", "X. Li"]),  # no initial lost to a repeat
        ("LI, X., Wang, Y.", ["X. LI", "Y. Wang"]),
        ("Smith, J.-P., Doe, MJ", ["J.-P. Smith", "MJ Doe"]),
        ("Kieffer, Jean; Pereira Mendes, M.", ["Jean Kieffer", "M. Pereira Mendes"]),
        ("Alice Smith, Pereira Mendes, M.", ["Alice Smith", "M. Pereira Mendes"]),
    ],
)
def test_surname_initials_forms(raw: str, names: list[str]) -> None:
    assert split_authors(raw) == names


@pytest.mark.parametrize("name", ["rsparser-scriptingNews.rss", "rsparser-manton.rss"])
def test_an_item_without_a_title_is_listed_under_its_first_sentence(name: str) -> None:
    untitled = [e for e in _feedparser_entries(name) if not (e["title"] or "").strip()]
    assert untitled  # the reason these two are here
    papers = {p.url: p for p in _parse(name).papers}
    for entry in untitled:
        paper = papers[entry["key"]]
        assert paper.title and len(paper.title) <= 161
        assert paper.abstract.startswith(paper.title.removesuffix("…"))


@pytest.mark.parametrize("name", [n for n in READABLE if n.endswith(".json")])
def test_a_json_feed_gives_its_items(name: str) -> None:
    doc = json.loads((FEEDS / name).read_bytes())
    papers = {p.id: p for p in _parse(name).papers}
    checked = 0
    for item in doc["items"]:
        paper = papers.get(str(item["id"]))
        if paper is None:
            continue  # nothing to list it under (counted as skipped above)
        checked += 1
        assert paper.url == (item.get("url") or item.get("external_url"))
        if item.get("title"):
            assert paper.title == " ".join(item["title"].split())
        if item.get("date_published"):
            said = dt.datetime.fromisoformat(item["date_published"].replace("Z", "+00:00"))
            assert paper.published == said
        wanted = item.get("authors") or ([item["author"]] if item.get("author") else None)
        wanted = wanted or doc.get("authors") or ([doc["author"]] if doc.get("author") else [])
        assert paper.authors == tuple(a["name"] for a in wanted if a.get("name"))
    assert checked == len(papers)
    body = (FEEDS / name).read_bytes()
    assert _parse(name, b"\xef\xbb\xbf\r\n  " + body).papers == list(papers.values())


def test_json_feed_cut_short_and_broken_json_and_json_of_another_kind() -> None:
    body = (FEEDS / "rsparser-inessential.json").read_bytes()
    with pytest.raises(ParseError, match=r"JSON Feed ends before it is complete.*try again later"):
        _parse("j", body[: len(body) // 2])
    with pytest.raises(ParseError, match=r"not valid JSON.*broken") as info:
        _parse("j", body.replace(b'"items"', b'"items" "', 1))
    assert "try again" not in str(info.value)
    with pytest.raises(ParseError, match="not a JSON Feed"):
        _parse("j", b'{"error": "rate limited"}')


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ('<p>See <video src="a.mp4" controls>Your browser cannot play it</video> here</p>', "See here"),
        (
            'a<iframe src="https://x"></iframe>b<figure><img src="y"><figcaption>Fig. 1</figcaption></figure>',
            "a b Fig. 1",
        ),
        ("<o:p>Word</o:p> <custom-card data-x=1>kept</custom-card> <svg><text>no</text></svg>", "Word kept"),
        ("<source src=x><track src=y><picture><source srcset=z></picture>end", "end"),
    ],
)
def test_every_tag_is_stripped_whatever_its_name(markup: str, text: str) -> None:
    assert strip_html(markup) == text


def test_a_bare_email_in_rss_author_is_no_name() -> None:
    rss = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>A</title><link>https://example.org/a</link><author>jane@example.org</author></item>
<item><title>B</title><link>https://example.org/b</link><author>jane@example.org (Jane Doe)</author></item>
<item><title>C</title><link>https://example.org/c</link><dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/">mailto:x@example.org</dc:creator></item>
</channel></rss>"""
    assert [p.authors for p in _parse("rss", rss).papers] == [(), ("Jane Doe",), ()]
