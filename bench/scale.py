"""Scale: where a run's time and memory go at 10,000 to 100,000 readers (issue 20, "Scale").

Benchmark support only; no product logic. For each S, in `--runs` fresh processes: serve the
listings over HTTP, run `digest.pipeline.run` on a fresh (empty) state to the SMTP sink (4 connections),
timing each stage it calls (the stage functions are wrapped where `digest.pipeline.daily` calls
them), then send as many messages as the sink accepted, of the run's mean size, with a bare
aiosmtplib client over 4 reused connections (the raw limit), in the same process (as
bench/overlap.py does):

    python bench/scale.py --subscribers 10000,30000,100000 --runs 1 --json /tmp/scale.json
    python bench/scale.py --subscribers 30000 --no-smtp --profile /tmp/prof   # no mail: the other stages

The S readers are the first S of one seeded `bench/scenario.py` draw (scenarios nest), a fifth
of them with `feed = true`, so the run writes that many private feeds. Reports, per S, each
stage's seconds and seconds per 1,000 readers (linear scaling keeps that column flat), the run
from fetch to the last message accepted and whole against the raw limit, and peak RSS (the
run's process, and with the render worker's unshared memory).

`--no-smtp` replaces sending by marking each digest sending then sent in the ledger (no
rendering, no SMTP), to iterate on the other stages quickly; it reports no raw limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import ARXIV, DATE, NOW, bench_settings, listings_server, load_papers  # noqa: E402
from digest.store import Store  # noqa: E402

BAR_RATIO, BAR_RSS_MB, BAR_AT = 1.3, 600.0, 100_000
# (label, module, function): where `digest.pipeline.daily.run` finds each stage
STAGES = (
    # the run's wait for the profiles, read by a child beside the fetch (`readers_fork`), called
    # by the fetch before it stores the day
    ("load profiles", "digest.pipeline.readers_fork:ReadersFork", "readers"),
    ("fetch+parse+store", "digest.pipeline.daily", "fetch_day"),
    ("diff", "digest.pipeline.fetching", "diff"),
    ("gather", "digest.pipeline.daily", "_extra_inputs"),
    ("read ledger", "digest.pipeline.daily", "read_ledger"),
    ("match (plan)", "digest.pipeline.daily", "_plan"),
    ("record plan", "digest.pipeline.daily", "record_plan"),
    ("send", "digest.pipeline.sending", "send_jobs"),
    ("publish", "digest.pipeline.publishing", "publish"),
    ("retention", "digest.pipeline.retention", "apply"),
)
# timed inside the other: reported as its own line, taken out
NESTED = {"diff": "fetch+parse+store", "load profiles": "fetch+parse+store"}


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / (1024 * 1024)


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM): `ru_maxrss` would carry the parent's
    size at fork over the exec (Linux keeps the larger), and the parent holds the profiles drawn."""
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) / 1024
    return 0.0


class Clock:
    """Wraps each stage function: wall, CPU, RSS before/after and the peak RSS so far."""

    def __init__(self, profile_dir: str | None, tag: str) -> None:
        self.times: dict[str, dict[str, float]] = {}
        self.profile_dir, self.tag = profile_dir, tag
        self.undo: list[Callable[[], None]] = []
        self.active: list[str] = []

    def wrap(self, label: str, module: Any, name: str) -> None:
        original = getattr(module, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if label in NESTED and self.active[-1:] != [NESTED[label]]:
                return original(*args, **kwargs)  # timed only inside its outer stage
            self.active.append(label)
            try:
                with self.stage(label):
                    return original(*args, **kwargs)
            finally:
                self.active.pop()

        setattr(module, name, timed)
        self.undo.append(lambda: setattr(module, name, original))

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator[None]:
        profiler = None
        if self.profile_dir and label not in NESTED:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.002)
            profiler.start()
        before, wall, cpu = current_rss_mb(), time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            t = self.times.setdefault(label, {"wall": 0.0, "cpu": 0.0, "calls": 0, "rss_before_mb": before})
            t["wall"] += time.perf_counter() - wall
            t["cpu"] += time.process_time() - cpu
            t["calls"] += 1
            t["rss_after_mb"], t["peak_mb"] = current_rss_mb(), peak_rss_mb()
            if profiler is not None and self.profile_dir:
                profiler.stop()
                safe = label.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "_")
                Path(self.profile_dir, f"{self.tag}{safe}.txt").write_text(
                    profiler.output_text(unicode=True, color=False)
                )

    def sample(self) -> None:
        """RSS twice a second, with the stage running (or the one before, "after X"): the peak
        of each stretch of the run, the gaps between stages included."""
        last = "start"
        while not self.done.wait(0.5):
            label = self.active[-1] if self.active else f"after {last}"
            last = self.active[-1] if self.active else last
            rss = current_rss_mb()
            self.timeline.append((round(time.perf_counter() - self.started, 1), round(rss), label))
            self.peaks[label] = max(self.peaks.get(label, 0.0), rss)

    def __enter__(self) -> Clock:
        import importlib
        import threading

        for label, where, name in STAGES:
            module, _, cls = where.partition(":")  # "module:Class": a method of the class
            found = importlib.import_module(module)
            self.wrap(label, getattr(found, cls) if cls else found, name)
        self.timeline: list[tuple[float, int, str]] = []
        self.peaks: dict[str, float] = {}
        self.started, self.done = time.perf_counter(), threading.Event()
        self.sampler = threading.Thread(target=self.sample, daemon=True)
        self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.sampler.join()
        for undo in reversed(self.undo):
            undo()


def mark_sent(settings: Any, store: Any, jobs: Any, **_: Any) -> Any:
    """`--no-smtp`: each digest sending then sent in the ledger, as the sender commits them (the
    'sent' marks grouped with the next 'sending' commit), with no message built or sent."""
    from digest.core.models import utcnow
    from digest.deliver.sender import SendReport

    report = SendReport()
    with store.grouped_commits():
        for n, job in enumerate(jobs):
            store.mark_sending(job.date, job.subscriber.email, f"<{n}@scale.bench>", utcnow())
            store.mark_sent(job.date, job.subscriber.email, "250 ok (not sent: --no-smtp)", utcnow())
            report.sent.append(job.subscriber.email)
    return report


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx
    import psutil

    from bench.overlap import Uss, children_peak_mb
    from bench.run import raw_send
    from bench.smtp_sink import Sink
    from digest import pipeline
    from digest.config import SourceConfig
    from digest.pipeline import sending

    work = Path(spec["work"])
    start_mb = peak_rss_mb()
    with listings_server(ARXIV) as base, Sink() as sink:
        sources = [
            SourceConfig(name="arxiv", kind="arxiv_rss", url=f"{base}/rss/all"),
            SourceConfig(name="hf", kind="hf_daily", url=f"{base}/api/daily_papers"),
        ]
        settings = bench_settings(work, smtp_host=sink.host, smtp_port=sink.port, sources=sources)
        # The state exists, empty, as on every day but a list's first: a run reads a big
        # subscribers.toml beside its fetch only when opening the state changes nothing
        Store.from_config(settings.state).close()
        clock = Clock(spec.get("profile_dir"), f"S{spec['subscribers']}-")
        sent_by: list[float] = []
        with contextlib.ExitStack() as undo:
            if spec.get("no_smtp"):  # the stand-in first, so that the clock wraps it
                send_jobs = getattr(sending, "send_jobs")  # noqa: B009
                setattr(sending, "send_jobs", mark_sent)  # noqa: B010
                undo.callback(setattr, sending, "send_jobs", send_jobs)
            undo.enter_context(clock)
            undo.callback(clock_stage_start(sent_by))
            sink_cpu, start, cpu = sink.cpu(), time.perf_counter(), time.process_time()
            sink_queued = sink.queued()
            reaped = _children_cpu()
            stage = lambda: clock.active[-1] if clock.active else "between stages"  # noqa: E731
            with Uss({c.pid for c in psutil.Process().children()}, stage) as uss:
                summary = pipeline.run(
                    settings, subscribers_path=spec["profiles"], date=DATE, now=NOW,
                    transport=httpx.HTTPTransport(),
                )  # fmt: skip
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            # the run's children, all ended with it: the render worker, the profiles' child, the
            # publish worker (the sink and the listings' server are still running: not counted)
            children_cpu = _children_cpu() - reaped
        sink_cpu, sink_queued = sink.cpu() - sink_cpu, sink.queued() - sink_queued
        rss, children = peak_rss_mb(), children_peak_mb()
        accepted = sink.count()[0]
        raw_wall, raw_kb, mean_kb, raw_cpu, raw_sink, raw_queued = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        if accepted:
            mean_kb = int(sink.ask("bytes")) / accepted / 1024
            raw_kb = int(sink.ask(f"typical {work / 'typical.eml'}")) / 1024
            payload = (work / "typical.eml").read_bytes()
            raw_start, raw_cpu, raw_sink = time.perf_counter(), time.process_time(), sink.cpu()
            raw_queued = sink.queued()
            asyncio.run(raw_send(sink.host, sink.port, payload, accepted))
            raw_wall = time.perf_counter() - raw_start
            raw_cpu, raw_sink = time.process_time() - raw_cpu, sink.cpu() - raw_sink
            raw_queued = sink.queued() - raw_queued
    feeds = work / "public" / "feeds"
    to_sent = (sent_by[0] - start) if sent_by else wall
    return {
        "subscribers": spec["subscribers"],
        "no_smtp": bool(spec.get("no_smtp")),
        "load": list(psutil.getloadavg()),
        "start_mb": start_mb,
        "wall": wall,
        "cpu": cpu,
        "to_sent": to_sent,
        "sink_cpu": sink_cpu,
        "children_cpu": children_cpu,
        "raw_cpu": raw_cpu,
        "raw_sink_cpu": raw_sink,
        "sink_queued": sink_queued,  # the sink ready to run, waiting for a core (Linux)
        "raw_sink_queued": raw_queued,
        "sent": summary.sent,
        "accepted": accepted,
        "failed": len(summary.failed),
        "pending": len(summary.pending),
        "private_feeds": sum(1 for p in feeds.glob("*.xml")) if feeds.is_dir() else 0,
        "mean_kb": mean_kb,
        "raw_kb": raw_kb,
        "raw_wall": raw_wall,
        "ratio_to_sent": to_sent / raw_wall if raw_wall else 0.0,
        "ratio_wall": wall / raw_wall if raw_wall else 0.0,
        "peak_rss_mb": rss,
        "children_peak_rss_mb": children,
        "children_peak_uss_mb": uss.peak_mb,
        "children_peak_uss_by_stage_mb": {k: round(v) for k, v in uss.by_stage.items()},
        "together_peak_mb": uss.together_mb,
        "stages": clock.times,
        "rss_peaks": clock.peaks,  # the largest RSS sampled in each stage and between stages
        "timeline": clock.timeline,
        "timings": summary.timings,
    }


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (and been waited for)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def clock_stage_start(sent_by: list[float]) -> Callable[[], None]:
    """Notes when publishing starts (every send answered: the run's "last message accepted")."""
    from digest.pipeline import publishing

    publish = publishing.publish

    def noted(*args: Any, **kwargs: Any) -> Any:
        sent_by.append(time.perf_counter())
        return publish(*args, **kwargs)

    publishing.publish = noted
    return lambda: setattr(publishing, "publish", publish)


# -- the parent: scenarios, fresh processes, the table ---------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="10000,30000,100000", help="comma-separated S")
    parser.add_argument("--runs", type=int, default=1, help="fresh processes per S; the median is reported")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-smtp", action="store_true", help="mark digests sent in the ledger, send nothing")  # fmt: skip
    parser.add_argument(
        "--weekly", type=float, default=0.0,
        help="this share of the readers weekly (on Mondays: held on the bench's Thursday), drawn apart",
    )  # fmt: skip
    parser.add_argument("--profile", metavar="DIR", help="a pyinstrument profile of each stage in DIR")
    parser.add_argument("--json", help="write every run's numbers here")
    parser.add_argument("--keep", metavar="DIR", help="work here (kept) rather than in a temporary folder")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(Path(args.worker).read_text())
        Path(spec["result"]).write_text(json.dumps(worker(spec)))
        return 0

    from bench import scenario

    counts = [int(x.replace("_", "")) for x in args.subscribers.split(",")]
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    drawn: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as cleanup:
        tmp = Path(args.keep) if args.keep else Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="digest-scale-")))  # fmt: skip
        tmp.mkdir(parents=True, exist_ok=True)
        for count in counts:
            weekly = f"-weekly{args.weekly:g}" if args.weekly else ""
            profiles = tmp / f"subscribers-{count}-seed{args.seed}{weekly}.toml"
            if not profiles.exists():  # kept with --keep: the draw takes a while at 100,000
                drawn = drawn or with_weekly(
                    scenario.generate(load_papers(ARXIV), max(counts), seed=args.seed), args.weekly, args.seed
                )
                scenario.write_toml(drawn[:count], profiles)  # S readers: the first S of one draw
            for n in range(args.runs):
                work = Path(tempfile.mkdtemp(prefix=f"s{count}-{n}-", dir=tmp))
                spec = {"subscribers": count, "profiles": str(profiles), "work": str(work),
                        "no_smtp": args.no_smtp, "profile_dir": args.profile,
                        "result": str(work / "result.json")}  # fmt: skip
                (work / "spec.json").write_text(json.dumps(spec))
                subprocess.run([sys.executable, __file__, "--worker", str(work / "spec.json")], check=True)
                results.append(json.loads((work / "result.json").read_text()))
                shutil.rmtree(work)  # 100,000 readers leave 20,000 feeds and a large state
                print(line(results[-1]), file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all(r["no_smtp"] or r["accepted"] == r["sent"] for r in results) else 1


def with_weekly(profiles: list[dict[str, Any]], share: float, seed: int) -> list[dict[str, Any]]:
    """`share` of the profiles weekly, drawn by a generator of their own (the profiles stay the
    scenario's): on a fresh state, a weekly reader is held on a day that is not its weekday."""
    import random

    rng = random.Random(seed + 1)
    return [{**p, "cadence": "weekly"} if rng.random() < share and not p.get("all") else p for p in profiles]


def stage_walls(r: dict[str, Any], key: str = "wall") -> dict[str, float]:
    """Each stage's wall (or `key="cpu"`) time, the nested ones taken out of the stage around
    them; `other` is the rest of the run (checks, compiling templates, building the jobs, the
    run's record)."""
    walls = {label: t[key] for label, t in r["stages"].items()}
    for inner, outer in NESTED.items():
        if inner in walls and outer in walls:
            walls[outer] -= walls[inner]
    walls["other"] = r[key] - sum(walls.values())
    return walls


def line(r: dict[str, Any]) -> str:
    walls = ", ".join(f"{k} {v:.1f}" for k, v in stage_walls(r).items())
    sending = r["stages"].get("send", {}).get("cpu", 0.0)  # the run's process: its event loop
    per_message = f", loop {sending / r['sent'] * 1000:.2f} ms a message" if r["sent"] else ""
    return (
        f"S={r['subscribers']:,}: wall {r['wall']:.1f} s (to sent {r['to_sent']:.1f} s, cpu {r['cpu']:.1f} s{per_message}, "
        f"sink cpu {r['sink_cpu']:.1f} s (waited for a core {r.get('sink_queued', 0.0):.1f} s), children cpu {r['children_cpu']:.1f} s), raw {r['raw_wall']:.1f} s "
        f"(client cpu {r['raw_cpu']:.1f} s, raw sink cpu {r['raw_sink_cpu']:.1f} s, waited {r.get('raw_sink_queued', 0.0):.1f} s) for {r['accepted']:,} x {r['raw_kb']:.1f} KB: "
        f"{r['ratio_to_sent']:.2f}x to sent, {r['ratio_wall']:.2f}x whole; rss {r['peak_rss_mb']:.0f} MB "
        f"(+ worker uss {r['children_peak_uss_mb']:.0f} MB, together {r['together_peak_mb']:.0f} MB); "
        f"{r['private_feeds']:,} private feeds; load {r['load']}; stages: {walls}"
    )


def table(results: list[dict[str, Any]]) -> str:
    counts = sorted({r["subscribers"] for r in results})
    runs = {c: [r for r in results if r["subscribers"] == c] for c in counts}
    med = {c: {k: statistics.median(stage_walls(r)[k] for r in runs[c]) for k in stage_walls(runs[c][0])} for c in counts}  # fmt: skip
    cpu = {c: {k: statistics.median(stage_walls(r, "cpu")[k] for r in runs[c]) for k in stage_walls(runs[c][0])} for c in counts}  # fmt: skip
    head = "| stage | " + " | ".join(f"S = {c:,}: wall s (per 1,000) · cpu s (per 1,000) · peak RSS" for c in counts) + " |"  # fmt: skip
    out = [head, "|---|" + "---|" * len(counts)]
    for label in med[counts[0]]:
        cells = [
            f"{med[c][label]:.1f} ({med[c][label] / c * 1000:.3f}) · {cpu[c][label]:.1f} ({cpu[c][label] / c * 1000:.3f})"
            f" · {max(r['rss_peaks'].get(label, 0.0) for r in runs[c]):.0f} MB"
            for c in counts
        ]
        out.append(f"| {label} | " + " | ".join(cells) + " |")

    def row(label: str, fmt: Callable[[list[dict[str, Any]]], str]) -> None:
        out.append(f"| {label} | " + " | ".join(fmt(runs[c]) for c in counts) + " |")

    def m(key: str) -> Callable[[list[dict[str, Any]]], float]:
        return lambda rs: statistics.median(r[key] for r in rs)

    def peak(rs: list[dict[str, Any]]) -> str:
        main, worker = max(r["peak_rss_mb"] for r in rs), max(r["children_peak_uss_mb"] for r in rs)
        together = max(r["together_peak_mb"] for r in rs)
        return f"**{main:.0f} MB** (+{worker:.0f}; together {together:.0f})" + _bar(
            rs, together <= BAR_RSS_MB
        )

    per_k = m("wall")
    row("**whole run**", lambda rs: f"**{per_k(rs):.1f}** ({per_k(rs) / rs[0]['subscribers'] * 1000:.3f})")
    row("fetch → last accepted", lambda rs: f"{m('to_sent')(rs):.1f}")
    row("raw limit (same messages)", lambda rs: f"{m('raw_wall')(rs):.1f} ({rs[0]['accepted']:,} × {rs[0]['raw_kb']:.1f} KB)")  # fmt: skip
    row("to sent ÷ raw (each run)", lambda rs: f"{m('ratio_to_sent')(rs):.2f}× (" + ", ".join(f"{r['ratio_to_sent']:.2f}" for r in rs) + ")")  # fmt: skip
    row("whole run ÷ raw", lambda rs: f"**{m('ratio_wall')(rs):.2f}×**" + _bar(rs, m("ratio_wall")(rs) <= BAR_RATIO))  # fmt: skip
    row("peak RSS (+ render worker USS)", peak)
    row("RSS sampled between stages", lambda rs: ", ".join(f"{k} {v:.0f} MB" for k, v in rs[0]["rss_peaks"].items() if k.startswith("after")))  # fmt: skip
    row("sent / private feeds written", lambda rs: f"{rs[0]['sent']:,} / {rs[0]['private_feeds']:,}")
    row("load average (1 min) after", lambda rs: ", ".join(f"{r['load'][0]:.2f}" for r in rs))
    return "\n".join(out)  # fmt: skip


def _bar(rs: list[dict[str, Any]], ok: bool) -> str:
    return (" ✔" if ok else " ✘") if rs[0]["subscribers"] == BAR_AT and not rs[0]["no_smtp"] else ""


if __name__ == "__main__":
    sys.exit(main())
