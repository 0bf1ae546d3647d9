"""An SMTP sink for the benchmarks: a real aiosmtpd server that accepts every message and discards it.

Benchmark support only; no product logic. It runs in its own process so that the server's work
does not share a core (or a GIL) with the client being measured:

    python bench/smtp_sink.py [--host 127.0.0.1] [--port 0] [--delay-ms 0]

prints `READY <host> <port>` on stdout once it listens, then answers one line on stdout for each
line read on stdin: `count` gives `<messages accepted> <connections>`, `bytes` the bytes of DATA
accepted, `typical PATH` writes the one of the last 101 messages whose size is nearest the mean
of all to PATH and gives its size, anything else a line saying so; end of input (or SIGTERM)
stops it. `--delay-ms` makes it answer each message that much later, as a real relay does (it
writes the message to its queue on disk, or forwards it, before it says 250): the client then
waits on the relay, not on the sink's CPU. `Sink()` does all of that from Python:

    with Sink() as sink:
        ...  # send to sink.host, sink.port
        assert sink.count()[0] == n
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


class Discard:
    """Accepts every recipient and message, keeps nothing but counts."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # seconds before each message's 250
        self.messages = 0
        self.connections = 0
        self.bytes = 0
        self.recent: deque[bytes] = deque(maxlen=101)  # for `typical`: a real message of the mean size

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content)
        self.recent.append(envelope.original_content)
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 OK: queued as discarded"


async def serve(host: str, port: int, delay: float = 0.0) -> None:
    from aiosmtpd.smtp import SMTP

    handler = Discard(delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, data_size_limit=50_000_000, hostname="sink.local"),
        host=host,
        port=port,
    )
    bound = server.sockets[0].getsockname()
    print(f"READY {bound[0]} {bound[1]}", flush=True)

    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)

    def control() -> None:  # stdin in a thread: answers `count`, stops at end of input
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command in ("count", "bytes", "typical"):
                fut = asyncio.run_coroutine_threadsafe(_answer(handler, command, arg), loop)
                print(fut.result(), flush=True)
            else:  # still one line, so that a reader waiting for it does not wait forever
                print(f"unknown command {command!r}: count, bytes or typical PATH", flush=True)
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=control, daemon=True).start()
    async with server:
        await done.wait()


async def _answer(handler: Discard, command: str, arg: str) -> str:
    if command == "bytes":
        return str(handler.bytes)
    if command == "typical":
        if not handler.recent:
            return "0"
        mean = handler.bytes / handler.messages
        message = min(handler.recent, key=lambda m: abs(len(m) - mean))
        with open(arg, "wb") as out:
            out.write(message)
        return str(len(message))
    return f"{handler.messages} {handler.connections}"


class Sink:
    """The sink as a child process (started on enter, stopped on exit)."""

    def __init__(self, host: str = HOST, port: int = 0, delay_ms: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.delay_ms = delay_ms
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Sink:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--host",
                self.host,
                "--port",
                str(self.port),
                *self.relay,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            self.__exit__()
            raise RuntimeError("the SMTP sink did not start")
        self.host, self.port = line[1], int(line[2])
        return self

    @property
    def relay(self) -> list[str]:
        return ["--delay-ms", str(self.delay_ms)] if self.delay_ms else []

    def count(self) -> tuple[int, int]:
        """(messages accepted, connections opened) so far."""
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        messages, connections = self.proc.stdout.readline().split()
        return int(messages), int(connections)

    def ask(self, command: str) -> str:
        """One control line (`bytes`, `typical PATH`), its one-line answer."""
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def cpu(self) -> float:
        """CPU seconds the sink has used so far (user + system): when it nears the wall time
        of a send, the sink, not the client, sets the pace."""
        import psutil

        assert self.proc is not None
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def queued(self) -> float:
        """Seconds the sink has spent ready to run but waiting for a core (Linux's schedstat; 0
        elsewhere): time the pace-setter lost to the other processes, not to its client."""
        assert self.proc is not None
        try:
            return int(Path(f"/proc/{self.proc.pid}/schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            self.proc = None


def main() -> None:
    parser = argparse.ArgumentParser(description="An SMTP server that accepts every message and discards it.")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed on stdout)")
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="answer each message this much later (a relay)"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
