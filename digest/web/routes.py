"""The reader's pages: subscribe (with preview), confirm, manage, unsubscribe. Each handler reads
the request, calls `service.WebSide` for what changes the state, and renders a page; a refused
request (bad input, a stale form, a bad or expired link, a rate limit) changes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from digest import commands
from digest.core.errors import DigestError
from digest.core.models import Subscriber
from digest.core.tokens import verify_feedback
from digest.web.forms import Draft, draft, values_of
from digest.web.handlers import Handlers
from digest.web.pages import preview
from digest.web.security import rate_key
from digest.web.service import ManageView

BAD_LINK = "This link is not valid, or it has expired."


class ReaderRoutes:
    def __init__(self, h: Handlers) -> None:
        self.h = h
        self.side = h.side
        self.settings = h.settings

    def _draft(self, form: Mapping[str, Any], *, for_preview: bool) -> Draft:
        return draft(
            {k: str(v) for k, v in form.items()},
            source_names=[s.name for s in self.settings.sources],
            hf_sources=self.settings.hf_source_names,
            for_preview=for_preview,
        )

    # -- subscribe -------------------------------------------------------------------------------
    async def subscribe_form(self, request: Request) -> Response:
        return self.h.page(request, "subscribe", title="Subscribe")

    async def subscribe(self, request: Request) -> Response:
        form = await self.h.checked_form(request)
        if isinstance(form, Response):
            return form
        ip = rate_key(request.scope.get("digest.client", "unknown"))
        wants_preview = form.get("action") == "preview"
        d = self._draft(form, for_preview=wants_preview)
        if wants_preview:
            if not self.side.previews.allow(ip):
                return self._too_many(request)
            shown = preview(self.settings, d.subscriber) if d.subscriber is not None else None
            return self.h.page(
                request,
                "subscribe",
                200 if d.ok else 400,
                title="Subscribe",
                values=d.values,
                errors=d.errors,
                preview=shown,
            )
        if not d.ok or d.subscriber is None:
            return self.h.page(request, "subscribe", 400, title="Subscribe", values=d.values, errors=d.errors)
        if not self.side.per_ip.allow(ip):
            return self._too_many(request)
        try:
            asked = await self.side.ask_confirmation(d.subscriber, d.table)
        except DigestError as exc:
            return self.h.unavailable(request, exc)
        if asked == "mail-failed":
            return self.h.message(
                request, "Not now", "We could not send mail just now; please try again later.", status=503
            )
        # The same words whether the address is new, pending, subscribed, or over its limit.
        hours = self.settings.web.confirm_hours
        return self.h.message(
            request,
            "Check your inbox",
            f"If {d.subscriber.email} can receive mail, a link to confirm your subscription is on its way.",
            f"It works for {hours} hours. Nothing is sent to the address until it is confirmed.",
        )

    def _too_many(self, request: Request) -> Response:
        response = self.h.message(
            request,
            "Too many tries",
            "Too many requests from your network; try again in an hour.",
            status=429,
        )
        response.headers["retry-after"] = "3600"
        return response

    # -- confirm ---------------------------------------------------------------------------------
    async def confirm_page(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        found = self.side.pending_of(token)
        if found is None:
            return self._bad_link(request)
        form = {
            "action": f"{self.side.base}confirm",
            "hidden": {"token": token},
            "value": "confirm",
            "button": "Confirm",
        }
        return self.h.message(
            request, "Confirm your subscription", f"Send the paper digest to {found[0]}?", form=form
        )

    async def confirm(self, request: Request) -> Response:
        form = await self.h.checked_form(request)
        if isinstance(form, Response):
            return form
        try:
            email = self.side.confirm(str(form.get("token", "")))
        except DigestError as exc:
            return self.h.unavailable(request, exc)
        if email is None:
            return self._bad_link(request)
        link = {"href": self.side.manage_link(email), "text": "Edit your profile, pause or change how often"}
        return self.h.message(
            request,
            "You are subscribed",
            f"Digests go to {email} from the next run on. Every digest carries a link to this profile.",
            link=link,
        )

    def _bad_link(self, request: Request) -> Response:
        link = {"href": f"{self.side.base}subscribe", "text": "Subscribe again"}
        return self.h.message(request, "Link not valid", BAD_LINK, status=400, link=link)

    # -- manage ----------------------------------------------------------------------------------
    def _view(self, token: str) -> ManageView | None:
        email = self.side.manage_email(token)
        return None if email is None else self.side.manage_view(email)

    def _manage_page(
        self, request: Request, token: str, view: ManageView, status: int = 200, **context: Any
    ) -> Response:
        web = view.web
        if web is not None:
            context.setdefault("values", values_of(web.profile or {}))
        if web is not None and view.toml is not None:  # the file wins (pipeline.readers): say so
            context.setdefault(
                "notice", "Your address is in the list's subscribers file too; its profile is the one used."
            )
        return self.h.page(
            request,
            "manage",
            status,
            title="Your digest",
            email=view.email,
            token=token,
            editable=web is not None,
            paused=bool(web and web.paused),
            unsubscribed=view.unsubscribed,
            unsubscribe_token=view.unsubscribe_token,
            file_profile=_file_profile(view.toml) if view.toml else "",
            **context,
        )

    async def manage_page(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            view = self._view(token)
        except DigestError as exc:
            return self.h.unavailable(request, exc)
        if view is None:
            return self._bad_manage(request)
        return self._manage_page(request, token, view)

    def _bad_manage(self, request: Request) -> Response:
        link = {"href": f"{self.side.base}subscribe", "text": "Subscribe"}
        return self.h.message(
            request,
            "Link not valid",
            BAD_LINK,
            "Every digest carries a fresh link to your profile.",
            status=400,
            link=link,
        )

    async def manage(self, request: Request) -> Response:
        form = await self.h.checked_form(request)
        if isinstance(form, Response):
            return form
        token = str(form.get("token", ""))
        try:
            view = self._view(token)
            if view is None or view.web is None:
                return self._bad_manage(request)
            return self._manage_action(request, token, view, form)
        except DigestError as exc:
            return self.h.unavailable(request, exc)

    def _manage_action(
        self, request: Request, token: str, view: ManageView, form: Mapping[str, Any]
    ) -> Response:
        action = form.get("action")
        email = view.email
        if action in ("preview", "save"):
            d = self._draft({**form, "email": email}, for_preview=False)
            if not d.ok or d.subscriber is None:
                return self._manage_page(request, token, view, 400, values=d.values, errors=d.errors)
            if action == "preview":
                return self._manage_page(
                    request, token, view, values=d.values, preview=preview(self.settings, d.subscriber)
                )
            self.side.save(email, d)
            notice = "Saved: your next digest follows this profile."
        elif action in ("pause", "resume"):
            self.side.pause(email, action == "pause")
            notice = (
                "Paused: no digests until you resume."
                if action == "pause"
                else "Resumed: digests go out again."
            )
        elif action == "leave":
            self.side.leave(email)
            link = {"href": f"{self.side.base}subscribe", "text": "Subscribe again"}
            return self.h.message(request, "You have left", f"No more digests go to {email}.", link=link)
        else:
            return self.h.message(request, "Unknown action", "Reload the page and try again.", status=400)
        fresh = self.side.manage_view(email) or view
        return self._manage_page(request, token, fresh, notice=notice)

    # -- unsubscribe -----------------------------------------------------------------------------
    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            email = self.side.unsubscribe_email(token)
            done = email is not None and self.side.is_unsubscribed(email)
        except DigestError as exc:
            return self.h.unavailable(request, exc)
        if email is None:
            return self.h.message(request, "Link not valid", BAD_LINK, status=400)
        return self._unsubscribe_page(request, token, email, done)

    def _unsubscribe_page(
        self, request: Request, token: str, email: str, done: bool, status: int = 200
    ) -> Response:
        hidden = {"token": token}
        action = f"{self.side.base}unsubscribe"
        form: dict[str, Any]
        if done:
            form = {"action": action, "hidden": hidden, "value": "undo", "button": "Undo: subscribe me again"}
            return self.h.message(
                request, "You are unsubscribed", f"No more digests go to {email}.", form=form, status=status
            )
        form = {
            "action": action,
            "hidden": hidden,
            "value": "unsubscribe",
            "button": "Unsubscribe",
            "danger": True,
        }
        return self.h.message(
            request, "Unsubscribe", f"Stop sending the paper digest to {email}?", form=form, status=status
        )

    async def unsubscribe(self, request: Request) -> Response:
        form = await self.h.form(request)
        if isinstance(form, Response):
            return form
        query_token = request.query_params.get("token", "")
        if form.get("List-Unsubscribe") == "One-Click" and query_token:
            return await self._one_click(query_token)
        form = await self.h.checked_form(request)
        if isinstance(form, Response):
            return form
        token = str(form.get("token", ""))
        try:
            if form.get("action") == "undo":
                email = self.side.undo(token)
                if email is None:
                    return self.h.message(request, "Link not valid", BAD_LINK, status=400)
                return self.h.message(
                    request, "Welcome back", f"Digests go to {email} again from the next run on."
                )
            email = self.side.unsubscribe(token)
        except DigestError as exc:
            return self.h.unavailable(request, exc)
        if email is None:
            return self.h.message(request, "Link not valid", BAD_LINK, status=400)
        return self._unsubscribe_page(request, token, email, True)

    async def _one_click(self, token: str) -> Response:
        """RFC 8058: the mail provider's POST, no cookie, no page to read; the answer is a status."""
        try:
            email = self.side.unsubscribe(token)
        except DigestError:
            return HTMLResponse("not now", status_code=503, headers={"cache-control": "no-store"})
        if email is None:
            return HTMLResponse(
                "not a valid unsubscribe link", status_code=400, headers={"cache-control": "no-store"}
            )
        return HTMLResponse("unsubscribed", headers={"cache-control": "no-store"})

    # -- feedback ("more / fewer like this") ------------------------------------------------------
    async def feedback_page(self, request: Request) -> Response:
        """A button, not the feedback itself: mail scanners open links, and would vote."""
        token = request.query_params.get("token", "")
        found = verify_feedback(self.side.key, token)
        if found is None:
            return self.h.message(request, "Link not valid", BAD_LINK, status=400)
        _email, paper_id, direction = found
        what = "More" if direction == "more" else "Fewer"
        form = {"action": f"{self.side.base}feedback", "hidden": {"token": token}, "value": direction}
        form["button"] = f"{what} like this"
        return self.h.message(
            request, f"{what} papers like {paper_id}?", "Your digests will learn from it.", form=form
        )

    async def feedback(self, request: Request) -> Response:
        form = await self.h.checked_form(request)
        if isinstance(form, Response):
            return form
        token = str(form.get("token", ""))
        if verify_feedback(self.side.key, token) is None:
            return self.h.message(request, "Link not valid", BAD_LINK, status=400)
        try:
            done = commands.feedback(self.settings, token)
        except DigestError as exc:
            return self.h.unavailable(request, exc)
        what = "more" if done.direction == "more" else "fewer"
        return self.h.message(
            request,
            "Thank you",
            f"You will get {what} papers like {done.title or done.paper_id} from the next run on.",
        )


def _file_profile(sub: Subscriber) -> str:
    """A file reader's profile, as the lines of their table that say something."""
    lines = []
    for key in ("name", "keywords", "exclude", "authors", "categories", "query", "cadence", "weekday"):
        value = getattr(sub, key)
        if value:
            lines.append(f"{key} = {', '.join(value) if isinstance(value, tuple) else value}")
    return "\n".join(lines) or "(every new paper)"


def reader_routes(h: Handlers) -> list[Route]:
    r = ReaderRoutes(h)
    return [
        Route("/subscribe", r.subscribe_form, methods=["GET"]),
        Route("/subscribe", r.subscribe, methods=["POST"]),
        Route("/confirm", r.confirm_page, methods=["GET"]),
        Route("/confirm", r.confirm, methods=["POST"]),
        Route("/manage", r.manage_page, methods=["GET"]),
        Route("/manage", r.manage, methods=["POST"]),
        Route("/unsubscribe", r.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe", r.unsubscribe, methods=["POST"]),
        Route("/feedback", r.feedback_page, methods=["GET"]),
        Route("/feedback", r.feedback, methods=["POST"]),
    ]
