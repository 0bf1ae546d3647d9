"""A real HTTP server speaking OpenAI's chat-completions protocol, in a thread: what the summaries
tests and bench/summaries.py talk to instead of OpenAI, DeepSeek or Ollama.

Its answers are derived from the request (the paper's title and the language the system message
asks for), so a test can tell which answer went where. A test changes what a paper gets with
`behave(body, attempt) -> Reply | None` (None: the usual answer): a status with headers, a stall
past the client's timeout, a body that is not JSON, an answer that tries to inject HTML.

    with ChatServer() as server:
        config = f'[summaries]\\nenabled = true\\nbase_url = "{server.url}"\\nmodel = "test-model"\\n'
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LANGUAGE = re.compile(r"written in (.+?), saying")


@dataclass
class Reply:
    status: int = 200
    body: bytes | None = None  # None: the usual chat completion of `content`
    headers: dict[str, str] = field(default_factory=dict)
    content: str | None = None  # the answer's text; None: derived from the request
    stall: float = 0.0  # seconds before anything is sent back
    usage: bool = True  # report token usage


def paper_of(body: dict[str, Any]) -> dict[str, str]:
    """The title and abstract the prompt carries (JSON between <paper> tags)."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    inner = user[user.index("<paper>") + len("<paper>") : user.rindex("</paper>")]
    return json.loads(inner)


def language_of(body: dict[str, Any]) -> str:
    system = next(m["content"] for m in body["messages"] if m["role"] == "system")
    found = LANGUAGE.search(system)
    return found.group(1) if found else "?"


def usual_answer(body: dict[str, Any]) -> str:
    """The answer a well-behaved model gives: derived from the request, so tests can find it."""
    title = " ".join(paper_of(body)["title"].split()[:8])
    return f"In {language_of(body)}: the paper {title} shows a clear result."


class ChatServer:
    def __init__(
        self,
        behave: Callable[[dict[str, Any], int], Reply | None] | None = None,
        *,
        latency: float = 0.0,
    ) -> None:
        self.behave = behave or (lambda _body, _attempt: None)
        self.latency = latency
        self.requests: list[dict[str, Any]] = []  # every body received, in order
        self.headers: list[dict[str, str]] = []
        self.attempts: Counter[tuple[str, str]] = Counter()  # (title, language) -> requests
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # one write per answer, sent at once: headers and body written apart would each wait
            # out the client's delayed ACK (40 ms), which no real server makes a client pay
            wbufsize = -1
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(Reply(404, b'{"error": {"message": "no such route"}}'))
                    return
                body = json.loads(raw)
                key = (paper_of(body)["title"], language_of(body))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    server.attempts[key] += 1
                    attempt = server.attempts[key]
                reply = server.behave(body, attempt) or Reply()
                time.sleep(server.latency + reply.stall)
                self._send(reply, body)

            def _send(self, reply: Reply, body: dict[str, Any] | None = None) -> None:
                data = reply.body
                if data is None:
                    assert body is not None
                    content = reply.content if reply.content is not None else usual_answer(body)
                    data = json.dumps(_completion(body, content, usage=reply.usage)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a stall)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _completion(body: dict[str, Any], content: str, *, usage: bool) -> dict[str, Any]:
    prompt = sum(len(m["content"]) for m in body["messages"])
    out: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
    }
    if usage:
        out["usage"] = {
            "prompt_tokens": prompt // 4,
            "completion_tokens": len(content) // 4,
            "total_tokens": prompt // 4 + len(content) // 4,
        }
    return out
