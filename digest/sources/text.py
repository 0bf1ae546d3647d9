"""Text helpers for the source parsers: HTML to plain text, line wraps, TeX accents, author lists,
arXiv ids. Pure string functions; they hold no business logic.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

__all__ = [
    "arxiv_id_from",
    "collapse_ws",
    "decode_tex_accents",
    "drop_affiliation",
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

# Tags that are dropped (their text kept). Anything else that looks like a tag is kept verbatim: in
# abstracts `$a<b$ and $c>d$` is mathematics, not a tag named "b$".
# fmt: off
_KNOWN_TAGS = frozenset({
    "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big", "blockquote",
    "body", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del", "details",
    "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4",
    "h5", "h6", "head", "header", "hr", "html", "i", "img", "ins", "kbd", "label", "li", "main",
    "mark", "nav", "ol", "p", "pre", "q", "s", "samp", "section", "small", "span", "strike",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr",
    "tt", "u", "ul", "var", "wbr", "math", "mi", "mo", "mn", "msup", "msub", "mrow", "mfrac",
    "msqrt", "semantics", "annotation",
})
# Whose content is not text at all.
_SKIP_CONTENT = frozenset({"script", "style", "template", "noscript", "iframe", "object", "svg", "title"})
# Boundaries that separate words ("a<br>b" is "a b", not "ab").
_BREAKING = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "summary", "table", "td", "th", "tr", "ul",
})
# fmt: on


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_CONTENT:
            self.skipping += 1
        elif tag in _BREAKING:
            self.parts.append(" ")
        elif tag not in _KNOWN_TAGS and not self.skipping:
            self.parts.append(self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKING:
            self.parts.append(" ")
        elif tag not in _KNOWN_TAGS and tag not in _SKIP_CONTENT and not self.skipping:
            self.parts.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_CONTENT:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BREAKING:
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


# -- authors ---------------------------------------------------------------------------------------

_OPEN, _CLOSE = "([{", ")]}"
_INITIALS_RE = re.compile(r"^(?:[A-Z][a-z]?\.?[\s-]*)+$")
_AND_RE = re.compile(r"^(?:and|&)\s+", re.I)
_TRAILING_GROUP_RE = re.compile(r"\s*\((?:[^()]|\([^()]*\))*\)\s*$")


def split_authors(text: str) -> list[str]:
    """Split one author string on commas, semicolons and " and ", but not inside parentheses.

    `"A (LORIA, CNRS), B and C"` -> `["A (LORIA, CNRS)", "B", "C"]`. A piece that is only initials
    belongs to the surname before it (`"Kukla, D., Wood, D."` -> `["D. Kukla", "D. Wood"]`).
    """
    pieces: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0 and ch in ",;":
            pieces.append(text[start:i])
            start = i + 1
        elif depth == 0 and text.startswith(" and ", i):
            pieces.append(text[start:i])
            start = i + len(" and ")
            i = start
            continue
        i += 1
    pieces.append(text[start:])

    names: list[str] = []
    for piece in pieces:
        name = _AND_RE.sub("", collapse_ws(piece))
        if not name:
            continue
        if names and _INITIALS_RE.match(name) and not _INITIALS_RE.match(names[-1]) and " " not in names[-1]:
            names[-1] = f"{name} {names[-1]}"
        else:
            names.append(name)
    return names


def drop_affiliation(name: str) -> str:
    """`"Jean Kieffer (LORIA, CNRS)"` -> `"Jean Kieffer"`; a name that is only a group is kept."""
    stripped = name
    while True:
        shorter = _TRAILING_GROUP_RE.sub("", stripped)
        if shorter == stripped:
            break
        stripped = shorter
    return stripped.strip() or name.strip()


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
