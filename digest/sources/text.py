"""Text helpers for the source parsers: HTML to plain text, line wraps, TeX accents, author lists,
arXiv ids. Pure string functions; they hold no business logic.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

from digest.sources.authors import drop_affiliation, split_authors

__all__ = [
    "arxiv_id_from",
    "collapse_ws",
    "decode_tex_accents",
    "drop_affiliation",
    "first_sentence",
    "join_wraps",
    "split_authors",
    "strip_html",
]


def collapse_ws(text: str) -> str:
    """Every run of whitespace (newlines included) becomes one space; ends stripped."""
    return " ".join(text.split())


def join_wraps(text: str) -> str:
    """Join hard line wraps: `"for\\n  Contrastive"` -> `"for Contrastive"`."""
    return collapse_ws(text)


# -- HTML ------------------------------------------------------------------------------------------

# Every tag is dropped (its text kept), whatever its name (`<video>`, `<figure>`, `<o:p>`, a
# custom element): a browser would not show it either. Only what cannot be a tag name stays
# verbatim: in abstracts `$a<b$ and $c>d$` is mathematics, not a tag named "b$".
_TAG_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:[:._-][a-z0-9]+)*")
# fmt: off
# Whose content is not text at all (a video's content is the "your browser cannot play it" note).
_SKIP_CONTENT = frozenset({
    "script", "style", "template", "noscript", "iframe", "object", "svg", "title", "video", "audio",
    "canvas",
})
# Boundaries that separate words ("a<br>b" is "a b", not "ab").
_BREAKING = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "summary", "table", "td", "th", "tr", "ul",
    # embedded media: a box of its own between the words around it
    "audio", "canvas", "embed", "iframe", "object", "svg", "video",
})
# fmt: on


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKING:
            self.parts.append(" ")
        if tag in _SKIP_CONTENT:
            self.skipping += 1
        elif not _TAG_NAME_RE.fullmatch(tag) and not self.skipping:
            self.parts.append(self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKING:
            self.parts.append(" ")
        elif not _TAG_NAME_RE.fullmatch(tag) and not self.skipping:
            self.parts.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_CONTENT:
            self.skipping = max(0, self.skipping - 1)
        if tag in _BREAKING:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """HTML (or plain text) to plain text: tags dropped, entities decoded once, whitespace collapsed."""
    if "<" not in text and "&" not in text:
        return collapse_ws(text)
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return collapse_ws("".join(parser.parts))


# A stop (and any closing quote or bracket) before a space and a word that is not lower case
# ("e.g. the" goes on), or a CJK full stop.
_SENTENCE_END_RE = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s+[^\sa-z])|[\u3002\uff01\uff1f]")


def first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of plain `text`, cut at a word (with "…") when longer than `limit`.

    What a title-less item (RSS 2.0 allows one with only a description) is listed under.
    """
    text = collapse_ws(text)
    end = _SENTENCE_END_RE.search(text)
    sentence = text[: end.end()] if end else text
    if len(sentence) <= limit:
        return sentence
    cut = sentence[:limit].rsplit(" ", 1)[0] if " " in sentence[:limit] else sentence[:limit]
    return cut.rstrip(" ,;:-") + "…"


# -- TeX accents -----------------------------------------------------------------------------------

_ACCENTS = {
    "`": "\u0300", "'": "\u0301", "^": "\u0302", "~": "\u0303", "=": "\u0304", "u": "\u0306",
    ".": "\u0307", '"': "\u0308", "r": "\u030a", "H": "\u030b", "v": "\u030c", "d": "\u0323",
    "c": "\u0327", "k": "\u0328", "b": "\u0331",
}  # fmt: skip
_LETTERS = {
    "l": "ł", "L": "Ł", "o": "ø", "O": "Ø", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "aa": "å",
    "AA": "Å", "ss": "ß", "i": "ı", "j": "ȷ", "dh": "ð", "DH": "Ð", "th": "þ", "TH": "Þ", "ng": "ŋ",
    "NG": "Ŋ", "dj": "đ", "DJ": "Đ",
}  # fmt: skip
_LETTER_NAMES = "|".join(sorted(_LETTERS, key=len, reverse=True))
# The base letter of an accent: `e`, `{e}`, `\i`, `{\i}`.
_BASE = r"(?:\{\s*(?P<b1>[A-Za-z]|\\[ij])\s*\}|(?P<b2>\\[ij](?![A-Za-z])|[A-Za-z]))"
_ACCENT_RE = re.compile(
    # Symbol accents may touch their letter (\'e); letter accents need a brace or a space (\c{c}, \v s).
    rf"\\(?P<sym>[`'^~=.\"])\s*{_BASE}|\\(?P<let>[uvHckrbd])(?:\s*\{{\s*(?P<b3>[A-Za-z]|\\[ij])\s*\}}|\s+(?P<b4>[A-Za-z]))"
)
_LETTER_RE = re.compile(rf"\\(?P<name>{_LETTER_NAMES})(?![A-Za-z])(?:\{{\}}|\s?)")
_GROUPED_RE = re.compile(r"\{(\w)\}")
_ESCAPED_RE = re.compile(r"\\([&%#_])")  # `AT\&T`, `50\%`
_MATH_RE = re.compile(r"(\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\])", re.S)


def _base_char(raw: str) -> str:
    return _LETTERS[raw[1:]] if raw.startswith("\\") else raw


def _decode_span(text: str) -> str:
    def accent(m: re.Match[str]) -> str:
        mark = _ACCENTS[m["sym"] or m["let"]]
        base = _base_char(m["b1"] or m["b2"] or m["b3"] or m["b4"])
        if base in "ıȷ":  # an accent on a dotless i/j is the ordinary letter with that accent
            base = "i" if base == "ı" else "j"
        return unicodedata.normalize("NFC", base + mark)

    out = _ACCENT_RE.sub(accent, text)
    out = _LETTER_RE.sub(lambda m: _LETTERS[m["name"]], out)
    out = _ESCAPED_RE.sub(r"\1", out)
    # `{\'e}` became `{é}`: drop braces that only grouped one letter.
    return _GROUPED_RE.sub(r"\1", out)


def decode_tex_accents(text: str) -> str:
    """`Barth\\'elemy` -> `Barthélemy`, `\\c{c}` -> `ç`, `{\\l}` -> `ł`; `$...$` maths left as written."""
    if "\\" not in text:
        return text
    pieces = _MATH_RE.split(text)
    # split() with one group: even indexes are prose, odd ones are maths.
    return "".join(p if i % 2 else _decode_span(p) for i, p in enumerate(pieces))


# -- arXiv ids -------------------------------------------------------------------------------------

# New style since 2007 (2411.17700, 0704.0001) and old style (hep-ph/9912567, math.GT/0309136).
_ID = r"(?P<id>\d{4}\.\d{4,5}|[a-z]+(?:-[a-z]+)?(?:\.[A-Z]{2})?/\d{7})(?:v(?P<v>\d+))?"
_ID_IN_TEXT_RE = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html)/|oai:arxiv\.org:|\barxiv:\s*){_ID}(?![\d.])", re.I
)
_BARE_ID_RE = re.compile(rf"\s*{_ID}\s*")


def arxiv_id_from(text: str | None) -> tuple[str, int | None] | None:
    """The arXiv id and version in a link, guid or bare id; None when there is none.

    `"oai:arXiv.org:2411.17700v1"` -> `("2411.17700", 1)`; `"http://arxiv.org/abs/hep-ph/9912567"`
    -> `("hep-ph/9912567", None)`. Only arXiv-shaped text counts: `example.org/1234.5678` is not one.
    """
    if not text:
        return None
    m = _BARE_ID_RE.fullmatch(text) or _ID_IN_TEXT_RE.search(text)
    if m is None:
        return None
    # `(?:\.[A-Z]{2})` needs case: the search is case-insensitive, so normalise the archive part.
    ident = m["id"]
    if "/" in ident:
        archive, number = ident.split("/")
        head, _, sub = archive.partition(".")
        ident = f"{head.lower()}{'.' + sub.upper() if sub else ''}/{number}"
    return ident, int(m["v"]) if m["v"] else None
