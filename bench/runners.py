"""Several runners on one PostgreSQL state against one (issue 20, "past one machine").

Benchmark support only; no product logic. Starts a real PostgreSQL server (tests/pg_server.py:
initdb + pg_ctl in a temporary folder), the listings server and the SMTP sink of bench/run.py,
writes S seeded profiles (bench/scenario.py) and, for each runner count, `--runs` times on a fresh
database: starts that many `digest run` processes at once (the same digest.toml, `[state] url`)
and times them from the start to the last exit. Checks every reader was served once: the sink
accepted exactly as many messages as the ledger holds sent digests, and none is left to send.

    python bench/runners.py --subscribers 10000 --runners 1,3 --runs 2
    python bench/runners.py --subscribers 10000 --runners 1,3 --runs 2 --relay-ms 50

Reports per runner count the median wall, the ratio to one runner's, each runner's share, the
sink's CPU over the wall (near 1.0: the sink, not the runners, sets the pace) and the runners' CPU
(with their render workers) over the wall (near the machine's cores: the CPU sets it).
`--relay-ms` has the sink answer each message that much later, as a real relay does (Postfix
writing its queue file, a provider's SMTP endpoint): a runner's connections then wait on the
relay, which is what several runners (more connections, more hosts) are for.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from pg_server import PgServer  # noqa: E402

from bench.run import ARXIV, CONCURRENCY, DATE, SECRET, SENDER, listings_server, load_papers  # noqa: E402
from bench.scenario import generate, write_toml  # noqa: E402
from bench.smtp_sink import Sink  # noqa: E402


def config_text(url: str, base: str, sink: Sink, out: Path, concurrency: int = CONCURRENCY) -> str:
    return f"""
[state]
url = "{url}"

[[sources]]
name = "arxiv"
kind = "arxiv_rss"
url = "{base}/rss/all"

[[sources]]
name = "hf"
kind = "hf_daily"
url = "{base}/api/daily_papers"

[output]
dir = "{out}"
base_url = "https://digest.example.org/"

[smtp]
host = "{sink.host}"
port = {sink.port}
security = "none"
concurrency = {concurrency}
from = "{SENDER}"
"""


def ledger(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall()
    return {status: int(n) for status, n in rows}


def _file_ledger(path: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return {
            status: int(n)
            for status, n in db.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
        }


def one_case(
    server: PgServer,
    base: str,
    sink: Sink,
    profiles: Path,
    work: Path,
    runners: int,
    concurrency: int = CONCURRENCY,
) -> dict[str, Any]:
    """`runners` runs at once on a fresh PostgreSQL database; 0: one run on a fresh SQLite file
    (the same work, for the cost of the server's round trips)."""
    url = server.new_database()
    config = work / f"digest-{runners}-{time.monotonic_ns()}.toml"
    text = config_text(url, base, sink, work / f"public-{config.stem}", concurrency)
    if runners == 0:
        text = text.replace(f'url = "{url}"', f'path = "{work / config.stem}.sqlite3"')
    config.write_text(text)
    runners = max(1, runners)
    env = {"DIGEST_SECRET": SECRET, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "digest", "run", "--config", str(config), "--subscribers", str(profiles)]
    command += ["--date", DATE.isoformat()]
    accepted, sink_cpu = sink.count()[0], sink.cpu()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(runners)
    ]
    outs = [p.communicate(timeout=3600) for p in procs]
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the runners, their workers with them
    runners_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sent_here = sink.count()[0] - accepted
    rows = ledger(url) if "path =" not in text else _file_ledger(work / f"{config.stem}.sqlite3")
    shares = [int(m.group(1)) if (m := re.search(r"emails sent\D+(\d+)", out)) else -1 for out, _ in outs]
    problems = [f"runner {i}: exit {p.returncode}: {err.strip()[-300:]}" for i, (p, (_, err)) in enumerate(zip(procs, outs, strict=True)) if p.returncode != 0]  # fmt: skip
    if sent_here != rows.get("sent", 0) or rows.get("pending") or rows.get("sending"):
        problems.append(f"not exactly once: the sink accepted {sent_here}, the ledger says {rows}")
    return {
        "runners": runners,
        "wall": wall,
        "sink_cpu_share": (sink.cpu() - sink_cpu) / wall,
        "runners_cpu_share": runners_cpu / wall,
        "accepted": sent_here,
        "shares": shares,
        "ledger": rows,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument(
        "--runners", default="1,3", help="runner counts, comma-separated; 0: one run on SQLite"
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--relay-ms", type=float, default=0.0, help="the sink answers each message this much later"
    )
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="SMTP connections a runner")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.runners.split(",")]
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as folder,
        PgServer() as server,
        listings_server(ARXIV) as base,
        Sink(delay_ms=args.relay_ms) as sink,
    ):
        work = Path(folder)
        profiles = write_toml(generate(load_papers(ARXIV), args.subscribers), work / "subscribers.toml")
        for _ in range(args.runs):
            for runners in counts:
                result = one_case(server, base, sink, profiles, work, runners, args.concurrency)
                result["runners"] = runners  # 0 stays 0 (SQLite) in the table
                results.append(result)
                print(json.dumps(result), flush=True)
    failed = [p for r in results for p in r["problems"]]
    one = statistics.median(r["wall"] for r in results if r["runners"] == counts[0])
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"\nS = {args.subscribers:,}, {args.runs} runs each, relay {args.relay_ms:g} ms a message, "
        f"{args.concurrency} connections a runner, load {load}"
    )
    print(
        "| runners | wall (median) | wall ÷ the first count's | shares (last run) | sink CPU / wall "
        "| runners' CPU / wall | every reader once |"
    )
    print("|---|---|---|---|---|---|---|")
    for runners in counts:
        mine = [r for r in results if r["runners"] == runners]
        wall = statistics.median(r["wall"] for r in mine)
        share = statistics.median(r["sink_cpu_share"] for r in mine)
        cpu = statistics.median(r["runners_cpu_share"] for r in mine)
        once = "no" if any(r["problems"] for r in mine) else "yes"
        print(
            f"| {runners} | {wall:.1f} s | {wall / one:.2f}x | {mine[-1]['shares']} | {share:.2f} "
            f"| {cpu:.2f} | {once} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    for problem in failed:
        print("PROBLEM:", problem)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
