"""Parsers on real captured listings (tests/data) and on hostile input; text helpers.

Golden files in tests/data/golden/ hold the expected papers of the smaller listings as JSON
(`Paper.to_dict`). After a deliberate change, regenerate them with
`DIGEST_REGEN_GOLDEN=1 pytest tests/test_sources.py` and read the diff before committing.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import pytest

from digest.config import SourceConfig
from digest.config.sections import SourceKind
from digest.core.errors import ParseError
from digest.core.models import Paper
from digest.sources import SOURCES, parse_arxiv_rss, parse_feed, parse_hf_daily
from digest.sources.text import (
    arxiv_id_from,
    decode_tex_accents,
    drop_affiliation,
    join_wraps,
    split_authors,
    strip_html,
)
from digest.store import Store

DATA = Path(__file__).parent / "data"  # the same paths as conftest.py
ARXIV_ALL = DATA / "arxiv_rss_2024-11-28_all.xml"
ARXIV_TRIMMED = DATA / "arxiv_rss_2024-11-28_trimmed.xml"
HF_DAY = DATA / "hf_daily_papers_2026-06-12.json"
GOLDEN = DATA / "golden"
UTC = dt.UTC


def _check_golden(name: str, papers: list[Paper]) -> None:
    path = GOLDEN / name
    got = [p.to_dict() for p in papers]
    if os.environ.get("DIGEST_REGEN_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            json.dumps(got, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert got == expected
    # And the round trip the store relies on.
    assert [Paper.from_dict(d) for d in expected] == papers


GOLDEN_CASES: list[tuple[str, Path, Callable[[bytes], list[Paper]]]] = [
    ("arxiv_rss_2024-11-28_trimmed.json", ARXIV_TRIMMED, lambda b: parse_arxiv_rss(b, "arxiv")),
    (
        "arxiv_rss_legacy_rdf_2018.json",
        DATA / "arxiv_rss_legacy_rdf_2018.xml",
        lambda b: parse_arxiv_rss(b, "arxiv"),
    ),
    ("biorxiv_rdf_2019.json", DATA / "biorxiv_rdf_2019.xml", lambda b: parse_feed(b, "biorxiv")),
    ("arxiv_api_atom.json", DATA / "arxiv_api_atom.xml", lambda b: parse_feed(b, "api")),
    ("hf_daily_papers_2026-06-12.json", HF_DAY, lambda b: parse_hf_daily(b, "hf")),
]


@pytest.mark.parametrize(("golden", "path", "parse"), GOLDEN_CASES, ids=[c[0] for c in GOLDEN_CASES])
def test_golden(golden: str, path: Path, parse: Callable[[bytes], list[Paper]]) -> None:
    _check_golden(golden, parse(path.read_bytes()))


# -- arXiv RSS, current format: the full 1,504-item day --------------------------------------------


@pytest.fixture(scope="module")
def all_papers() -> dict[str, Paper]:
    papers = parse_arxiv_rss(ARXIV_ALL.read_bytes(), "arxiv")
    by_id = {p.id: p for p in papers}
    assert len(by_id) == len(papers)
    return by_id


def test_all_counts_per_announce_type(all_papers: dict[str, Paper]) -> None:
    assert len(all_papers) == 1504
    counts = collections.Counter(p.announce_type for p in all_papers.values())
    assert counts == {"new": 926, "replace": 569, "cross": 9}
    assert sum(p.is_replacement for p in all_papers.values()) == 569
    assert all(p.is_replacement == (p.announce_type == "replace") for p in all_papers.values())


def test_all_every_paper_is_complete(all_papers: dict[str, Paper]) -> None:
    announced = dt.datetime(2024, 11, 28, 5, 0, tzinfo=UTC)  # 00:00 -0500
    for p in all_papers.values():
        assert p.title and p.abstract and p.authors and p.categories, p.id
        assert p.version is not None and p.version >= 1
        assert p.url == f"https://arxiv.org/abs/{p.id}"
        assert p.pdf_url == f"https://arxiv.org/pdf/{p.id}"
        assert p.published == announced
        assert p.sources == ("arxiv",)
        assert not p.abstract.startswith("arXiv:") and "Announce Type:" not in p.abstract[:80]
        for name in p.authors:
            # Affiliations gone, TeX decoded, no empty or stray pieces.
            assert name.strip() == name and name, p.id
            assert not set(name) & set("(){}\\"), (p.id, name)


def test_all_ids_versions_and_metadata(all_papers: dict[str, Paper]) -> None:
    first = all_papers["2411.17700"]
    assert (first.version, first.announce_type, first.categories) == (1, "new", ("cs.CY",))
    assert first.title.startswith("Exploring the Impact of Generative AI on Cross-Border")
    assert first.abstract.startswith("This study investigates the influence of generative")

    pp = all_papers["2411.17758"]
    assert pp.doi == "10.1016/j.segan.2024.101477"
    assert pp.journal_ref == "Sustainable Energy, Grids and Networks, Volume 39, 2024, 101477, ISSN 2352-4677"
    assert pp.categories == ("cs.GT", "cs.CR")

    old = all_papers["1401.3665"]  # a replacement of a 2014 paper, fourth version
    assert (old.version, old.announce_type, old.is_replacement) == (4, "replace", True)
    cross = all_papers["2202.06515"]
    assert (cross.version, cross.announce_type, cross.is_replacement) == (3, "cross", False)
    assert cross.categories == ("astro-ph.CO", "astro-ph.GA", "physics.flu-dyn")
    assert sum(1 for p in all_papers.values() if p.doi) == 111
    assert sum(1 for p in all_papers.values() if p.journal_ref) == 97


def test_all_authors_with_affiliations_and_tex(all_papers: dict[str, Paper]) -> None:
    # "Alexandre Benoist (LORIA, CNRS), Jean Kieffer (LORIA, CNRS)"
    assert all_papers["2411.18171"].authors == ("Alexandre Benoist", "Jean Kieffer")
    # "... Nicolas Blet (LEMTA), Benjamin R\'emy (LEMTA), Matthieu Urbain (LEMTA)"
    assert all_papers["2411.17748"].authors == (
        "Mohammed Riadh Berramdane",
        "Alexandre Battiston",
        "Michele Bardi",
        "Nicolas Blet",
        "Benjamin Rémy",
        "Matthieu Urbain",
    )
    # "Przemys{\l}aw Olbratowski, ..., Jaros{\l}aw \.Zygierewicz"
    assert all_papers["2411.17709"].authors == (
        "Martyna Poziomska",
        "Marian Dovgialo",
        "Przemysław Olbratowski",
        "Paweł Niedbalski",
        "Paweł Ogniewski",
        "Joanna Zych",
        "Jacek Rogala",
        "Jarosław Żygierewicz",
    )
    # Long affiliations full of commas and " and ": five authors, not dozens of fragments.
    assert all_papers["2411.17753"].authors == (
        "Aleteia Araujo",
        "Breno Costa",
        "Joao Bachiega Jr",
        "Leonardo R. Carvalho",
        "Rajkumar Buyya",
    )


def test_all_abstracts_keep_latex_and_decode_entities_once(all_papers: dict[str, Paper]) -> None:
    # Raw: `$\frac{1}{3}&lt;s&lt;1$`: one `<`, never a tag `<s>` (feedparser's sanitizer would make one).
    hits = [p for p in all_papers.values() if r"$\frac{1}{3}<s<1$" in p.abstract]
    assert len(hits) == 1
    assert not any("&lt;" in p.abstract or "<s>" in p.abstract for p in all_papers.values())
    assert any(r"$\varepsilon$" in p.abstract for p in all_papers.values())
    # TeX accents in prose are decoded, mathematics is not touched.
    titles = [p.title for p in all_papers.values()]
    assert (
        "Almost sure well-posedness and orbital stability for Schrödinger equation with potential" in titles
    )
    assert any(t.startswith("A note on Pólya-Szegö inequality") for t in titles)


# -- arXiv RSS: other shapes -----------------------------------------------------------------------


def test_trimmed_counts() -> None:
    papers = parse_arxiv_rss(ARXIV_TRIMMED.read_bytes(), "arxiv")
    assert collections.Counter(p.announce_type for p in papers) == {"new": 13, "cross": 4, "replace": 6}


def test_include_replacements() -> None:
    papers = parse_arxiv_rss(ARXIV_TRIMMED.read_bytes(), "arxiv", include_replacements=True)
    assert not any(p.is_replacement for p in papers)
    assert sum(p.announce_type == "replace" for p in papers) == 6


def test_legacy_rdf() -> None:
    papers = parse_arxiv_rss((DATA / "arxiv_rss_legacy_rdf_2018.xml").read_bytes(), "hep-ex")
    assert [(p.id, p.version, p.announce_type, p.categories) for p in papers] == [
        ("1805.08875", 1, "new", ("hep-ex",)),
        ("1805.09166", 1, "cross", ("hep-ex",)),
        ("1805.06430", 2, "replace", ("nucl-th",)),
    ]
    first = papers[0]
    assert first.title == "Measurement of Transverse Single Spin Asymmetries"
    assert first.authors == ("Christopher Dilks",)
    assert first.abstract.startswith("In 2015 the first collisions")
    assert "<p>" not in first.abstract and r"$2.6<\eta<4$" in first.abstract
    assert papers[2].authors[-1] == "Hong-Shi Zong" and len(papers[2].authors) == 6
    assert first.published == dt.datetime(2018, 5, 24, 1, 30, tzinfo=UTC)  # the channel's dc:date


def test_empty_channel_is_an_empty_listing() -> None:
    assert parse_arxiv_rss((DATA / "arxiv_rss_empty.xml").read_bytes(), "arxiv") == []


def test_feed_error_channel_is_an_error_even_with_200() -> None:
    with pytest.raises(ParseError) as info:
        parse_arxiv_rss((DATA / "arxiv_rss_error_bad_category.xml").read_bytes(), "arxiv")
    message = str(info.value)
    assert "unknown category 'astroph'" in message and "http://rss.arxiv.org/rss/astroph" in message
    assert "check [[sources]] url" in message and "\n" not in message


def _rss_item(guid: str, description: str, creator: str = "A. Author", announce: str = "new") -> bytes:
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0">
<channel><title>hep-ph updates on arXiv.org</title><link>http://rss.arxiv.org/rss/hep-ph</link>
<item><title>Old style</title><link>https://arxiv.org/abs/{guid.split(":")[-1].rsplit("v", 1)[0]}</link>
<description>{description}</description><guid isPermaLink="false">{guid}</guid>
<category>hep-ph</category><category>hep-th</category><pubDate>Thu, 28 Nov 2024 00:00:00 -0500</pubDate>
<arxiv:announce_type>{announce}</arxiv:announce_type><dc:creator>{creator}</dc:creator></item>
</channel></rss>""".encode()


def test_old_style_ids_and_replace_cross() -> None:
    body = _rss_item(
        "oai:arXiv.org:hep-ph/9912567v2",
        "arXiv:hep-ph/9912567v2 Announce Type: replace-cross \nAbstract: We show $x&lt;y$ &amp;amp; more.",
        creator=r"Fran\c{c}ois Ch\^ateau, Jos\'e N\'u\~nez (Universidad, Madrid, Spain) and {\'E}mile Zola",
        announce="replace-cross",
    )
    (paper,) = parse_arxiv_rss(body, "hep")
    assert (paper.id, paper.version) == ("hep-ph/9912567", 2)
    assert paper.url == "https://arxiv.org/abs/hep-ph/9912567"
    assert paper.pdf_url == "https://arxiv.org/pdf/hep-ph/9912567"
    assert paper.announce_type == "replace-cross" and paper.is_replacement
    # Entities decoded once: `&amp;amp;` in the XML is `&amp;` in the text.
    assert paper.abstract == "We show $x<y$ &amp; more."
    assert paper.authors == ("François Château", "José Núñez", "Émile Zola")
    assert paper.categories == ("hep-ph", "hep-th")


def test_same_paper_twice_is_one_paper() -> None:
    one = _rss_item("oai:arXiv.org:2411.17700v1", "arXiv:2411.17700v1 Announce Type: new \nAbstract: x")
    item = one[one.index(b"<item>") : one.index(b"</channel>")]
    doubled = one.replace(b"</channel>", item + b"</channel>")
    assert [p.id for p in parse_arxiv_rss(doubled, "a")] == ["2411.17700"]


def test_items_without_arxiv_ids_are_an_error_for_the_arxiv_parser() -> None:
    with pytest.raises(ParseError, match='kind = "feed"'):
        parse_arxiv_rss((DATA / "biorxiv_rdf_2019.xml").read_bytes(), "bio")


# -- hostile and broken input ----------------------------------------------------------------------

HTML_PAGE = b"""<!DOCTYPE html>
<html><head><title>503 Service Temporarily Unavailable</title></head>
<body><h1>Service Temporarily Unavailable</h1><p>Please try again later.</p></body></html>"""


@pytest.mark.parametrize("parse", [parse_arxiv_rss, parse_feed], ids=["arxiv_rss", "feed"])
@pytest.mark.parametrize(
    "body",
    [
        HTML_PAGE,
        b"\xef\xbb\xbf  <html><body>Moved</body></html>",
        ARXIV_TRIMMED.read_bytes()[:20000],  # truncated mid-item
        b"",
        b"   \n",
        b"Service unavailable",
        b'{"error": "no"}',
        b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "x">'
        b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>x</p></body></html>',
        b"<rss><channel><item><title>a</title></item></channel></rss><rss>",
    ],
    ids=["html", "html-bom", "truncated", "empty", "blank", "text", "json", "xhtml", "junk-after"],
)
def test_not_a_feed_is_a_parse_error(parse: Callable[[bytes, str], list[Paper]], body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse(body, "mysource")
    assert info.value.source == "mysource"
    assert "'mysource'" in str(info.value) and "\n" not in str(info.value)


def test_a_file_name_as_body_is_not_opened(tmp_path: Path) -> None:
    # feedparser.parse(bytes) would open a local file of that name; the parsers never let it.
    secret = tmp_path / "feed.xml"
    secret.write_bytes((DATA / "arxiv_api_atom.xml").read_bytes())
    with pytest.raises(ParseError):
        parse_feed(str(secret).encode(), "f")


def test_encoding_quirk_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        "<item><title>Caf\xe9 paper</title><link>http://example.org/1</link></item></channel></rss>"
    ).encode("latin-1")
    with caplog.at_level(logging.WARNING):
        (paper,) = parse_feed(body, "latin")
    assert paper.title == "Café paper"
    assert "latin" in caplog.text and "quirk" in caplog.text


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<!DOCTYPE html><html><body>Bad gateway</body></html>", "HTML"),
        (b"not json at all", "not valid JSON"),
        (b'[{"paper": {"id": "2606.1", "title": "x"', "not valid JSON"),
        (b'{"error": "Invalid date"}', "Invalid date"),
        (b'"a string"', "got a JSON str"),
        (b"[1, 2]", "item 0 is not a paper"),
        (b'[{"paper": {"title": "no id"}}]', "item 0 is not a paper"),
        (b'[{"paper": {"id": "2606.00001"}}]', "has no title"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
    ids=[
        "html",
        "text",
        "truncated",
        "error-object",
        "string",
        "numbers",
        "no-id",
        "no-title",
        "bytes",
        "deep",
    ],
)
def test_hf_bad_bodies(body: bytes, match: str) -> None:
    with pytest.raises(ParseError, match=match) as info:
        parse_hf_daily(body, "hf")
    assert info.value.source == "hf"


def test_hf_empty_day() -> None:
    assert parse_hf_daily(b"[]", "hf") == []


# -- Hugging Face, the real day --------------------------------------------------------------------


def test_hf_day() -> None:
    papers = parse_hf_daily(HF_DAY.read_bytes(), "hf")
    assert len(papers) == 30
    by_id = {p.id: p for p in papers}
    first = by_id["2606.00467"]
    assert first.title.startswith("On the Limits of LLM Adaptability")
    assert (first.upvotes, first.comments) == (0, 2)
    assert (
        first.ai_keywords[:2] == ("zero-shot annotation", "LLM-as-a-judge") and len(first.ai_keywords) == 14
    )
    assert first.ai_summary and first.ai_summary.startswith("Large language models exhibit")
    assert first.authors[:2] == ("Etienne Casanova", "Rafal Kocielnik")
    assert first.published == dt.datetime(2026, 5, 30, tzinfo=UTC)
    assert (
        first.url == "https://arxiv.org/abs/2606.00467"
        and first.pdf_url == "https://arxiv.org/pdf/2606.00467"
    )
    assert first.categories == () and first.sources == ("hf",) and first.version is None
    top = max(papers, key=lambda p: p.upvotes or 0)
    assert (top.id, top.upvotes, top.comments) == ("2606.13681", 118, 3)
    both = by_id["2606.10423"]
    assert both.github_url == "https://github.com/jayoohwang1/webchallenger"
    assert both.project_url == "https://jayoohwang1.github.io/webchallenger-site/"
    # Two summaries carry arXiv's "\n  " paragraph wraps; they are joined.
    wrapped = by_id["2606.09446"]
    assert "positioning. Our contributions are twofold" in wrapped.abstract
    assert not any("\n" in p.abstract or "  " in p.abstract or "\n" in p.title for p in papers)


def test_hf_line_wraps_and_unsafe_links() -> None:
    body = json.dumps(
        [
            {
                "numComments": True,
                "paper": {
                    "id": "2501.00001",
                    "title": "Learning Representations for\n  Contrastive Loss",
                    "summary": "First line\n  second line.",
                    "upvotes": "7",
                    "githubRepo": "javascript:alert(1)",
                    "projectPage": "https://example.org/p",
                    "ai_keywords": "not a list",
                    "publishedAt": "yesterday",
                    "authors": [{"name": " Ada\n Lovelace "}, {"nom": "x"}, "y", {"name": 5}],
                },
            }
        ]
    ).encode()
    (paper,) = parse_hf_daily(body, "hf")
    assert paper.title == "Learning Representations for Contrastive Loss"
    assert paper.abstract == "First line second line."
    assert paper.upvotes is None and paper.comments is None
    assert paper.github_url is None and paper.project_url == "https://example.org/p"
    assert paper.ai_keywords == () and paper.published is None

    odd = b'[{"paper": {"id": "2501.00002", "title": "t", "authors": 5, "ai_keywords": ["", " a ", 3]}}]'
    (odd_paper,) = parse_hf_daily(odd, "hf")
    assert odd_paper.authors == () and odd_paper.ai_keywords == ("a",)
    assert paper.authors == ("Ada Lovelace",)


# -- generic feeds ---------------------------------------------------------------------------------


def test_biorxiv_rdf() -> None:
    (paper,) = parse_feed((DATA / "biorxiv_rdf_2019.xml").read_bytes(), "biorxiv")
    # Whitespace around link and title (and CDATA) is gone.
    assert paper.id == "http://biorxiv.org/cgi/content/short/857789v1?rss=1" == paper.url
    assert paper.title.startswith("Microscale Collagen") and paper.title.endswith("3-Dimensional Models")
    assert paper.abstract.startswith("Human liver models") and paper.abstract.endswith(
        "cell-based therapies."
    )
    assert paper.authors == ("D. Kukla", "A. Crampton", "D. Wood", "S. Khetani")
    assert paper.doi == "10.1101/857789"
    assert paper.published == dt.datetime(2019, 11, 29, tzinfo=UTC)
    assert paper.version is None and paper.categories == ()


def test_arxiv_api_atom() -> None:
    papers = parse_feed((DATA / "arxiv_api_atom.xml").read_bytes(), "api")
    assert len(papers) == 5
    first = papers[0]
    assert (first.id, first.version) == ("2606.13677", 1)
    assert first.url == "https://arxiv.org/abs/2606.13677"
    assert first.categories == ("cs.RO", "cs.AI", "cs.CV", "cs.LG")
    assert first.authors == ("Zhao-Heng Yin", "Guanya Shi", "Pieter Abbeel", "C. Karen Liu")
    assert "(<1 minute per tool)" in first.abstract
    assert first.published == dt.datetime(2026, 6, 11, 17, 59, 49, tzinfo=UTC)


def test_current_arxiv_rss_through_the_generic_parser() -> None:
    papers = parse_feed(ARXIV_TRIMMED.read_bytes(), "any")
    specific = parse_arxiv_rss(ARXIV_TRIMMED.read_bytes(), "any")
    assert [(p.id, p.version, p.announce_type) for p in papers] == [
        (p.id, p.version, p.announce_type) for p in specific
    ]
    assert [p.abstract for p in papers] == [p.abstract for p in specific]


def test_feed_html_is_plain_text() -> None:
    body = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:x</id><updated>2024-01-02T03:04:05Z</updated>
<entry><id>  urn:uuid:1234  </id><title type="html">A &lt;i&gt;novel&lt;/i&gt; &amp;amp; bold   title</title>
<updated>2024-01-02T03:04:05+02:00</updated>
<summary type="html">&lt;p&gt;First&lt;/p&gt;&lt;p&gt;second &amp;lt; third
&lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</summary>
<author><name>Smith, J.</name></author><author><name>Doe, A.</name></author>
</entry></feed>"""
    (paper,) = parse_feed(body, "atom")
    assert paper.id == "urn:uuid:1234"
    assert paper.title == "A novel & bold title"
    assert paper.abstract == "First second < third"
    assert paper.authors == ("Smith, J.", "Doe, A.")  # separate <author>s are never split
    assert paper.published == dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)


# -- text helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tex", "text"),
    [
        (r"Barth\'elemy", "Barthélemy"),
        (r"Lundstr\"om", "Lundström"),
        (r"Lo\`eve", "Loève"),
        (r"Qu\^antica", "Quântica"),
        (r"Nu\~nez", "Nuñez"),
        (r"Fran\c{c}ois", "François"),
        (r"{\'e}cole", "école"),
        (r"\'{E}mile", "Émile"),
        (r"P\'{o}lya-Szeg\"{o}", "Pólya-Szegö"),
        (r"Garc\'{\i}a", "García"),
        (r"\v{S}koda \u{g} \k{e} \c c", "Škoda ğ ę ç"),
        (r"Przemys{\l}aw \.Zygierewicz {\O}rsted", "Przemysław Żygierewicz Ørsted"),
        (r"AT\&T 50\%", "AT&T 50%"),
        (r"Schr\"odinger $\"o \varepsilon$ $$\'x$$", r"Schrödinger $\"o \varepsilon$ $$\'x$$"),
        ("plain", "plain"),
    ],
)
def test_decode_tex_accents(tex: str, text: str) -> None:
    assert decode_tex_accents(tex) == text


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("A (LORIA, CNRS), B (PLUME, LIP)", ["A (LORIA, CNRS)", "B (PLUME, LIP)"]),
        ("A (Dept. of X and Y, Univ (Z), Town), B", ["A (Dept. of X and Y, Univ (Z), Town)", "B"]),
        ("A, B and C", ["A", "B", "C"]),
        ("A, B, and C", ["A", "B", "C"]),
        ("A; B", ["A", "B"]),
        ("Kukla, D., Wood, D. J.", ["D. Kukla", "D. J. Wood"]),
        ("A (unclosed, B", ["A (unclosed, B"]),
        ("A) B, C", ["A) B", "C"]),
        (" , ,", []),
    ],
)
def test_split_authors(raw: str, names: list[str]) -> None:
    assert split_authors(raw) == names


def test_drop_affiliation() -> None:
    assert drop_affiliation("Jean Kieffer (LORIA, CNRS)") == "Jean Kieffer"
    assert drop_affiliation("X (a (b), c) (d)") == "X"
    assert drop_affiliation("(STAR Collaboration)") == "(STAR Collaboration)"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("oai:arXiv.org:2411.17700v1", ("2411.17700", 1)),
        ("https://arxiv.org/abs/2411.17700", ("2411.17700", None)),
        ("http://arxiv.org/abs/2301.00001v2", ("2301.00001", 2)),
        ("https://arxiv.org/pdf/0704.0001v12", ("0704.0001", 12)),
        ("hep-ph/9912567v2", ("hep-ph/9912567", 2)),
        ("http://arxiv.org/abs/math.GT/0309136", ("math.GT/0309136", None)),
        ("arXiv:2411.17700v1 Announce Type: new", ("2411.17700", 1)),
        ("2606.00467", ("2606.00467", None)),
        ("https://example.org/papers/2411.17700", None),
        ("https://arxiv.org/abs/2411.177001", None),
        ("http://biorxiv.org/cgi/content/short/857789v1?rss=1", None),
        ("", None),
        (None, None),
    ],
)
def test_arxiv_id_from(text: str | None, found: tuple[str, int | None] | None) -> None:
    assert arxiv_id_from(text) == found


def test_strip_html_and_join_wraps() -> None:
    assert strip_html("<p>a &amp;lt; b</p><p>c<br/>d</p>") == "a &lt; b c d"
    assert strip_html(r"$a<b$ and $c>d$, $\frac{1}{3}<s<1$") == r"$a<b$ and $c>d$, $\frac{1}{3}<s<1$"
    assert strip_html("<style>p{}</style><b>bold</b> x") == "bold x"
    assert join_wraps("Learning for\n  Contrastive\tLoss ") == "Learning for Contrastive Loss"


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("html", "&lt;p&gt;We &lt;em&gt;study&lt;/em&gt; tools &amp;amp; agents&lt;/p&gt;"),
        (
            "xhtml",
            '<div xmlns="http://www.w3.org/1999/xhtml"><p>We <em>study</em> tools &amp; agents</p></div>',
        ),
    ],
)
def test_an_atom_entry_with_only_html_content_gets_its_text_as_the_abstract(kind: str, body: str) -> None:
    # feedparser copies <content> into `summary` without its type: the markup must not show
    atom = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>u</id>'
        "<updated>2024-11-28T00:00:00Z</updated><entry><title>X</title><id>urn:a</id>"
        '<link href="https://example.org/a"/><updated>2024-11-28T00:00:00Z</updated>'
        f'<content type="{kind}">{body}</content></entry></feed>'
    )
    assert parse_feed(atom.encode(), "x")[0].abstract == "We study tools & agents"


# -- source kinds: the registry and the shared entry normalisation ---------------------------------


def test_every_configurable_kind_has_an_implementation_and_vice_versa() -> None:
    assert set(SOURCES) == set(get_args(SourceKind))
    for kind, source in SOURCES.items():
        assert source.kind == kind
        made = source(SourceConfig(kind=kind, url="https://example.org/x"))  # type: ignore[arg-type]
        assert callable(made.fetch) and callable(made.parse)
    with pytest.raises(ValueError, match="'hf_daily', 'arxiv_rss' or 'feed'"):
        SourceConfig(kind="atom", url="https://example.org/x")  # type: ignore[arg-type]


def test_labels_of_the_kinds() -> None:
    assert {k: s.label for k, s in SOURCES.items()} == {
        "hf_daily": "Hugging Face",
        "arxiv_rss": "arXiv",
        "feed": None,  # the feed's own title, else the source's name
    }


def test_the_full_arxiv_day_read_as_a_plain_feed_splits_new_and_replacements_alike() -> None:
    # kind = "feed" on an arXiv listing must not announce 569 revisions as new papers.
    body = ARXIV_ALL.read_bytes()
    for include in (False, True):
        specific = parse_arxiv_rss(body, "a", include_replacements=include)
        generic = parse_feed(body, "a", include_replacements=include)
        assert [(p.id, p.version, p.announce_type, p.is_replacement) for p in generic] == [
            (p.id, p.version, p.announce_type, p.is_replacement) for p in specific
        ]
        assert sum(p.is_replacement for p in generic) == (0 if include else 569)


def test_the_feed_kind_on_the_full_arxiv_day() -> None:
    source = SOURCES["feed"](SourceConfig(name="cs", kind="feed", url="https://rss.arxiv.org/rss/cs"))
    parsed = source.parse(ARXIV_ALL.read_bytes())
    assert parsed.title is not None and parsed.title.startswith("astro-ph, cond-mat, physics")
    assert parsed.title.endswith("stat updates on arXiv.org")
    counts = collections.Counter((p.announce_type, p.is_replacement) for p in parsed.papers)
    assert counts == {("new", False): 926, ("replace", True): 569, ("cross", False): 9}


def test_the_legacy_arxiv_format_read_as_a_plain_feed() -> None:
    body = (DATA / "arxiv_rss_legacy_rdf_2018.xml").read_bytes()
    generic, specific = parse_feed(body, "a"), parse_arxiv_rss(body, "a")
    fields = ("id", "version", "title", "categories", "announce_type", "is_replacement")
    assert [[getattr(p, f) for f in fields] for p in generic] == [
        [getattr(p, f) for f in fields] for p in specific
    ]
    assert [p.announce_type for p in generic] == ["new", "cross", "replace"]


def test_an_announcement_is_read_only_from_arxiv_entries() -> None:
    # A description that happens to start like arXiv's, in an entry that is not an arXiv paper.
    rss = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Lab news</title>
<item><title>T</title><link>https://example.org/1</link>
<description>arXiv:1 Announce Type: replace Abstract: kept</description></item></channel></rss>"""
    (paper,) = parse_feed(rss, "lab")
    assert paper.abstract == "arXiv:1 Announce Type: replace Abstract: kept"
    assert not paper.is_replacement and paper.announce_type is None


# -- what a new user's feeds did (tests/test_feeds_corpus.py reads the whole corpus) ---------------


@pytest.mark.parametrize(
    "head",
    [b"\n", b"\r\n\t  ", b"\xef\xbb\xbf\n", b"\xef\xbb\xbf  \r\n"],
    ids=["nl", "ws", "bom-nl", "bom-ws"],
)
def test_whitespace_or_a_bom_before_the_xml_declaration_is_no_error(head: bytes) -> None:
    body = ARXIV_TRIMMED.read_bytes()
    assert body.startswith(b"<?xml")
    assert parse_arxiv_rss(head + body, "a") == parse_arxiv_rss(body, "a")
    assert parse_feed(head + body, "a") == parse_feed(body, "a")


def test_truncation_and_a_permanent_fault_are_told_apart() -> None:
    body = ARXIV_TRIMMED.read_bytes()
    with pytest.raises(ParseError, match="ends before it is complete") as cut:
        parse_feed(body[:20000], "a")
    assert "try again later" in str(cut.value)
    with pytest.raises(ParseError, match="not well-formed XML") as broken:
        parse_feed(body.replace(b"</channel>", b"</chanel>"), "a")
    assert "retrying will not help" in str(broken.value) and "try again" not in str(broken.value)
    # an entity HTML knows and XML does not is a slip feedparser reads past, unless the rest is cut
    nbsp = body.replace(b"<title>", b"<title>&nbsp;", 1)
    assert len(parse_feed(nbsp, "a")) == len(parse_feed(body, "a"))
    with pytest.raises(ParseError, match="ends before it is complete"):
        parse_feed(nbsp[:20000], "a")


def test_the_arxiv_kind_counts_the_items_it_skips() -> None:
    body = ARXIV_TRIMMED.read_bytes()
    lab = b"<item><title>Lab news</title><link>https://example.org/news</link></item></channel>"
    source = SOURCES["arxiv_rss"](
        SourceConfig(name="a", kind="arxiv_rss", url="https://rss.arxiv.org/rss/cs")
    )
    whole, mixed = source.parse(body), source.parse(body.replace(b"</channel>", lab))
    assert (whole.skipped, mixed.skipped) == (0, 1)
    assert mixed.papers == whole.papers


def test_half_an_emoji_escaped_in_json_becomes_a_replacement_character(tmp_path: Path) -> None:
    """JSON may escape a lone surrogate ("\\ud83d", an emoji cut in half): no UTF-8 holds one,
    and the state refused a paper id with one (a traceback). Whole pairs stay as they are."""
    feed = (
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "item-\\ud800-1",'
        b' "url": "https://example.org/a", "title": "Cut \\ud83d, whole \\ud83d\\ude00", "content_text": "x"}]}'
    )
    [paper] = parse_feed(feed, "j")
    assert (paper.id, paper.title) == ("item-\ufffd-1", "Cut \ufffd, whole \U0001f600")
    hf = json.loads(HF_DAY.read_bytes())[:2]
    hf[0]["paper"]["title"] = "Truncated \ud83d"
    hf[1]["paper"]["summary"] = "Also \udfff here"
    hf_papers = parse_hf_daily(json.dumps(hf).encode(), "hf")  # json.dumps escapes them as JSON may
    assert [hf_papers[0].title, hf_papers[1].abstract[:11]] == ["Truncated \ufffd", "Also \ufffd here"]
    with Store.open(tmp_path / "state.db") as store:  # the state takes them (it raised before)
        day = dt.date(2026, 6, 12)
        store.record_snapshot(
            day, [paper, *hf_papers], [], sources=["j", "hf"], now=dt.datetime(2026, 6, 12, 7, tzinfo=dt.UTC)
        )
        assert "item-\ufffd-1" in {p.id for p in store.snapshot(day) or []}


def test_a_character_reference_to_half_an_emoji_becomes_a_replacement_character() -> None:
    """XML forbids "&#xD83D;": feedparser's lenient reader raised UnicodeEncodeError on one (a
    traceback for the run). Other references, whole emoji among them, read as ever."""
    rss = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        b"<title>Cut &#xD83D;, &#55357;, whole &#x1F600;</title><guid>id-&#xd800;-1</guid>"
        b"<link>https://example.org/a</link><description>caf&#233;</description></item></channel></rss>"
    )
    [paper] = parse_feed(rss, "x")
    assert (paper.id, paper.title, paper.abstract) == (
        "id-\ufffd-1",
        "Cut \ufffd, \ufffd, whole \U0001f600",
        "caf\u00e9",
    )


def test_a_json_feed_that_is_not_utf8_or_not_an_object() -> None:
    with pytest.raises(ParseError, match="not a JSON Feed"):
        parse_feed(b'[{"version": "https://jsonfeed.org/version/1.1"}]', "j")
    with pytest.raises(ParseError, match="not UTF-8"):
        parse_feed(b'{"version": "https://jsonfeed.org/version/1.1", "title": "\xff"}', "j")
    with pytest.raises(ParseError, match='no "items" list'):
        parse_feed(b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "j")
