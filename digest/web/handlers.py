"""What every route of the reader's side shares, as plumbing: CSRF cookies and tokens, reading a
posted form within limits, rendering a page with its token, the static files of [output] dir with
caching headers. The routes themselves are `digest.web.routes`."""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from digest.core.errors import DigestError
from digest.web.pages import Pages
from digest.web.security import CSRF_COOKIE, csrf_ok, csrf_token, new_csrf_cookie, same_origin
from digest.web.service import WebSide

log = logging.getLogger("digest.web")
MAX_FIELDS = 40
# The archive's and feeds' own pages keep their inline styles; still no script, no framing.
STATIC_CSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src * data:; frame-ancestors 'none'"


class CachedStatic(StaticFiles):
    """[output] dir as files, with a caching header (ETag and Last-Modified come with them):
    the public feeds and pages may be kept by any cache, a private feed only by its reader's."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        private = path.replace("\\", "/").startswith("feeds/")
        response.headers.setdefault("cache-control", f"{'private' if private else 'public'}, max-age=300")
        response.headers.setdefault("content-security-policy", STATIC_CSP)
        return response


class Handlers:
    """Shared by the route modules: the service, the pages, CSRF and form reading."""

    def __init__(self, side: WebSide, pages: Pages) -> None:
        self.side = side
        self.pages = pages
        self.settings = side.settings

    def csrf(self, request: Request) -> tuple[str, str]:
        """(cookie, form token): the browser's cookie, or a new one `respond` sets."""
        cookie = request.cookies.get(CSRF_COOKIE) or new_csrf_cookie()
        return cookie, csrf_token(self.side.key, cookie, self.side.clock().timestamp())

    def respond(self, request: Request, response: Response, cookie: str) -> Response:
        if request.cookies.get(CSRF_COOKIE) != cookie:
            response.set_cookie(
                CSRF_COOKIE,
                cookie,
                httponly=True,
                samesite="lax",
                secure=(self.settings.web.base_url or "").startswith("https:"),
                path="/",
            )
        return response

    async def form(self, request: Request) -> FormData | Response:
        """The posted form, or the response that refuses it (malformed, too many fields)."""
        try:
            form = await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=16_384)
        except (MultiPartException, ValueError, KeyError) as exc:
            log.info("refused a form: %s", exc)
            return self.pages.message(
                "That form could not be read", "Reload the page and try again.", status=400
            )
        if any(not isinstance(value, str) for value in form.values()):
            return self.pages.message("That form could not be read", "Files are not taken here.", status=400)
        return form

    async def checked_form(self, request: Request) -> FormData | Response:
        """`form`, refused unless it came from our own page (CSRF token and Origin)."""
        form = await self.form(request)
        if isinstance(form, Response):
            return form
        now = self.side.clock().timestamp()
        token = str(form.get("csrf", ""))
        if not same_origin(request.headers.get("origin"), self.settings.web.base_url or "") or not csrf_ok(
            self.side.key, request.cookies.get(CSRF_COOKIE), token, now
        ):
            cookie, _ = self.csrf(request)
            page = self.pages.message(
                "This form has expired",
                "Go back, reload the page and send it again.",
                status=403,
            )
            return self.respond(request, page, cookie)
        return form

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        cookie, token = self.csrf(request)
        return self.respond(request, self.pages.page(name, status, csrf=token, **context), cookie)

    def message(
        self, request: Request, title: str, *paragraphs: str, status: int = 200, **context: Any
    ) -> Response:
        return self.page(request, "message", status, title=title, paragraphs=list(paragraphs), **context)

    def unavailable(self, request: Request, exc: DigestError) -> Response:
        log.error("request failed: %s", exc)
        return self.message(
            request, "Not now", "Something on our side failed; please try again later.", status=503
        )

    def css(self, request: Request) -> Response:
        return Response(
            self.pages.css, media_type="text/css", headers={"cache-control": "public, max-age=3600"}
        )

    def home(self, request: Request) -> Response:
        index = self.settings.output.dir / "index.html"
        if index.is_file():
            return FileResponse(
                index, headers={"cache-control": "public, max-age=300", "content-security-policy": STATIC_CSP}
            )
        return RedirectResponse(f"{self.settings.web.base_url or '/'}subscribe", status_code=303)
