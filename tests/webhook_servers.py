"""Real HTTP servers standing in for chat webhooks, in a thread on 127.0.0.1. Test helpers only.

    with WebhookServer() as server:
        ChatTransport().send(f"json://{server.address}/hook/TOKEN", title, body)
    [(title, text)] = server.messages()

The server takes every POST, keeps it (`requests`) and answers what `answer(request)` says
(200 "ok" by default, as Slack's incoming webhooks do): another status, or a stall (no answer
until the server is closed, or `release()`). `messages()` reads each request the way its sender
wrote it: Apprise's JSON webhook (`json://`: {"title", "message"}), its form webhook (`form://`:
title=...&message=...) and the Slack-compatible webhook Apprise's Mattermost plugin posts
(`mmost://host/TOKEN` → POST /hooks/TOKEN with {"text"}, the title on the text's first line).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HOST = "127.0.0.1"
STALL_LIMIT = 30.0  # a stalled request answers after this at the latest, whatever happens


@dataclass(frozen=True)
class Request:
    path: str
    content_type: str
    body: bytes

    def message(self) -> tuple[str, str]:
        """(title, text) as the sender wrote them; a Slack-style "text" has no title of its own."""
        if self.content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(self.body.decode(), keep_blank_values=True)
            return form.get("title", [""])[0], form["message"][0]
        payload = json.loads(self.body)
        if "text" in payload:
            return "", payload["text"]
        return payload.get("title", ""), payload["message"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    stall: bool = False  # answer nothing until the server is released or closed


def accept(_request: Request) -> Answer:
    return Answer()


class WebhookServer:
    def __init__(self, answer: Callable[[Request], Answer] = accept) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Request(self.path, self.headers.get("Content-Type", ""), body)
                with server._lock:
                    server.requests.append(request)
                answer = server.answer(request)
                if answer.stall:
                    server._released.wait(STALL_LIMIT)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):  # the client stopped waiting
                    pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def address(self) -> str:
        """host:port, for an Apprise URL."""
        return f"{HOST}:{self._server.server_address[1]}"

    def messages(self) -> list[tuple[str, str]]:
        with self._lock:
            return [r.message() for r in self.requests]

    def release(self) -> None:
        """Let stalled requests answer."""
        self._released.set()

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    """A port nobody listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
