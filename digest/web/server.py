"""Running the web side under uvicorn: in the foreground (`digest web`), or in a thread beside the
scheduler (`digest serve`), stopped with it. Plumbing only.

uvicorn is told not to believe forwarded headers itself (our `Guard` does, from `[web]
trusted_proxies` only) and not to write its access log, whose lines would carry the signed tokens
of query strings; `Guard` logs method, path and status instead.
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from digest.config import Settings
from digest.core.errors import ConfigError
from digest.pipeline import stop_on_signals
from digest.store import Store
from digest.web.app import create_app

log = logging.getLogger("digest.web")
STARTUP_SECONDS = 10.0


def make_server(settings: Settings) -> uvicorn.Server:
    web = settings.web
    if not web.enabled:
        raise ConfigError(
            '[web]: set listen (e.g. "127.0.0.1:8080") and base_url (the https URL readers reach it at) '
            "to serve the reader's pages"
        )
    host, port = web.host_port
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        lifespan="off",
        timeout_keep_alive=5,
        limit_concurrency=200,
    )
    return uvicorn.Server(config)


def serve_web(settings: Settings, *, stop_event: threading.Event | None = None) -> int:
    """`digest web`: the web side alone, until SIGTERM, Ctrl-C or `stop_event`; returns 0."""
    # the state, opened once now: a wrong [state] url or an unreadable file fails here, in one
    # line, rather than on each reader's request
    Store.from_config(settings.state).close()
    stop = stop_event or threading.Event()
    web = WebThread(settings)
    restore = stop_on_signals(stop)
    try:
        web.start()
        while not stop.wait(1) and web.thread.is_alive():
            pass
    finally:
        web.stop()
        restore()
    if not stop.is_set():  # the server ended on its own: say so, and exit non-zero
        log.error("web: the server stopped unexpectedly")
        return 1
    log.info("web: stopped")
    return 0


class WebThread:
    """The web side in a daemon thread (its own event loop), for `digest serve`."""

    def __init__(self, settings: Settings) -> None:
        self.server = make_server(settings)
        # uvicorn listens for signals only in the main thread: here the caller's handlers stay
        self.thread = threading.Thread(target=self.server.run, name="digest-web", daemon=True)
        self.settings = settings

    def start(self) -> None:
        """Start serving; ConfigError when the address cannot be bound (in use, not ours)."""
        self.thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            self.stop()
            raise ConfigError(
                f"[web] listen = {self.settings.web.listen!r}: could not serve there (the address is in "
                "use, or not this machine's); pick another port"
            )
        log.info("web: serving %s on %s", self.settings.web.base_url, self.settings.web.listen)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
