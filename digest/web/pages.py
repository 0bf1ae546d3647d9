"""Rendering the reader's pages (templates/web/, overridable from [templates] dir like the email's)
and the preview they show. Presentation only: what a page says is decided in `app` and `service`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from digest import commands
from digest.config import Settings
from digest.core.errors import DigestError
from digest.core.models import Subscriber
from digest.render.templating import make_env, shipped_templates

log = logging.getLogger("digest.web")


@dataclass(frozen=True)
class Preview:
    days: list[commands.PreviewDay] = field(default_factory=list)
    note: str = ""  # why there is nothing to show, when there is not

    @property
    def total(self) -> int:
        return sum(len(day.digest.matches) for day in self.days)


def preview(settings: Settings, sub: Subscriber) -> Preview:
    """What `sub` would have received over the last [web] preview_days stored days."""
    try:
        days = commands.preview_profile(settings, sub, days=settings.web.preview_days)
    except DigestError as exc:  # no state yet, or it cannot be read: say so, the form still works
        log.warning("preview: %s", exc)
        return Preview(note="Nothing is stored yet to preview against; the first digest will show.")
    if not days:
        return Preview(note="Nothing is stored yet to preview against; the first digest will show.")
    if not any(day.digest.matches for day in days):
        return Preview(days, "Nothing would have matched on these days: try broader keywords.")
    return Preview(days)


class Pages:
    """The page templates, compiled once; `page()` renders one into a no-store response."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = make_env(settings.templates.dir)
        self.css = (shipped_templates() / "web" / "style.css").read_bytes()

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("errors", {})
        context.setdefault("values", {})
        context.setdefault("preview", None)
        context.setdefault("csrf", "")
        context.setdefault("form", None)
        context.setdefault("link", None)
        context.setdefault("paragraphs", [])
        context.setdefault("notice", "")
        context["base"] = self.settings.web.base_url or "/"
        context["has_archive"] = (self.settings.output.dir / "index.html").is_file()  # after the first run
        context["preview_days"] = self.settings.web.preview_days
        try:
            html = self.env.get_template(f"web/{name}.html.j2").render(context)
        except jinja2.TemplateError:
            log.exception("page %s failed to render", name)
            return HTMLResponse(
                "<!doctype html><title>Error</title><p>Something went wrong.", status_code=500
            )
        # Pages hold signed links and addresses: never kept by a cache on the way.
        return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

    def message(self, title: str, *paragraphs: str, status: int = 200, **context: Any) -> HTMLResponse:
        return self.page("message", status, title=title, paragraphs=list(paragraphs), **context)
