"""Text laid out in terminal columns: display width, and wrapping by it.

A CJK character takes two columns in a terminal and a fixed-width mail client, and CJK text has
no spaces to break at: wrapping that counts characters let a line of Chinese reach 115 columns.
Here widths are display widths (wcwidth), and a line may also break beside a wide character
(before it, or after it), as in East Asian typesetting, except before closing punctuation and
after opening punctuation. Helper module: no business logic.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator

from wcwidth import wcswidth

from digest.core.models import Paper

# No line starts with these (closing brackets, full stops, commas, small kana marks) ...
_NO_BREAK_BEFORE = frozenset(
    "、。，．・：；？！）」』】〕〉》〗〙〛｝］ー…‥々〻ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ"
)
# ... and none ends with these (opening brackets).
_NO_BREAK_AFTER = frozenset("（「『【〔〈《〖〘〚｛［")


def width(text: str) -> int:
    """Columns `text` takes in a terminal: 2 for a CJK character, 0 for a combining mark."""
    if text.isascii():
        return len(text)
    found = wcswidth(text)
    return found if found >= 0 else len(text)  # a character wcwidth cannot measure: one column


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _pieces(word: str) -> Iterator[str]:
    """A word split where a line may break inside it: beside wide characters only."""
    start = 0
    for i in range(1, len(word)):
        before, char = word[i - 1], word[i]
        if char in _NO_BREAK_BEFORE or before in _NO_BREAK_AFTER:
            continue
        if _wide(char) or _wide(before):
            yield word[start:i]
            start = i
    yield word[start:]


def _units(text: str) -> Iterator[tuple[str, int, bool]]:
    """(piece, its width, whether a space goes before it) for every piece of `text`'s words."""
    for word in text.split():
        if word.isascii():
            yield word, len(word), True
            continue
        for n, piece in enumerate(_pieces(word)):
            yield piece, width(piece), n == 0


def wrap_columns(text: str, columns: int, indent: str, first: str | None) -> str:
    """Greedy wrapping of `text`'s words at `columns` display columns; `indent` on every line,
    `first` (when given) on the first. A piece wider than a line gets a line of its own."""
    lines: list[str] = []
    line = indent if first is None else first
    used = width(line)
    empty = True
    for piece, size, spaced in _units(text):
        gap = 1 if spaced and not empty else 0
        if not empty and used + gap + size > columns:
            lines.append(line)
            line, used = indent + piece, width(indent) + size
        else:
            line, used = line + " " * gap + piece, used + gap + size
        empty = False
    if not empty:
        lines.append(line)
    return "\n".join(lines)


def listing(papers: Iterable[Paper]) -> list[str]:
    """`digest fetch`'s papers for a pipe: one line each, id, sources and title, tab-separated
    (what `cut` and `grep` read; no column width to squeeze a title into)."""
    return ["\t".join((p.id, ",".join(p.sources), " ".join(p.title.split()))) for p in papers]
