"""The digest email: golden output from real listings, subject, highlighting, size budget, hostile text.

The helpers at the top (papers from the fixtures, hand-built matches) are shared with the other
rendering tests. Regenerate the golden files with `UPDATE_GOLDEN=1 pytest tests/test_render_email.py`
and read the diff before committing it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from digest.config import Settings, load_settings
from digest.core.errors import ConfigError, RenderError
from digest.core.models import Digest, Hit, Match, Paper, Subscriber
from digest.render import email as email_module
from digest.render.email import EmailRenderer, Links
from digest.sources import parse_arxiv_rss, parse_hf_daily

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden_render"
DATE = dt.date(2026, 6, 12)
BASE = "https://digest.example.org/"


# -- shared helpers ---------------------------------------------------------------------------------
@cache
def hf_papers() -> tuple[Paper, ...]:
    return tuple(parse_hf_daily((DATA / "hf_daily_papers_2026-06-12.json").read_bytes(), "hf"))


@cache
def arxiv_papers(name: str = "trimmed") -> tuple[Paper, ...]:
    body = (DATA / f"arxiv_rss_2024-11-28_{name}.xml").read_bytes()
    return tuple(parse_arxiv_rss(body, "arxiv", include_replacements=True))


def match(paper: Paper, *terms: str, score: float = 1.0) -> Match:
    """A Match with a hit for every occurrence of each term in the title and abstract (by hand)."""
    hits = []
    for term in terms:
        for field, text in (("title", paper.title), ("abstract", paper.abstract)):
            for m in re.finditer(re.escape(term), text, re.IGNORECASE):
                hits.append(Hit(term, field, m.start(), m.end()))  # type: ignore[arg-type]
    return Match(paper, score, tuple(hits))


def settings(**output: object) -> Settings:
    return Settings(output={"base_url": BASE, **output})  # type: ignore[arg-type]


def links(feed: bool = True) -> Links:
    return Links(
        unsubscribe=f"{BASE}unsubscribe?token=abc",
        feed=f"{BASE}feeds/0123456789abcdef.xml" if feed else None,
        archive=f"{BASE}archive/2026-06-12.html",
    )


READER = Subscriber(
    email="ada@example.org", name="Ada", keywords=("LLM", "reinforcement learning"), feed=True
)


def golden_digest() -> Digest:
    """Real papers from both sources; a mix of hits in titles, abstracts and AI summaries."""
    hf = hf_papers()
    arxiv = arxiv_papers()
    matches = [match(p, "LLM", "reinforcement learning") for p in hf[:6]]
    matches += [match(p, "learning", "generative AI") for p in arxiv[:3]]
    return Digest(READER, DATE, tuple(matches), total_matched=len(matches) + 7)


class _Visible(HTMLParser):
    """The text a reader sees, one block per line: what the HTML golden file compares."""

    BLOCKS = frozenset({"div", "p", "br", "tr", "h1", "h2", "li", "article", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self.skip += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a":
            href = dict(attrs).get("href") or ""
            self.parts.append("[")
            self._href = href

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self.skip -= 1
        if tag == "a":
            self.parts.append(f"]({getattr(self, '_href', '')})")
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    lines = (re.sub(r"\s+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line) + "\n"


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        if not os.environ.get("UPDATE_GOLDEN"):
            pytest.fail(f"{path} did not exist; written, check it and re-run")
    assert actual == path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer(settings())


# -- golden -----------------------------------------------------------------------------------------
def test_golden_text_part(renderer: EmailRenderer) -> None:
    check_golden("digest.txt", renderer.render(golden_digest(), links()).text)


def test_golden_html_visible_text(renderer: EmailRenderer) -> None:
    check_golden("digest.html.txt", visible_text(renderer.render(golden_digest(), links()).html))


def test_text_part_is_wrapped(renderer: EmailRenderer) -> None:
    text = renderer.render(golden_digest(), links()).text
    for line in text.splitlines():
        assert len(line) <= 76 or "://" in line, line


# -- content ----------------------------------------------------------------------------------------
def test_subject_count_date_name_and_singular() -> None:
    r = EmailRenderer(Settings(delivery={"subject": "{count} new papers for {name} · {date}"}))  # type: ignore[arg-type]
    digest = golden_digest()
    assert r.render(digest, links()).subject == f"{digest.total_matched} new papers for Ada · 12 Jun 2026"
    one = Digest(READER, DATE, digest.matches[:1])
    assert r.render(one, links()).subject == "1 new paper for Ada · 12 Jun 2026"


def test_a_weekly_readers_subject_says_the_papers_are_the_weeks() -> None:
    r = EmailRenderer(Settings())
    digest = golden_digest()
    weekly = dataclasses.replace(digest, subscriber=dataclasses.replace(READER, cadence="weekly"))
    assert (
        r.render(weekly, links()).subject
        == f"{digest.total_matched} new papers this week for you · 12 Jun 2026"
    )
    one = Digest(dataclasses.replace(READER, cadence="weekly"), DATE, digest.matches[:1])
    assert r.render(one, links()).subject == "1 new paper this week for you · 12 Jun 2026"
    assert r.render(digest, links()).subject == f"{digest.total_matched} new papers for you · 12 Jun 2026"


@pytest.mark.parametrize(
    "subject",
    [
        "{cuont} papers",  # a typo
        "{name.__class__}",  # attribute access would show Python internals
        "{count:>99999999}",  # a width: a 100 MB subject
        "{count!r} papers",
        "{count papers",
    ],
)
def test_a_subject_with_anything_but_the_placeholders_is_refused_at_load(
    tmp_path: Path, subject: str
) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(f"[delivery]\nsubject = {subject!r}\n")
    with pytest.raises(
        ConfigError, match=r"digest.toml:2: delivery.subject: .*\{count\}, \{date\} and \{name\}"
    ):
        load_settings(config)


def test_a_subject_with_the_placeholders_and_braces_loads(tmp_path: Path) -> None:
    config = tmp_path / "digest.toml"
    config.write_text("[delivery]\nsubject = '{{digest}} {count} for {name} · {date}'\n")
    assert load_settings(config).delivery.subject.startswith("{{digest}}")


def test_preheader_names_the_matched_terms(renderer: EmailRenderer) -> None:
    out = renderer.render(golden_digest(), links())
    assert out.preheader.startswith("16 new papers on ")
    assert "LLM" in out.preheader
    assert out.preheader in out.html
    assert "display:none" in out.html.split(out.preheader)[0][-400:]


def test_title_linked_and_matched_terms_marked(renderer: EmailRenderer) -> None:
    paper = hf_papers()[0]  # "On the Limits of LLM Adaptability: ..."
    out = renderer.render(Digest(READER, DATE, (match(paper, "LLM"),)), links())
    assert f'<a href="{paper.url}"' in out.html
    assert re.search(r"On the Limits of <mark[^>]*>LLM</mark> Adaptability", out.html)
    # the AI summary is shown instead of the abstract; the term is found again in it
    assert "AI summary:" in out.html
    assert re.search(r"<mark[^>]*>Large language models</mark>|<mark[^>]*>LLM", out.html)


def test_abstract_offsets_highlight_the_snippet(renderer: EmailRenderer) -> None:
    paper = arxiv_papers()[0]  # abstract mentions "generative artificial intelligence"
    term = "generative artificial intelligence"
    start = paper.abstract.index(term)
    m = Match(paper, 1.0, (Hit("generative AI", "abstract", start, start + len(term)),))
    html = renderer.render(Digest(READER, DATE, (m,)), links()).html
    assert f">{term}</mark>" in html


def test_snippet_is_cut_at_a_word(renderer: EmailRenderer) -> None:
    paper = arxiv_papers()[0]
    out = renderer.render(Digest(READER, DATE, (Match(paper, 1.0),)), links())
    snippet = next(line for line in out.text.splitlines() if line.strip().startswith("This study"))
    paragraph = out.text.split(snippet.strip())[1].split("\n\n")[0]
    shown = " ".join((snippet + paragraph).split())
    assert shown.endswith("…")
    assert len(shown) <= 302
    assert paper.abstract.startswith(shown[:-1])
    assert paper.abstract[len(shown) - 1] in " ,.;:"  # cut between words


def test_authors_shortened_and_source_badges(renderer: EmailRenderer) -> None:
    paper = Paper(
        id="x1",
        title="Many authors",
        authors=tuple(f"Author {i}" for i in range(8)),
        sources=("hf",),
        upvotes=42,
        comments=3,
        url="https://arxiv.org/abs/x1",
        pdf_url="https://arxiv.org/pdf/x1",
        github_url="https://github.com/o/r",
        project_url="https://o.github.io/r",
    )
    out = renderer.render(Digest(READER, DATE, (Match(paper, 1.0),)), links())
    assert "Author 0, Author 1, Author 2 et al." in out.html
    assert "Author 3" not in out.html
    assert "Hugging Face" in out.html and "&#9650; 42" in out.html and "3 comments" in out.html
    for label, url in (
        ("PDF", paper.pdf_url),
        ("Code", paper.github_url),
        ("Project page", paper.project_url),
    ):
        assert f'<a href="{url}" style="color:#0b57d0;">{label}</a>' in out.html
        assert url in out.text


def test_footer_links(renderer: EmailRenderer) -> None:
    out = renderer.render(golden_digest(), links())
    for url in (links().unsubscribe, links().feed, links().archive):
        assert f'href="{url}"' in out.html
        assert str(url) in out.text
    assert "7 more papers matched" in out.html and "7 more papers matched" in out.text
    no_feed = renderer.render(golden_digest(), links(feed=False))
    assert "private feed" not in no_feed.html and "private feed" not in no_feed.text


def test_no_more_link_when_everything_is_shown(renderer: EmailRenderer) -> None:
    digest = Digest(READER, DATE, golden_digest().matches[:2])
    out = renderer.render(digest, links())
    assert "more paper" not in out.html and "more paper" not in out.text
    assert out.shown == 2


def test_empty_digest_is_a_short_nothing_new_email(renderer: EmailRenderer) -> None:
    out = renderer.render(Digest(READER, DATE, ()), links())
    assert out.subject.startswith("No new papers")
    assert "Nothing new today" in out.html and "Nothing new today" in out.text
    assert out.shown == 0
    assert links().unsubscribe in out.text
    assert len(out.html) < 10_000


# -- hostile text -----------------------------------------------------------------------------------
HOSTILE = Paper(
    id="evil/1",
    title='<script>alert("x")</script> & "quotes" ]]> \x00\x07 split\r\nSubject: injected',
    abstract="Body with <img src=x onerror=alert(1)> & ]]> and \x1b[31m escape codes.",
    authors=("Mallory <m@evil>", "O'Brien & Co"),
    url="javascript:alert(1)",
    pdf_url="https://evil.example/a.pdf?x=1&y=<2>",
    sources=("arxiv",),
)


def test_hostile_text_is_escaped_everywhere() -> None:
    r = EmailRenderer(Settings(delivery={"subject": "{count} papers: {name}"}))  # type: ignore[arg-type]
    reader = Subscriber(email="e@example.org", name="Eve\r\nBcc: all@example.org")
    out = r.render(Digest(reader, DATE, (Match(HOSTILE, 1.0),)), links())
    assert "<script" not in out.html and "<img" not in out.html
    assert "&lt;script&gt;" in out.html
    assert "javascript:" not in out.html  # not a web link: the title is not linked
    assert "https://evil.example/a.pdf?x=1&amp;y=&lt;2&gt;" in out.html
    for part in (out.html, out.text, out.subject, out.preheader):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", part)
    assert "\n" not in out.subject and "Bcc: all@example.org" in out.subject  # on one line, harmless
    title_line = next(line for line in out.text.splitlines() if "alert" in line)
    assert "Subject: injected" in title_line  # the title stays on one line


def test_text_direction_overrides_never_reach_the_email() -> None:
    """A reader's name (a web reader can set one) or a title with a bidi override would show its
    text reversed: they become spaces, like control characters."""
    r = EmailRenderer(Settings(delivery={"subject": "{count} papers for {name}"}))  # type: ignore[arg-type]
    reader = Subscriber(email="e@example.org", name="\U0001f999 Llama \u202efan\u2066")
    paper = dataclasses.replace(HOSTILE, title="Attention \u202eis all\u2069 you need")
    out = r.render(Digest(reader, DATE, (Match(paper, 1.0),)), links())
    for part in (out.html, out.text, out.subject, out.preheader):
        assert not re.search("[\u202a-\u202e\u2066-\u2069]|&#82(3[4-8]);|&#(8294|8295|8296|8297);", part)
    assert "Llama  fan" in out.subject or "Llama fan" in out.subject
    assert "Attention  is all" in out.html or "Attention is all" in out.html


# -- templates and errors ---------------------------------------------------------------------------
def test_user_template_overrides_by_name(tmp_path: Path) -> None:
    (tmp_path / "digest.txt.j2").write_text("Hello {{ subscriber.name }}: {{ count }} <raw>\n")
    r = EmailRenderer(Settings(templates={"dir": tmp_path}))  # type: ignore[arg-type]
    out = r.render(golden_digest(), links())
    assert out.text == "Hello Ada: 16 <raw>\n"  # the text part is not HTML-escaped
    assert "Paper Digest" in out.html  # the HTML falls back to the shipped template


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("<mjml><mj-body>\n\n{% if %}</mj-body></mjml>", r"digest\.mjml\.j2, line 3: "),
        (
            "<mjml><mj-body>\n<mj-text>{{ nope.attr }}</mj-text></mj-body></mjml>",
            r"digest\.mjml\.j2, line 2: .*nope",
        ),
        (
            "<mjml><mj-body><mj-section><mj-column><mj-text>x</mj-column></mj-body></mjml>",
            r"digest\.mjml\.j2: MJML: ",
        ),
    ],
    ids=["jinja-syntax", "undefined", "mjml"],
)
def test_template_errors_are_one_line_render_errors(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "digest.mjml.j2").write_text(source)
    with pytest.raises(RenderError, match=message) as info:
        EmailRenderer(Settings(templates={"dir": tmp_path}))  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_mjml_is_compiled_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    r = EmailRenderer(settings())

    def boom(*args: object, **kwargs: object) -> str:
        raise AssertionError("MJML compiled per email")

    monkeypatch.setattr(email_module, "mjml2html", boom)
    assert r.render(golden_digest(), links()).shown == 9


# -- size -------------------------------------------------------------------------------------------
def test_largest_digest_fits_the_gmail_budget(renderer: EmailRenderer) -> None:
    papers = arxiv_papers("all")
    assert len(papers) == 1504
    reader = Subscriber(email="all@example.org", all=True, max_papers=10_000)
    digest = Digest(reader, DATE, tuple(Match(p, 1.0) for p in papers))
    out = renderer.render(digest, links())
    size = len(out.html.encode())
    assert size <= 100_000
    assert 30 < out.shown < 1504
    more = 1504 - out.shown
    assert f"{more} more papers matched" in out.html and f"{more} more papers matched" in out.text
    assert out.html.count("<mark") == 0
    assert out.text.count("Abstract: https://arxiv.org/abs/") == out.shown


def test_without_a_base_url_the_more_line_is_plain_text(renderer: EmailRenderer) -> None:
    out = renderer.render(golden_digest(), Links(unsubscribe="mailto:digest@example.org?subject=unsubscribe"))
    assert "7 more papers matched." in out.html and "7 more papers matched." in out.text
    assert "archive/" not in out.html
    assert 'href="mailto:digest@example.org?subject=unsubscribe"' in out.html


# -- caching ----------------------------------------------------------------------------------------
def test_sample_fragments_are_not_reused_for_a_real_paper_with_the_same_id() -> None:
    # The renderer tries its templates on made-up papers (ids 2411.00001 and 2411.00002) when it
    # is built; a real paper with one of those ids must get its own title, links and snippet.
    r = EmailRenderer(settings())
    real = Paper(
        id="2411.00001",
        title="The real paper",
        abstract="Real abstract text.",
        url="https://arxiv.org/abs/2411.00001v9",
        sources=("arxiv",),
    )
    out = r.render(Digest(READER, DATE, (Match(real, 1.0),)), links())
    assert "The real paper" in out.html and "Real abstract text." in out.text
    assert "https://arxiv.org/abs/2411.00001v9" in out.text
    assert "prompt tuning" not in out.html and "prompt tuning" not in out.text


def test_cache_tag_renders_a_block_once_per_key(tmp_path: Path) -> None:
    (tmp_path / "digest.txt.j2").write_text(
        "{% for p in papers %}{% cache p.id %}{{ p.title }} {{ subscriber.name }}|{% endcache %}"
        "{% cache p.id, subscriber.name %}{{ subscriber.name }};{% endcache %}{% endfor %}\n"
    )
    r = EmailRenderer(Settings(templates={"dir": tmp_path}))  # type: ignore[arg-type]
    digest = golden_digest()
    first = r.render(digest, links()).text
    bob = Subscriber(email="bob@example.org", name="Bob")
    second = r.render(Digest(bob, DATE, digest.matches, digest.total_matched), links()).text
    assert first.count("Ada|") == 9 and first.count("Ada;") == 9
    # the first block is keyed by the paper alone, so Bob gets Ada's: the key must name it all
    assert second.count("Ada|") == 9 and second.count("Bob;") == 9


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("x_LLM LLMs llm-based (LLM) 'llm' LLM_x éLLM", "LLM"),
        ("Reinforcement  learning, reinforcement learning", "reinforcement learning"),
        ("deep\u00a0learning and deep learning", "deep learning"),
        ("ſtring and string", "string"),
        ("\u212aernel kernel", "kernel"),
        ("\u0130LLM LLM", "llm"),
        ("C++ and c++ code", "C++"),
        ("a #tag, #Tag", "#tag"),
        ("données LLM …", "LLM"),
    ],
)
def test_term_spans_fast_path_finds_what_the_regex_finds(text: str, term: str) -> None:
    from digest.render import highlighting

    assert highlighting.term_spans(text, [term]) == list(highlighting._spans_of(text, term))


# Whitespace of every kind \s matches, controls, surrogates, non-characters, the letters that
# IGNORECASE folds to ASCII, and the ellipsis `cut` adds: what the fast paths must tell apart.
_AWKWARD = [
    *" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
    *"\x00\x07\x1b\x7f\x9f\ud800\udfff\ufffe\uffff\u200b",
    *"\u0130\u0131\u017f\u212a…éaZ",
]


@hypothesis_settings(max_examples=400, deadline=None)
@given(st.text(st.one_of(st.sampled_from(_AWKWARD), st.characters()), max_size=30))
@example("Deep  learning")
@example("deep\u00a0learning …")
@example("\u212aernel")
def test_text_fast_paths_agree_with_their_regexes(text: str) -> None:
    from digest.render import highlighting, templating

    cleaned = templating._CONTROL_RE.sub(" ", text)
    assert templating.clean(text) == cleaned
    assert templating.one_line(text) == re.sub(r"\s+", " ", cleaned).strip()
    lower = text.lower()
    plain = len(lower) == len(text) and not highlighting._NOT_PLAIN.search(text)
    assert highlighting._plain_lower(text) == (lower if plain else None)


@pytest.mark.parametrize(
    ("text", "term", "marked"),
    [
        ("Agentic agents, an agent", "agent", ["agents", "agent"]),  # not inside "agentic"
        ("HI-SLAM2, SLAM and a slam dunk", "SLAM", ["SLAM"]),  # acronyms in capitals, whole words
        ("Large language models", "language model", ["language models"]),  # the whole plural
        ("queries and a Query", "query", ["queries", "Query"]),
        ("navigational navigation", "navigation", ["navigation"]),
        ("Self-Supervised vision-language models", "self-supervised", ["Self-Supervised"]),
        ("Self-Supervised vision-language models", "vision language model", ["vision-language models"]),
        ("snake_case words", "snake case", ["snake_case"]),
        ("Poke\u0301mon mon", "mon", ["mon"]),  # not after a combining accent: inside the word
    ],
)
def test_highlights_follow_the_matching_rules(text: str, term: str, marked: list[str]) -> None:
    from digest.render import highlighting

    assert [text[a:b] for a, b in highlighting.word_spans(*highlighting.for_words(text), term)] == marked


_WORDS = ["agent", "agents", "agentic", "LLM", "LLMs", "llm", "query", "queries", "model", "models",
          "SLAM", "SLAM2", "slam", "class", "classes", "cache", "caches", "graph", "paragraph"]  # fmt: skip


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.sampled_from(_WORDS), min_size=1, max_size=8),
    gaps=st.lists(st.sampled_from([" ", "-", ", ", " (", ") ", "_", "/"]), min_size=8, max_size=8),
    term=st.sampled_from([*_WORDS, "agent model", "LLM agents", "LLM-agents", "query model", "graph_model"]),
)
def test_a_highlight_is_always_a_place_the_matcher_hit(words: list[str], gaps: list[str], term: str) -> None:
    # mark exactly where the matcher counts the term (words joined by one space, hyphen or underscore)
    from digest.matching.naive import _naive_text_hits
    from digest.render import highlighting

    title = "".join(w + g for w, g in zip(words, gaps, strict=False)).strip(" -,(_/)") or "x"
    paper = Paper(id="p", title=title)
    hits = [(h.start, h.end) for h in _naive_text_hits(term, ["title"], paper)]
    marked = list(highlighting.word_spans(*highlighting.for_words(title), term))
    assert marked == hits, (title, term)


def test_an_all_reader_is_told_why_each_paper_came(renderer: EmailRenderer) -> None:
    papers = hf_papers()[:3]
    reader = Subscriber(email="group@example.org", all=True, min_upvotes=5)
    out = renderer.render(
        Digest(
            subscriber=reader, date=dt.date(2026, 6, 12), matches=tuple(Match(p, 0.0, ()) for p in papers)
        ),
        links(),
    )
    assert out.text.count("Why: you get every new paper with at least 5 upvotes") == 3
    assert out.html.count("Why: you get every new paper with at least 5 upvotes") == 3
    # a reader with terms gets the terms, never the all-reader line
    assert "Why: you get" not in renderer.render(golden_digest(), links()).text


def test_the_text_part_links_the_days_papers_as_the_html_footer_does(renderer: EmailRenderer) -> None:
    digest = golden_digest()
    everything = Digest(subscriber=digest.subscriber, date=digest.date, matches=digest.matches)  # no "more"
    out = renderer.render(everything, links())
    assert "All of the day's papers" in out.html
    assert f"All of the day's papers: {links().archive}" in out.text


def test_a_custom_template_can_print_similar_as_json(tmp_path: Path) -> None:
    """Digests without similar papers share one read-only empty mapping (memory at 100,000
    readers); a template still gets a dict, which `tojson` prints."""
    shipped = Path(email_module.__file__).resolve().parents[2] / "templates" / "digest.txt.j2"
    (tmp_path / "digest.txt.j2").write_text(
        shipped.read_text(encoding="utf-8") + "\nsimilar: {{ similar|tojson }}\n", encoding="utf-8"
    )
    ours = EmailRenderer(Settings(output={"base_url": BASE}, templates={"dir": tmp_path}))  # type: ignore[arg-type]
    digest = golden_digest()
    assert not digest.similar
    assert "similar: {}" in ours.render(digest, links()).text
