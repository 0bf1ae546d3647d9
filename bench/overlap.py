"""End to end against the raw sending limit, in the same process (issue 20, "Scale").

Benchmark support only; no product logic. For each S, in `--runs` fresh processes: serve the
listings over HTTP, run `digest.pipeline.run` to the SMTP sink (4 connections), then send as many
messages as the sink accepted, each a message the run sent of the run's mean size, over 4 reused
connections with a bare aiosmtplib client (the raw limit), to the same sink, in the same process:

    python bench/overlap.py --subscribers 2000,10000 --runs 3
    python bench/overlap.py --subscribers 10000 --render-workers 1,0   # each run, then rendering on the loop

Reports, per S, the median over the runs of: fetch → last message accepted and the send stage,
each divided by the raw time; peak RSS of the run's process and of its children (the render
worker; the sink and listings server are still running when it is read, so never counted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    ARXIV,
    DATE,
    NOW,
    bench_settings,
    listings_server,
    load_papers,
    peak_rss_mb,
    raw_send,
    speed_probe,
)


def children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class Uss:
    """Samples, once a second, the unique memory (USS: pages no other process shares) of this
    process's children other than `skip`: a forked render worker's RSS counts every page it still
    shares with the run, its USS only what it added."""

    def __init__(self, skip: set[int], stage: Callable[[], str] | None = None) -> None:
        self.skip, self.peak_mb, self.together_mb, self.done = skip, 0.0, 0.0, threading.Event()
        self.stage = stage  # the run's stage now: the children's peak USS is kept per stage too
        self.by_stage: dict[str, float] = {}
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.done.wait(1.0):
            uss = 0.0
            for child in me.children():
                if child.pid not in self.skip:
                    with contextlib.suppress(psutil.Error):
                        uss += child.memory_full_info().uss / (1024 * 1024)
            self.peak_mb = max(self.peak_mb, uss)
            if self.stage is not None:
                label = self.stage()
                self.by_stage[label] = max(self.by_stage.get(label, 0.0), uss)
            self.together_mb = max(self.together_mb, uss + me.memory_info().rss / (1024 * 1024))

    def __enter__(self) -> Uss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx

    from bench.smtp_sink import Sink
    from digest import pipeline
    from digest.config import SourceConfig
    from digest.pipeline import publishing

    work = Path(spec["work"])
    with listings_server(ARXIV) as base, Sink() as sink:
        sources = [
            SourceConfig(name="arxiv", kind="arxiv_rss", url=f"{base}/rss/all"),
            SourceConfig(name="hf", kind="hf_daily", url=f"{base}/api/daily_papers"),
        ]
        settings = bench_settings(work, smtp_host=sink.host, smtp_port=sink.port, sources=sources)
        if spec.get("render_workers") is not None:
            delivery = settings.delivery.model_copy(update={"render_workers": spec["render_workers"]})
            settings = settings.model_copy(update={"delivery": delivery})
        sent_by: list[float] = []
        publish = publishing.publish

        def timed_publish(*args: Any, **kwargs: Any) -> Any:
            sent_by.append(time.perf_counter())
            return publish(*args, **kwargs)

        publishing.publish = timed_publish
        probe = speed_probe()
        sink_cpu, start, cpu = sink.cpu(), time.perf_counter(), time.process_time()
        import psutil

        with Uss({c.pid for c in psutil.Process().children()}) as uss:
            summary = pipeline.run(
                settings,
                subscribers_path=spec["profiles"],
                date=DATE,
                now=NOW,
                transport=httpx.HTTPTransport(),
            )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        sink_cpu = sink.cpu() - sink_cpu
        publishing.publish = publish
        rss, children = peak_rss_mb(), children_peak_mb()
        accepted = sink.count()[0]
        total_bytes = int(sink.ask("bytes"))
        size = int(sink.ask(f"typical {work / 'typical.eml'}"))
        payload = (work / "typical.eml").read_bytes()
        raw_start = time.perf_counter()
        asyncio.run(raw_send(sink.host, sink.port, payload, accepted))
        raw_wall = time.perf_counter() - raw_start
        raw_accepted = sink.count()[0] - accepted
    to_sent = (sent_by[0] - start) if sent_by else wall
    send = summary.timings.get("send", 0.0)
    return {
        "subscribers": spec["subscribers"],
        "render_workers": spec.get("render_workers"),
        "probe_ms": [probe, speed_probe()],
        "wall": wall,
        "cpu": cpu,
        "to_sent": to_sent,
        "send": send,
        "sink_cpu": sink_cpu,
        "sent": summary.sent,
        "accepted": accepted,
        "failed": len(summary.failed),
        "pending": len(summary.pending),
        "mean_kb": total_bytes / accepted / 1024 if accepted else 0.0,
        "raw_kb": size / 1024,
        "raw_wall": raw_wall,
        "raw_accepted": raw_accepted,
        "ratio_to_sent": to_sent / raw_wall if raw_wall else 0.0,
        "ratio_send": send / raw_wall if raw_wall else 0.0,
        "peak_rss_mb": rss,
        "children_peak_rss_mb": children,
        "children_peak_uss_mb": uss.peak_mb,
        "together_peak_mb": uss.together_mb,  # this process's RSS + the workers' USS, at one moment
        "timings": summary.timings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="2000,10000", help="comma-separated S (default 2000,10000)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per S; the median is reported")
    parser.add_argument(
        "--render-workers",
        help="[delivery] render_workers, or several (1,0) run in turn (default: the default)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="write every run's numbers here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = [int(w) for w in args.render_workers.split(",")] if args.render_workers else [None]
    if args.worker:
        spec = json.loads(Path(args.worker).read_text())
        Path(spec["result"]).write_text(json.dumps(worker(spec)))
        return 0

    from bench import scenario

    papers = load_papers(ARXIV)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="digest-overlap-") as tmp:
        for count in (int(x.replace("_", "")) for x in args.subscribers.split(",")):
            profiles = scenario.write_toml(
                scenario.generate(papers, count, seed=args.seed), Path(tmp) / f"subscribers-{count}.toml"
            )
            # alternating the settings run by run, so each sees the machine as the other does
            for n, workers in itertools.product(range(args.runs), settings):
                work = Path(tmp) / f"s{count}-{n}-w{workers}"
                work.mkdir()
                spec = {"subscribers": count, "profiles": str(profiles), "work": str(work),
                        "render_workers": workers, "result": str(work / "result.json")}  # fmt: skip
                (work / "spec.json").write_text(json.dumps(spec))
                subprocess.run([sys.executable, __file__, "--worker", str(work / "spec.json")], check=True)
                result = json.loads((work / "result.json").read_text())
                results.append(result)
                print(_line(result), file=sys.stderr, flush=True)
    print("| S | render_workers | runs | fetch → last accepted | send stage | raw | ratio (each run) | send / raw "
          "| peak RSS | render worker RSS |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for count, workers in itertools.product(sorted({r["subscribers"] for r in results}), settings):
        runs = [r for r in results if r["subscribers"] == count and r["render_workers"] == workers]
        print(_summary(count, workers, runs))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    ok = all(r["accepted"] == r["sent"] and r["raw_accepted"] == r["accepted"] for r in results)
    return 0 if ok else 1


def _line(r: dict[str, Any]) -> str:
    return (
        f"S={r['subscribers']:,} workers={r['render_workers']}: to_sent {r['to_sent']:.1f} s "
        f"(send {r['send']:.1f} s, cpu {r['cpu']:.1f} s, sink cpu {r['sink_cpu']:.1f} s), "
        f"raw {r['raw_wall']:.1f} s for {r['accepted']:,} x {r['raw_kb']:.1f} KB "
        f"(mean {r['mean_kb']:.1f} KB): {r['ratio_to_sent']:.2f}x (send {r['ratio_send']:.2f}x); "
        f"rss {r['peak_rss_mb']:.0f} MB, children {r['children_peak_rss_mb']:.0f} MB (uss {r['children_peak_uss_mb']:.0f} MB), together {r.get('together_peak_mb', 0):.0f} MB; probe {r['probe_ms']}"
    )


def _summary(count: int, workers: int | None, runs: list[dict[str, Any]]) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    ratios = ", ".join(f"{r['ratio_to_sent']:.2f}" for r in runs)
    return (
        f"| {count:,} | {workers} | {len(runs)} | {med('to_sent'):.1f} s | {med('send'):.1f} s | {med('raw_wall'):.1f} s | "
        f"**{med('ratio_to_sent'):.2f}×** ({ratios}) | {med('ratio_send'):.2f}× | "
        f"{max(r['peak_rss_mb'] for r in runs):.0f} MB | {max(r['children_peak_rss_mb'] for r in runs):.0f} MB "
        f"(uss {max(r.get('children_peak_uss_mb', 0.0) for r in runs):.0f} MB) |"
    )


if __name__ == "__main__":
    sys.exit(main())
