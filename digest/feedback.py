"""What readers teach the ranking, as commands callable from Python (the CLI and the web side call
these): "more like this" / "fewer like this" feedback, resetting it, and what `digest check` says
of each reader's liked papers.

Feedback arrives by mail or by the web. The email's links are mailto links to the From mailbox
with "more TOKEN" or "fewer TOKEN" as the subject (no server needed: a GitHub Actions deployment
applies them with `digest feedback "SUBJECT"`, as it does unsubscribes), or, with [web] base_url,
the web side's /feedback page, which calls `feedback` too. A token names the reader, the paper
and the direction, signed with the state's key: it cannot be turned into another one.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from digest.config import Settings, signing_key
from digest.core.errors import ConfigError
from digest.core.models import Subscriber, utcnow
from digest.core.tokens import token_from, verify_feedback
from digest.pipeline.relevance import gather
from digest.store import Store


@dataclass(frozen=True)
class FeedbackDone:
    email: str
    paper_id: str
    direction: str  # "more" | "fewer"
    title: str | None  # the paper's, when a stored listing has it


def feedback(settings: Settings, text: str) -> FeedbackDone:
    """Apply a feedback token: `text` is the token, or a mail's subject as received ("more TOKEN",
    maybe "Re: ..."), or the mailto link itself. A reader's newest word on a paper counts."""
    token = token_from(text)
    # create=False: a wrong --config must not record anything in a new, unused state
    with Store.from_config(settings.state, create=False) as store:
        found = verify_feedback(signing_key(settings, keep=False), token)
        if found is None:
            raise ConfigError(
                f"{token[:60]!r} is not a feedback token of this digest (wrong or cut short, or signed "
                "with another key)"
            )
        email, paper_id, direction = found
        paper = store.papers([paper_id]).get(paper_id)
        store.add_feedback(email, paper_id, direction, paper, utcnow())
    return FeedbackDone(email, paper_id, direction, paper.title if paper else None)


def reset_feedback(settings: Settings, email: str) -> int:
    """Forget the reader's feedback (their `like`/`dislike` stay); how many papers it was about."""
    with Store.from_config(settings.state, create=False) as store:
        return store.reset_feedback(email)


def liked_notes(settings: Settings, subscribers: Sequence[Subscriber]) -> list[str]:
    """For `digest check`: a line per reader with liked papers or feedback, after resolving the
    liked papers (stored listings, then the arXiv API; kept in the state when it exists). Raises
    ConfigError naming each reader and reference that cannot be resolved."""
    if not any(s.like or s.dislike for s in subscribers) and not settings.state.exists():
        return []
    with _state(settings) as store:
        tastes = gather(settings, store, subscribers, utcnow())
        said = store.feedback(s.email for s in subscribers)
    if tastes.unresolved:
        problems = [
            f"subscriber {email}: like/dislike: {key} could not be resolved: {_why(key, tastes.lookup_failed)}"
            for email, key in tastes.unresolved
        ]
        raise ConfigError(problems[0] if len(problems) == 1 else f"{len(problems)} problems", problems)
    lines = []
    for sub in subscribers:
        got = said.get(sub.email.lower(), [])
        if not (sub.like or sub.dislike or got):
            continue
        more = sum(1 for f in got if f.direction == "more")
        lines.append(
            f"{sub.email}: {len(sub.like)} liked, {len(sub.dislike)} disliked papers; "
            f"feedback: {more} more, {len(got) - more} fewer like this"
        )
    return lines


def _why(key: str, lookup_failed: str | None) -> str:
    """Why a liked paper is not resolved, as `digest check` says it."""
    if key.startswith("doi:"):  # arXiv's own DOIs are arXiv keys: this one is not on arXiv's API
        return "a DOI is found only in a stored listing (a paper a source listed with it); give its arXiv id"
    if lookup_failed:
        return f"the arXiv API could not be reached ({lookup_failed}); try again"
    return "not in a stored listing, and the arXiv API does not know it"


@contextlib.contextmanager
def _state(settings: Settings) -> Iterator[Store]:
    """The state when there is one; else a throwaway one, so `digest check` creates nothing."""
    if settings.state.exists():
        with Store.from_config(settings.state) as store:
            yield store
        return
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "check.sqlite3") as store:
        yield store
