"""The summaries stage: a TL;DR for each (paper, language) the plan's digests hold, before sending.

Runs after the plan is recorded and before the first message is built, and never stands in the
way of delivery: whatever fails (the endpoint down, slow, rate-limited, answering nonsense), the
papers it concerns fall back to Hugging Face's summary or the abstract's opening, the failure is
counted in the run's summary, and the run's exit code does not change.

- Only papers a reader will receive are asked for, once per (paper, version, model, language,
  prompt): the state caches each answer (`store.summaries`), so a paper several readers get, a
  repeated run and a digest that goes out late cost nothing more. A late digest (its papers
  recorded earlier) shows what the cache has.
- The daily caps (`max_papers`, `max_tokens`) count what the cache holds of the run date's runs;
  at the cap, the rest falls back.
- Requests run `concurrency` at a time, each with its own timeout and retries (`summaries.client`),
  all within `deadline`; five failures in a row stop the stage (a breaker: a dead endpoint must
  not cost every paper its timeout).
- A dry run asks nothing: it shows what the cache has.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from digest.config import Settings, SummariesConfig
from digest.core.errors import StoreError
from digest.core.models import Paper
from digest.core.tldr import Tldr, TldrBook
from digest.pipeline.summary import RunSummary, SummaryCounts, Timer
from digest.plan import Send
from digest.store import Store, SummaryRow
from digest.summaries import PROMPT_ID, Answer, ChatClient, check_answer, request_body

_log = logging.getLogger(__name__)
BREAKER = 5  # papers in a row the endpoint did not answer, after which nothing more is asked


@dataclass
class _Wanted:
    """What the plan's sends hold: papers to summarise, and papers of late digests (cache only)."""

    papers: dict[tuple[str, str], Paper] = field(default_factory=dict)  # (paper id, language)
    late: dict[str, set[str]] = field(default_factory=dict)  # language -> paper ids


def wanted(config: SummariesConfig, sends: Sequence[Send]) -> _Wanted:
    out = _Wanted()
    for send in sends:
        language = config.language_for(send.subscriber.language)
        if send.digest is not None:
            for m in send.digest.matches:
                out.papers.setdefault((m.paper.id, language), m.paper)
        elif send.late is not None:
            out.late.setdefault(language, set()).update(send.late.papers)
    return out


def summarize(
    settings: Settings,
    store: Store,
    sends: Sequence[Send],
    date: dt.date,
    *,
    dry_run: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[TldrBook, SummaryCounts]:
    """The TL;DRs the sends' readers are shown, and what it took. `date` is the run date."""
    config = settings.summaries
    counts = SummaryCounts()
    book = TldrBook()
    want = wanted(config, sends)
    for language, ids in want.late.items():
        for pid, tldr in store.summaries_for(ids, language).items():
            book.add(language, pid, tldr)
    todo = _from_cache(config, store, want, book, counts)
    if dry_run or not todo:
        counts.skipped += len(todo) if dry_run else 0
        return book, counts
    used_papers, used_tokens = store.summary_usage(date)
    room = max(0, config.max_papers - used_papers)
    counts.capped += max(0, len(todo) - room)
    rows = asyncio.run(_ask_all(config, todo[:room], used_tokens, counts, book, transport))
    try:
        store.save_summaries(rows, date)
    except StoreError as exc:  # shown all the same; the next run asks again
        _log.warning("summaries not cached: %s", exc)
    return book, counts


def _from_cache(
    config: SummariesConfig, store: Store, want: _Wanted, book: TldrBook, counts: SummaryCounts
) -> list[tuple[Paper, str]]:
    """Put what the cache holds into `book`; return the (paper, language) pairs still to ask for."""
    by_language: dict[str, list[Paper]] = {}
    for (_, language), paper in want.papers.items():
        by_language.setdefault(language, []).append(paper)
    todo = []
    for language, papers in by_language.items():
        cached = store.cached_summaries(
            (p.id for p in papers), model=config.model, language=language, prompt=PROMPT_ID
        )
        for paper in papers:
            text = cached.get((paper.id, paper.version or 0))
            if text is None:
                todo.append((paper, language))
            else:
                book.add(language, paper.id, Tldr(text, config.model))
                counts.cached += 1
    return todo


async def _ask_all(
    config: SummariesConfig,
    todo: Sequence[tuple[Paper, str]],
    used_tokens: int,
    counts: SummaryCounts,
    book: TldrBook,
    transport: httpx.AsyncBaseTransport | None,
) -> list[SummaryRow]:
    """Ask for each of `todo`, `concurrency` at a time, until done, the deadline or the breaker."""
    until = time.monotonic() + config.deadline
    gate = asyncio.Semaphore(config.concurrency)
    rows: list[SummaryRow] = []
    state = {"tokens": used_tokens, "in_a_row": 0}

    async def one(chat: ChatClient, paper: Paper, language: str) -> None:
        async with gate:
            if state["in_a_row"] >= BREAKER or state["tokens"] >= config.max_tokens:
                counts.capped += 1
                return
            body = request_body(config.model, paper, language)
            answer = _counted(await chat.ask(body, until=until), body)
            counts.requests += answer.attempts
            counts.tokens_in += answer.tokens_in
            counts.tokens_out += answer.tokens_out
            state["tokens"] += answer.tokens_in + answer.tokens_out
            # the breaker counts an endpoint that does not answer, not answers that are discarded
            state["in_a_row"] = 0 if answer.text is not None else state["in_a_row"] + 1
            text, why = (
                check_answer(answer.text, paper, config.max_chars)
                if answer.text is not None
                else (None, answer.error)
            )
            if text is None:
                counts.fail(why)
                return
            counts.summarised += 1
            book.add(language, paper.id, Tldr(text, config.model))
            rows.append(
                SummaryRow(paper.id, paper.version or 0, config.model, language, PROMPT_ID, text,
                           answer.tokens_in, answer.tokens_out)
            )  # fmt: skip

    async with ChatClient(config, transport=transport) as chat:
        tasks = [asyncio.create_task(one(chat, paper, language)) for paper, language in todo]
        _, pending = await asyncio.wait(tasks, timeout=config.deadline + 1) if tasks else (set(), set())
        for task in pending:  # only a try that ignored its own timeout gets here
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            counts.fail("the stage's deadline passed", len(pending))
    return rows


def _counted(answer: Answer, body: dict[str, Any]) -> Answer:
    """`answer` with token counts estimated (4 characters a token) when the endpoint gave none."""
    if answer.text is None or (answer.tokens_in and answer.tokens_out):
        return answer
    sent = sum(len(str(m["content"])) for m in body["messages"])
    return Answer(
        answer.text,
        answer.tokens_in or sent // 4 + 1,
        answer.tokens_out or len(answer.text) // 4 + 1,
        answer.error,
        answer.attempts,
    )


def summarize_sends(
    settings: Settings,
    store: Store,
    sends: Sequence[Send],
    summary: RunSummary,
    timer: Timer,
    *,
    dry_run: bool,
) -> TldrBook:
    """A TL;DR for each paper the digests hold ([summaries]): what fails there falls back to the
    paper's own summary or abstract and is counted, never in the way of sending."""
    if not settings.summaries.enabled:
        return TldrBook()
    try:
        with timer("summaries"):
            tldrs, summary.summaries = summarize(settings, store, sends, summary.date, dry_run=dry_run)
    except Exception as exc:
        _log.exception("summaries skipped")
        summary.summaries = SummaryCounts()
        summary.summaries.fail(f"the summaries stage failed: {exc}")
        return TldrBook()
    return tldrs
