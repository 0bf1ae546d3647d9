"""The reader's side on the web: a Starlette app. `create_app(settings)` gives the ASGI app that
`digest web` and `digest serve` run under uvicorn (digest.web.server).

    GET  /subscribe            the profile form; POST: preview it, or subscribe (double opt-in)
    GET  /confirm?token=       a Confirm button; POST: the address becomes a reader
    GET  /manage?token=        edit (with preview), pause, change cadence, leave; POST does them
    GET  /unsubscribe?token=   an Unsubscribe button (or Undo); POST: RFC 8058 one-click, or the button
    /  and everything else     [output] dir: the feeds and the archive, with caching headers

A GET never changes anything (mail scanners open links); every form is a POST carrying a CSRF
token bound to a cookie, except the one-click POST of RFC 8058, which carries only the signed
token and `List-Unsubscribe=One-Click`, as mail providers send it. Redirects go only to our own
fixed paths. Request handlers call `service.WebSide` for anything that changes the state.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount, Route

from digest.config import Settings
from digest.web.handlers import CachedStatic, Handlers
from digest.web.pages import Pages
from digest.web.routes import reader_routes
from digest.web.security import Guard
from digest.web.service import WebSide


def create_app(settings: Settings, *, side: WebSide | None = None) -> Guard:
    """The whole web side as one ASGI app, guarded (digest.web.security)."""
    handlers = Handlers(side or WebSide(settings), Pages(settings))
    routes = [
        *reader_routes(handlers),
        Route("/_web/style.css", handlers.css),
        Route("/", handlers.home),
        Mount("/", app=CachedStatic(directory=settings.output.dir, check_dir=False)),
    ]
    web = settings.web
    return Guard(
        Starlette(routes=routes),
        max_body=web.max_body,
        trusted=web.trusted_proxies,
        https=(web.base_url or "").startswith("https:"),
    )
