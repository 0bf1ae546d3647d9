"""Text as people see it: wrapping by display width (CJK), TeX math made readable, the piped
`digest fetch` listing, feed ids and times, private feed names, outbox file names. Pure."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from test_render_email import READER, hf_papers, match, settings

from digest.core.models import Digest, Paper, RenderedEmail
from digest.deliver.message import build_message
from digest.deliver.outbox import eml_name
from digest.render import EmailRenderer, Links
from digest.render.columns import listing, width, wrap_columns
from digest.render.feeds import _BITCOIN_LIKE, _atom_id, private_feed_name
from digest.render.templating import wrap
from digest.render.tex import simplify_math
from digest.render.views import Views

CJK = (
    "大型语言模型在各种任务中表现出色，但其推理能力仍然有限。我们提出了一种新的方法来提高模型的"
    "推理能力，并在多个基准上进行了评估。Large language models (LLMs) 在「数学」推理上仍有差距。"
)


# -- wrapping by display width ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [CJK, CJK * 3, "日本語のテキスト、です。" * 12, "한국어 문장입니다 " * 20],
    ids=["chinese", "chinese-long", "japanese", "korean"],
)
def test_cjk_lines_fit_76_columns(text: str) -> None:
    out = wrap(text, 76, "    ", "1.  ")
    lines = out.splitlines()
    assert len(lines) > 1
    assert max(width(line) for line in lines) <= 76, out
    assert all(line.startswith("    ") for line in lines[1:])
    # nothing lost or added but the breaks and the indents
    assert re.sub(r"\s", "", out)[2:] == re.sub(r"\s", "", text)


def test_no_line_starts_with_closing_punctuation_or_ends_with_an_opening_one() -> None:
    for columns in range(20, 80):
        for line in wrap_columns(CJK * 2, columns, "", None).splitlines():
            assert line[0] not in "、。，」）", (columns, line)
            assert line[-1] not in "「（", (columns, line)


def test_ascii_wrapping_is_unchanged() -> None:
    text = "We study prompt tuning for large language models, and more. " * 5
    assert wrap(text, 40, "  ") == wrap_columns(text, 40, "  ", None)
    assert all(len(line) <= 40 for line in wrap(text, 40, "  ").splitlines())


def test_the_text_part_of_a_chinese_paper_fits_76_columns() -> None:
    paper = dataclasses.replace(hf_papers()[0], title=CJK[:60], abstract=CJK * 2, ai_summary=None)
    renderer = EmailRenderer(settings())
    text = renderer.render(
        Digest(READER, dt.date(2026, 6, 12), (match(paper, "LLM"),)), Links("mailto:u@x.org")
    ).text
    assert "大型语言模型" in text
    assert max(width(line) for line in text.splitlines()) <= 76, text


# -- TeX ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tex", "shown"),
    [
        (r"where \(T_w = i\hbar \partial_t\) holds", "where T_w = iℏ ∂_t holds"),  # no safe ₜ
        (r"an $O(n^2)$ algorithm on $\mathbb{R}^d$", "an O(n²) algorithm on ℝ^d"),
        (r"with $\alpha_{i} \leq 0.5$ and $\frac{1}{2}$", "with αᵢ ≤ 0.5 and 1/2"),
        (r"the $\mathcal{L}_{\text{CE}}$ loss", "the L_{CE} loss"),
        (r"costs $5 and $10 a month", "costs $5 and $10 a month"),  # prices, not math
        (r"a \[x \to \infty\] limit", "a x → ∞ limit"),
        ("no math at all", "no math at all"),
    ],
    ids=["hbar", "power", "frac", "styled", "prices", "display", "plain"],
)
def test_inline_math_is_readable(tex: str, shown: str) -> None:
    assert simplify_math(tex) == shown


def test_views_show_math_readably_and_still_mark_the_terms() -> None:
    paper = dataclasses.replace(
        hf_papers()[0],
        title=r"Quantum LLM dynamics with \(T_w = i\hbar\)",
        abstract=r"We bound $\alpha$ for LLM agents.",
        ai_summary=None,
    )
    hit = match(paper, "LLM").hits
    view = Views()(paper, hit)
    assert view.title == "Quantum LLM dynamics with T_w = iℏ"
    assert "\\(" not in view.title_html and "<mark" in view.title_html and "LLM</mark>" in view.title_html
    assert view.snippet == "We bound α for LLM agents."


# -- feeds ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("paper_id", "atom_id"),
    [
        ("2411.17700", "urn:digest:paper:2411.17700"),
        ("hep-th/9901001", "urn:digest:paper:hep-th%2F9901001"),
        ("tag:example.org,2024:posts/1", "tag:example.org,2024:posts/1"),
        ("tag:Example.org,2024:x y", "urn:digest:paper:tag:Example.org,2024:x%20y"),
        ("https://example.org/p/1", "https://example.org/p/1"),
    ],
    ids=["arxiv", "old-arxiv", "tag", "bad-tag", "http"],
)
def test_atom_ids_are_valid_uris(paper_id: str, atom_id: str) -> None:
    assert _atom_id(paper_id) == atom_id


def test_a_token_that_reads_as_a_bitcoin_address_gets_a_letter_in_front() -> None:
    assert private_feed_name("0123456789abcdef0123456789abcdef") == "0123456789abcdef0123456789abcdef.xml"
    looks = "1a2b3c4d5e6f7a8b9c1d2e3f4a5b6c7d"
    assert _BITCOIN_LIKE.fullmatch(looks)
    assert private_feed_name(looks) == f"f{looks}.xml"
    assert not re.search(r"\b[13][a-km-zA-HJ-NP-Z1-9]{29,34}\b", f"/feeds/{private_feed_name(looks)}")


# -- the piped fetch listing -------------------------------------------------------------------------
def test_the_piped_listing_is_a_line_per_paper() -> None:
    papers = [
        *hf_papers()[:3],
        Paper(id="x1", title="A  title\nover lines", abstract="", sources=("hf", "arxiv")),
    ]
    lines = listing(papers)
    assert len(lines) == 4
    assert lines[-1] == "x1\thf,arxiv\tA title over lines"
    assert all(line.count("\t") == 2 for line in lines)


# -- outbox ---------------------------------------------------------------------------------------------
def test_an_outbox_file_is_named_by_the_digest_date_not_the_send_date() -> None:
    rendered = RenderedEmail(subject="s", html="<p>x</p>", text="x")
    sent = dt.datetime(2026, 6, 15, 7, 0, tzinfo=dt.UTC)
    late = build_message(rendered, READER, settings(), date=dt.date(2026, 6, 11), key=b"k", now=sent)
    assert eml_name(late).startswith("2026-06-11_")
    assert late.parsed()["Date"].datetime.date() == dt.date(2026, 6, 15)
    # a Message-ID from elsewhere (or from before): the day it was sent
    other = dataclasses.replace(late, message_id="<abc.def@example.org>")
    assert eml_name(other).startswith("2026-06-15_")
