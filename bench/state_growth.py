"""How big the state file gets over months of daily runs, with `[state] keep_days` applied.

Benchmark support only; no product logic. Each simulated day drives the product's own store and
pipeline functions in a run's order, on one state file:

    record_snapshot (the day's listing + the HTTP validators the fetcher would store)
    → new_on (seen_before + diff) → read_ledger → plan_run (matching every reader)
    → record_plan → mark_sending / mark_sent for every digest, as the sender does on a 250
    → finish_run → pipeline.retention.apply (compaction and shrinking)

The listing is the real one of tests/data (1,504 arXiv items + the 30 of the Hugging Face day)
with every id rewritten per day (`DDDD.NNNNN`, as long as an arXiv id), so each day is all new
papers in the real listing's shape; `--categories` keeps the items of those arXiv categories.
Readers are `scenario.generate` (seed 42).

Skipped, and why that does not change the state's size: fetching over HTTP (the same bytes and
validators are stored as `fetch_listing` would store them), rendering and sending the emails
(the state only records the ledger marks, written here with the real `mark_sending`/`mark_sent`
and a Message-ID and server reply of the usual length) and publishing (it only reads the state).
Matching runs for real on the first day and every `--every` days; on the days between, the
first day's plan is reused with the day's papers put in (every day is the same listing under
new ids, so matching gives the same digests: the checked days assert it). It is most of a
day's time, and the state records the plan, not how it was made.

    python bench/state_growth.py                        # both scenarios, 500 days, 1,000 readers
    python bench/state_growth.py --days 60 --readers 100 --scenario full
    python bench/state_growth.py --write BENCHMARKS.md  # replace the report's "State growth" section
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scenario import generate, write_toml  # noqa: E402

from digest.config import OutputConfig, Settings, SourceConfig, StateConfig  # noqa: E402
from digest.core.models import FetchResult, Paper, merge_papers  # noqa: E402
from digest.pipeline import retention  # noqa: E402
from digest.pipeline.daily import read_ledger, record_plan  # noqa: E402
from digest.pipeline.fetching import new_on  # noqa: E402
from digest.plan import Plan, plan_run  # noqa: E402
from digest.profiles import load_subscribers  # noqa: E402
from digest.sources.arxiv import parse_arxiv_rss  # noqa: E402
from digest.sources.hf import parse_hf_daily  # noqa: E402
from digest.store import Store  # noqa: E402

DATA = HERE.parent / "tests" / "data"
ARXIV = DATA / "arxiv_rss_2024-11-28_all.xml"
HF = DATA / "hf_daily_papers_2026-06-12.json"
ARXIV_URL = "https://rss.arxiv.org/rss/{}"
HF_URL = "https://huggingface.co/api/daily_papers"
FIRST_DAY = dt.date(2027, 1, 4)
SECTION = "## State growth"
SCENARIOS = {"full": None, "two-categories": ("cs.LG", "cs.CV")}


@dataclasses.dataclass
class Listing:
    papers: list[Paper]
    arxiv_body: bytes
    hf_body: bytes | None
    arxiv_url: str


def listing(categories: tuple[str, ...] | None) -> Listing:
    arxiv_body = ARXIV.read_bytes()
    arxiv = parse_arxiv_rss(arxiv_body, "arxiv")
    if categories is None:
        hf_body = HF.read_bytes()
        papers = merge_papers(arxiv + parse_hf_daily(hf_body, "hf"))
        return Listing(papers, arxiv_body, hf_body, ARXIV_URL.format("+".join(_archives(arxiv))))
    kept = [p for p in arxiv if set(p.categories) & set(categories)]
    body = _only_items_in(arxiv_body, categories)
    return Listing(merge_papers(kept), body, None, ARXIV_URL.format("+".join(categories)))


def _only_items_in(body: bytes, categories: tuple[str, ...]) -> bytes:
    """The real feed with only the items listed in `categories`: what arXiv serves for them."""
    wanted = {f"<category>{c}</category>".encode() for c in categories}
    parts = re.split(rb"(<item\b.*?</item>\s*)", body, flags=re.S)
    return b"".join(p for p in parts if not p.startswith(b"<item") or any(w in p for w in wanted))


def _archives(papers: list[Paper]) -> list[str]:
    return sorted({c.split(".")[0] for p in papers for c in p.categories[:1]})


def day_papers(base: list[Paper], day: int) -> list[Paper]:
    """The listing with every id new for `day`, ids as long as an arXiv id and rising."""
    return [dataclasses.replace(p, id=f"{day:04d}.{i:05d}") for i, p in enumerate(base)]


def responses(data: Listing, date: dt.date, day: int) -> list[FetchResult]:
    """What the fetcher returns for the day: the arXiv feed (one URL), and the Hugging Face
    day and the day before (a URL each, as `hf_daily` with days = 2 asks)."""
    out = [FetchResult(data.arxiv_url, data.arxiv_body, 200, f'"a{day}"', None, False)]
    if data.hf_body is not None:
        for back in (0, 1):
            when = (date - dt.timedelta(days=back)).isoformat()
            url = f"{HF_URL}?date={when}&limit=100&p=0"
            out.append(FetchResult(url, data.hf_body, 200, f'"h{when}"', None, False))
    return out


def simulate(
    scenario: str,
    *,
    days: int,
    readers: int,
    keep_days: int | None,
    every: int,
    folder: Path,
    log: Any = print,
) -> dict[str, Any]:
    data = listing(SCENARIOS[scenario])
    write_toml(generate(data.papers, readers, seed=42), folder / "subscribers.toml")
    sources = ["arxiv", "hf"]  # the readers' profiles name both (an empty hf day in two-categories)
    subscribers = load_subscribers(folder / "subscribers.toml", source_names=sources)
    settings = Settings(
        state=StateConfig(path=folder / "state.sqlite3", keep_days=keep_days),
        sources=[SourceConfig(name=n, kind="arxiv_rss", url=ARXIV_URL.format("cs")) for n in sources],
        output=OutputConfig(dir=folder / "public"),
    )
    curve: list[dict[str, Any]] = []
    template: dict[str, Plan] = {}  # the first day's plan, reused on the days between checks
    started = time.perf_counter()
    sent = 0
    with Store.from_config(settings.state) as store:
        for day in range(1, days + 1):
            date = FIRST_DAY + dt.timedelta(days=day - 1)
            now = dt.datetime.combine(date, dt.time(7), dt.UTC)
            sent += _run_day(
                settings, store, subscribers, data, date, day, now, template, check=day % every == 0
            )
            if day % every == 0 or day == days:
                size = store.path.stat().st_size
                wal = store.path.with_name(store.path.name + "-wal")
                point: dict[str, Any] = {
                    "day": day,
                    "bytes": size + (wal.stat().st_size if wal.exists() else 0),
                    "tables": store.table_sizes(),
                    "oldest_full": str(store.oldest_full_day()),
                    "seconds": round(time.perf_counter() - started, 1),
                }
                curve.append(point)
                log(f"{scenario}: day {day}: {point['bytes'] / 1e6:.2f} MB ({point['seconds']} s)")
    return {
        "scenario": scenario,
        "papers_per_day": len(data.papers),
        "readers": readers,
        "keep_days": retention.window_days(settings),
        "keep_days_set": keep_days,
        "days": days,
        "digests_sent": sent,
        "curve": curve,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _run_day(
    settings: Settings,
    store: Store,
    subscribers: Any,
    data: Listing,
    date: dt.date,
    day: int,
    now: dt.datetime,
    template: dict[str, Plan],
    *,
    check: bool,
) -> int:
    papers = day_papers(data.papers, day)
    names = [s.name for s in settings.sources]
    store.record_snapshot(date, papers, responses(data, date, day), sources=names, now=now)
    result = new_on(store, date)
    assert result is not None
    store.start_run(date, now)
    ledger = read_ledger(store, date, result)
    if "plan" not in template or check:
        plan = plan_run(date, subscribers, result.new, ledger)
        if "plan" in template:  # the reused plan is what matching gives
            assert _digests(plan) == _digests(_reused(template["plan"], result.new, date)), day
        template.setdefault("plan", plan)
    else:
        plan = _reused(template["plan"], result.new, date)
    record_plan(store, plan, now)
    with store.grouped_commits():
        for n, send in enumerate(plan.sends):
            email = send.subscriber.email
            store.mark_sending(
                send.date, email, f"<{date:%Y%m%d}070000.{n:05d}.{day:08x}@digest.localhost>", now
            )
            store.mark_sent(send.date, email, f"250 2.0.0 Ok: queued as 4Z{day:06X}{n:05X}", now)
    summary: dict[str, object] = {
        "new": len(result.new),
        "updates": len(result.updates),
        "sent": len(plan.sends),
    }
    store.finish_run(date, "ok", summary, now)
    retention.apply(settings, store, date, now)
    return len(plan.sends)


def _reused(plan: Plan, new: tuple[Paper, ...], date: dt.date) -> Plan:
    """`plan` (of the first day, everything sent) for `date`: the same digests, of `date`'s papers
    (the same listing position: the id's number)."""
    by_number = {p.id.split(".")[1]: p for p in new}
    sends = []
    for send in plan.sends:
        assert send.digest is not None
        matches = tuple(m._replace(paper=by_number[m.paper.id.split(".")[1]]) for m in send.digest.matches)
        digest = dataclasses.replace(send.digest, date=date, matches=matches)
        sends.append(dataclasses.replace(send, date=date, digest=digest))
    return dataclasses.replace(plan, sends=sends, recorded=[date])


def _digests(plan: Plan) -> list[tuple[str, list[str]]]:
    return [(s.subscriber.email, [m.paper.id for m in s.digest.matches]) for s in plan.sends if s.digest]


def per_day_growth(curve: list[dict[str, Any]], keep_days: int) -> float | None:
    """Bytes per day between the first point past the window (plus 50 days to settle) and the last."""
    past = [p for p in curve if p["day"] >= keep_days + 50]
    if len(past) < 2:
        return None
    return (past[-1]["bytes"] - past[0]["bytes"]) / (past[-1]["day"] - past[0]["day"])


BARS = {"full": 50e6, "two-categories": 15e6}
GROWTH_BAR = 80e3


def report(results: list[dict[str, Any]], seconds: float) -> str:
    lines = [
        SECTION,
        "",
        f"Generated by `python bench/state_growth.py` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC in "
        f"{seconds:.0f} s ({platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}). "
        "Each day is a run on one state file: the day's listing (the real one, every id new), every "
        "reader's digest planned, recorded and marked sent, then `[state] keep_days` applied. "
        "Emails are not rendered or sent and nothing is published: neither writes to the state "
        "beyond the ledger marks, which are written; matching runs for real every 50 days and its "
        "plan is reused in between (the same listing under new ids; the checked days assert it "
        "matches). The HTTP cache holds the day's arXiv feed as served (the real 2.6 MB body; for two "
        "categories, that body with only their items). Bars: ≤ 50 MB (full) and ≤ 15 MB "
        "(two categories) after 500 days, growth ≤ 80 KB a day past keep_days.",
        "",
    ]
    for r in results:
        growth = per_day_growth(r["curve"], r["keep_days"])
        final = r["curve"][-1]
        bar = BARS[r["scenario"]]
        lines += [
            f"### {r['scenario']}: {r['papers_per_day']:,} papers a day, {r['readers']:,} readers, "
            f"keep_days = {r['keep_days']}"
            + ("" if r.get("keep_days_set") else " (unset: the default window)"),
            "",
            "| day | state file | largest tables |",
            "|---|---|---|",
        ]
        for p in r["curve"]:
            top = ", ".join(f"{n} {b / 1e6:.1f}" for n, b in list(p["tables"].items())[:4])
            lines.append(f"| {p['day']} | {p['bytes'] / 1e6:.2f} MB | {top} (MB) |")
        mark = "✔" if final["bytes"] <= bar else "✘"
        parts = _by_part(final["tables"])
        window = ", ".join(f"{name} {b / 1e6:.1f}" for name, b in parts.items() if name != "compacted")
        lines += [
            "",
            f"- after {r['days']} days: **{final['bytes'] / 1e6:.1f} MB** (bar ≤ {bar / 1e6:.0f} MB {mark}); "
            f"{r['digests_sent']:,} digests recorded sent; simulated in {r['seconds']:.0f} s",
            f"- of which the {r['keep_days']} days kept whole: {window} (MB); everything compacted "
            f"(seen_papers, ledger_days, readers): {parts.get('compacted', 0) / 1e6:.1f} MB",
        ]
        if growth is not None and r["scenario"] == "full":
            gmark = "✔" if growth <= GROWTH_BAR else "✘"
            lines.append(
                f"- growth once past keep_days: **{growth / 1e3:.1f} KB per day** (bar ≤ 80 KB {gmark})"
            )
        elif growth is not None:
            lines.append(f"- growth once past keep_days: {growth / 1e3:.1f} KB per day")
        lines.append("")
    return "\n".join(lines)


_PARTS = {
    "snapshot_papers": "snapshot_papers",
    "listed": "listed",
    "deliveries": "deliveries",
    "http_cache": "http_cache",
    "seen_papers": "compacted",
    "ledger_days": "compacted",
    "ledger_history": "compacted",
    "readers": "compacted",
}


def _by_part(tables: dict[str, int]) -> dict[str, int]:
    """Table and index bytes summed by what they hold (an index counts with its table)."""
    out: dict[str, int] = {}
    for name, size in tables.items():
        part = next((p for t, p in _PARTS.items() if t in name), "other")
        out[part] = out.get(part, 0) + size
    return out


def write_section(path: Path, text: str) -> None:
    """Replace the report's section (up to the next "## "), or append it."""
    old = path.read_text() if path.exists() else ""
    start = old.find(SECTION)
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text)
        return
    end = old.find("\n## ", start + len(SECTION))
    path.write_text(old[:start] + text.rstrip("\n") + "\n" + (old[end:] if end >= 0 else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=500)
    ap.add_argument("--readers", type=int, default=1000)
    ap.add_argument(
        "--keep-days", type=int, default=None, help="[state] keep_days (default: unset, as shipped)"
    )
    ap.add_argument("--every", type=int, default=50, help="report the size every N days")
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--write", type=Path, help="replace the 'State growth' section of this report")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    results = []
    for name in SCENARIOS if args.scenario == "all" else [args.scenario]:
        with tempfile.TemporaryDirectory(prefix="digest-growth-") as tmp:
            results.append(
                simulate(
                    name,
                    days=args.days,
                    readers=args.readers,
                    keep_days=args.keep_days,
                    every=args.every,
                    folder=Path(tmp),
                )
            )
    text = report(results, time.perf_counter() - started)
    print(text)
    if args.write:
        write_section(args.write, text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
