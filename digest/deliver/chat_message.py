"""The text of a channel message, and its split into parts that each fit one chat message.

`chat_text` lays a digest out as a compact list in light Markdown (CommonMark), the format Apprise
is told the text is in, so that it converts it for each service (Slack's mrkdwn, HTML for Matrix
or Telegram, as is for Mattermost, Discord and the generic JSON and form webhooks):

    1. Title of the paper
    <https://arxiv.org/abs/2411.17700>
    matched "LLM" in the title

one block per paper, blocks separated by a blank line (no block holds one), and a last block
"…and N more" with the archive's address when the digest lists fewer papers than matched.
`split_parts` packs those blocks into parts, never cutting a block unless it is too long for a
message on its own. Pure: no network, no Apprise (the transport passes the service's measure).

Titles and profile terms are text from strangers: on one line, cut, and inert in every chat
format (`inert`). Links are only http(s), percent-encoded where a chat format would read a
character as markup, and in angle brackets (a CommonMark autolink; Discord shows no preview
for it, which keeps a 20-paper list compact).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import quote

from digest.core.models import Digest, Match, Paper
from digest.deliver import printable

TITLE_CHARS = 300  # a title is cut here (arXiv titles are under 250)
WHY_CHARS = 300
URL_CHARS = 500  # a longer link is left out rather than cut (a cut link leads nowhere)
SEPARATOR = "\n\n"  # between blocks; a block never contains it

# What a chat format reads as markup in the middle of a line: CommonMark emphasis, code, links,
# autolinks and raw HTML, the backslash itself; GFM strikethrough and tables; Discord spoilers
# (`||`); Mattermost channel links (`~town-square`). Escaped with a backslash, which CommonMark
# renders as the character itself.
_MARKUP = re.compile(r"([\\`*_\[\]<>~|])")
# "@channel", "@here", "@everyone", "@room", "<@U123>": a zero-width space after the "@" keeps
# every service from reading a mention, and shows the same.
_MENTION = "@\u200b"
# Characters left as they are in a link: RFC 3986's reserved and unreserved ones, and "%" (the
# link may be encoded already). Everything else (spaces, quotes, "<", ">", "|", "\", "`", "{",
# "}", "^", non-ASCII) is percent-encoded, so a link cannot end early or carry a Slack label.
_URL_SAFE = "/:?#[]@!$&'()*+,;=%-._~"


def chat_text(digest: Digest, *, archive_url: str | None = None) -> tuple[str, str]:
    """The message's title and body for `digest`: the title names the date and the count,
    the body lists each paper (title, link, why) and says how many more matched.

    `archive_url` is the day's archive page (`render.archive.archive_url`), linked from the
    "more" line and from an empty digest; None without `[output] base_url`."""
    total = max(digest.total_matched, len(digest.matches))
    title = f"Paper digest — {digest.date.isoformat()}: {_count(total, 'new paper')}"
    blocks = [item(number, match) for number, match in enumerate(digest.matches, start=1)]
    link = _link(archive_url)
    if digest.more:
        blocks.append(f"…and {digest.more} more" + (f": {link}" if link else "."))
    elif not blocks:
        blocks.append(
            "Nothing new today: no new paper matched." + (f" Everything new: {link}" if link else "")
        )
    return title, SEPARATOR.join(blocks)


def item(number: int, match: Match) -> str:
    """One paper's block: its number and title, its link, why it matched (no line for a profile
    that takes every paper: the same words under each paper say nothing)."""
    lines = [f"{number}. {inert(match.paper.title, TITLE_CHARS)}"]
    link = _link(_paper_url(match.paper))
    if link:
        lines.append(link)
    if match.hits:
        lines.append(inert(match.why(), WHY_CHARS))
    return "\n".join(lines)


def inert(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters, with nothing a chat format would read as
    markup or a mention."""
    line = printable(text, limit)
    return _MARKUP.sub(r"\\\1", line).replace("@", _MENTION)


def _paper_url(paper: Paper) -> str | None:
    return paper.url or paper.pdf_url


def _link(url: str | None) -> str | None:
    """`<url>` for an http(s) address of reasonable length, else None."""
    if not url:
        return None
    url = url.strip()
    if not url.lower().startswith(("https://", "http://")):
        return None
    safe = quote(url, safe=_URL_SAFE)
    return f"<{safe}>" if len(safe) <= URL_CHARS else None


def _count(count: int, word: str) -> str:
    return f"{count or 'no'} {word}{'' if count == 1 else 's'}"


# -- splitting ------------------------------------------------------------------------------------

Measure = Callable[[str], int]  # how long a text is once the service has converted it


def split_parts(body: str, limit: int, measure: Measure = len) -> list[str]:
    """`body` as parts of at most `limit` (by `measure`), each holding whole blocks, in order.

    Blocks are packed greedily. The sum of the blocks' measures is the estimate (conversion is
    close to additive); each part is then measured whole and gives its last blocks to the next
    part while it is over. A block over the limit on its own is cut at its lines, and a line
    over it at the limit (only then: a 300-character title and a link fit any chat service).
    `limit` <= 0 means no limit.
    """
    if limit <= 0 or measure(body) <= limit:
        return [body]
    pieces = list(_pieces(body.split(SEPARATOR), limit, measure))
    parts: list[str] = []
    start = 0
    while start < len(pieces):
        end = _greedy_end(pieces, start, limit, measure)
        while end - start > 1 and measure(SEPARATOR.join(pieces[start:end])) > limit:
            end -= 1
        parts.append(SEPARATOR.join(pieces[start:end]))
        start = end
    return parts


def _greedy_end(pieces: Sequence[str], start: int, limit: int, measure: Measure) -> int:
    """The end of the longest run of pieces from `start` whose estimated size fits (at least one)."""
    gap = measure(SEPARATOR)
    used = measure(pieces[start])
    end = start + 1
    while end < len(pieces):
        used += gap + measure(pieces[end])
        if used > limit:
            break
        end += 1
    return end


def _pieces(blocks: Sequence[str], limit: int, measure: Measure) -> Iterator[str]:
    """The blocks, each cut into lines (and a line into slices) only when it is over `limit`."""
    for block in blocks:
        if measure(block) <= limit:
            yield block
            continue
        for line in block.split("\n"):
            if measure(line) <= limit:
                yield line
            else:
                yield from _slices(line, limit, measure)


def _slices(line: str, limit: int, measure: Measure) -> Iterator[str]:
    """A line too long for one message, in slices that fit (the last resort: it cuts a word)."""
    while line:
        size = min(len(line), limit)
        while size > 1 and measure(line[:size]) > limit:
            size = max(1, size * 3 // 4)
        yield line[:size]
        line = line[size:]
