"""The reader's side on the web (digest.web), in-process against real servers: the Starlette app
driven by httpx (Starlette's TestClient), a real aiosmtpd receiving the confirmation mail and the
digests, real `digest` runs (tests/cli_runner.py) on a local listing server. What a browser adds
is tests/test_web_browser.py."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from cli_runner import SECRET, digest
from pytest_httpserver import HTTPServer
from smtp_servers import AcceptAll, free_port, smtp_server
from starlette.testclient import TestClient
from test_run import DATE, serve_listings, write_config

from digest.config import load_settings, signing_key
from digest.core.tokens import feedback_token, timed_token, unsubscribe_token, verify_timed
from digest.store import Store
from digest.web.app import create_app
from digest.web.security import client_ip, rate_key
from digest.web.service import export_toml

BASE = "http://testserver/"


def web_config(tmp_path: Path, httpserver: HTTPServer, port: int, extra: str = "") -> Path:
    config = write_config(tmp_path, httpserver, port)
    config.write_text(
        config.read_text() + f'\n[web]\nlisten = "127.0.0.1:8080"\nbase_url = "{BASE}"\n{extra}\n'
    )
    return config


def csrf(client: TestClient, path: str = "/subscribe") -> str:
    page = client.get(path)
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def confirmation_link(handler: AcceptAll, to: str) -> str:
    mail = next(
        m
        for m in reversed(handler.messages())
        if str(m["To"]).lower() == to and "Confirm" in str(m["Subject"])
    )
    body = mail.get_content()
    found = re.search(r"(http://testserver/confirm\?token=\S+)", body)
    assert found, body
    return found.group(1)


def subscribe(client: TestClient, email: str, **fields: str) -> object:
    form = {"csrf": csrf(client), "action": "subscribe", "email": email, **fields}
    return client.post("/subscribe", data=form)


def confirm(client: TestClient, link: str) -> str:
    path = link.removeprefix("http://testserver")
    page = client.get(path)
    assert page.status_code == 200 and "Confirm" in page.text
    token = path.split("token=", 1)[1]
    done = client.post("/confirm", data={"csrf": csrf(client, path), "token": token, "action": "confirm"})
    assert done.status_code == 200, done.text
    assert "You are subscribed" in done.text
    found = re.search(r'href="(http://testserver/manage\?token=[^"]+)"', done.text)
    assert found
    return found.group(1).replace("&amp;", "&")


@pytest.fixture
def site(tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    serve_listings(httpserver)
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = web_config(tmp_path, httpserver, port)
        fetched = digest("fetch", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert fetched.returncode == 0, fetched.stderr
        settings = load_settings(config)
        with TestClient(create_app(settings), base_url="http://testserver") as client:
            yield config, settings, client, handler


def test_subscribe_preview_confirm_and_the_next_run_sends_to_the_web_reader(site, tmp_path: Path) -> None:
    config, settings, client, handler = site
    preview = client.post(
        "/subscribe", data={"csrf": csrf(client), "action": "preview", "keywords": "language model"}
    )
    assert preview.status_code == 200, preview.text
    assert "Preview" in preview.text and re.search(r"\d+ of \d+ new papers", preview.text)

    asked = subscribe(client, "Lin@Example.org", keywords="language model", name="Lin")
    assert asked.status_code == 200 and "Check your inbox" in asked.text
    assert handler.wait_for(1)
    with Store.from_config(settings.state) as store:
        reader = store.web_reader("lin@example.org")
        assert reader is not None and reader.profile is None and reader.pending  # nothing sent yet
    manage = confirm(client, confirmation_link(handler, "lin@example.org"))

    checked = digest("check", "--config", str(config), cwd=tmp_path)
    assert "web reader: lin@example.org (confirmed" in checked.stdout, checked.stdout + checked.stderr

    ran = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    digests = [m for m in handler.messages() if "new papers" in str(m["Subject"])]
    lin = next(m for m in digests if "<lin@example.org>" in str(m["To"]))
    assert f"<{BASE}unsubscribe?token=" in str(lin["List-Unsubscribe"])
    assert str(lin["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    text = lin.get_body(("plain",)).get_content()
    assert f"{BASE}manage?token=" in text
    assert client.get(manage.removeprefix("http://testserver")).status_code == 200


def test_bad_input_is_shown_inline_with_digest_checks_words_and_nothing_is_stored(site) -> None:
    _config, settings, client, handler = site
    page = subscribe(client, "not-an-address", keywords="rag", query="a AND (")
    assert page.status_code == 400
    assert "email: &#39;not-an-address&#39; is not a valid address" in page.text
    assert "query: unexpected end of query at column 8" in page.text
    assert 'value="not-an-address"' in page.text  # what was typed stays
    empty = subscribe(client, "ada2@example.org")
    assert "empty profile: give keywords" in empty.text
    liked = subscribe(client, "ada3@example.org", like="2411.01234\nnot a paper")
    assert liked.status_code == 400 and 'id="like-problem"' in liked.text  # under the field
    assert "like: cannot read &#39;not&#39; as a paper" in liked.text
    assert handler.messages() == []
    with Store.from_config(settings.state) as store:
        assert store.web_readers() == []
    # liked papers alone are a profile
    assert subscribe(client, "ada4@example.org", like="https://arxiv.org/abs/2411.01234").status_code == 200


def test_subscribing_again_reveals_nothing_and_needs_a_new_confirmation(site) -> None:
    _config, settings, client, handler = site
    first = subscribe(client, "lin@example.org", keywords="language model")
    confirm(client, confirmation_link(handler, "lin@example.org"))
    again = subscribe(client, "lin@example.org", keywords="diffusion")
    new = subscribe(client, "new@example.org", keywords="diffusion")
    strip = lambda page: page.text.replace("lin@example.org", "X").replace("new@example.org", "X")  # noqa: E731
    assert strip(first) == strip(again) == strip(new)
    with Store.from_config(settings.state) as store:
        lin = store.web_reader("lin@example.org")
        assert lin is not None and lin.profile == {"keywords": ["language model"]}  # until confirmed
        assert lin.pending == {"keywords": ["diffusion"]}


def test_a_confirmation_link_works_once_and_a_forged_one_not_at_all(site) -> None:
    _config, _settings, client, handler = site
    subscribe(client, "lin@example.org", keywords="language model")
    link = confirmation_link(handler, "lin@example.org")
    confirm(client, link)
    path = link.removeprefix("http://testserver")
    token = path.split("token=", 1)[1]
    reused = client.post("/confirm", data={"csrf": csrf(client), "token": token, "action": "confirm"})
    assert reused.status_code == 400
    assert client.get("/confirm?token=" + token[:-2] + "xx").status_code == 400


def test_one_click_unsubscribe_as_a_mail_provider_posts_it_then_undo(site, tmp_path: Path) -> None:
    config, settings, client, handler = site
    token = unsubscribe_token(settings_key(settings), "ada@example.org")
    clicked = client.post(
        f"/unsubscribe?token={token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert clicked.status_code == 200
    page = client.get(f"/unsubscribe?token={token}")
    assert "You are unsubscribed" in page.text and "Undo" in page.text
    ran = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "ada@example.org" not in handler.recipients()
    undo = client.post("/unsubscribe", data={"csrf": csrf(client), "token": token, "action": "undo"})
    assert "Welcome back" in undo.text
    again = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "ada@example.org" in handler.recipients()


def test_a_get_never_unsubscribes_and_a_bad_token_changes_nothing(site) -> None:
    _config, settings, client, _handler = site
    token = unsubscribe_token(settings_key(settings), "ada@example.org")
    page = client.get(f"/unsubscribe?token={token}")
    assert page.status_code == 200 and "Stop sending" in page.text
    forged = client.post(
        "/unsubscribe?token=bm9ib2R5.xxxx",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert forged.status_code == 400
    with Store.from_config(settings.state) as store:
        assert store.suppressions() == {}


def test_manage_edit_pause_and_leave(site, tmp_path: Path) -> None:
    config, settings, client, handler = site
    subscribe(client, "lin@example.org", keywords="language model")
    manage = confirm(client, confirmation_link(handler, "lin@example.org")).removeprefix("http://testserver")
    token = manage.split("token=", 1)[1]
    page = client.get(manage)
    assert "language model" in page.text
    bad = client.post(
        "/manage", data={"csrf": csrf(client, manage), "token": token, "action": "save", "query": "("}
    )
    assert bad.status_code == 400 and "query:" in bad.text
    saved = client.post(
        "/manage",
        data={
            "csrf": csrf(client, manage),
            "token": token,
            "action": "save",
            "keywords": "diffusion",
            "cadence": "weekly",
            "weekday": "friday",
        },
    )
    assert "Saved" in saved.text
    with Store.from_config(settings.state) as store:
        lin = store.web_reader("lin@example.org")
        assert lin is not None
        assert lin.profile == {"keywords": ["diffusion"], "cadence": "weekly", "weekday": "friday"}
    client.post("/manage", data={"csrf": csrf(client, manage), "token": token, "action": "pause"})
    assert "paused" in digest("check", "--config", str(config), cwd=tmp_path).stdout
    left = client.post("/manage", data={"csrf": csrf(client, manage), "token": token, "action": "leave"})
    assert "You have left" in left.text
    with Store.from_config(settings.state) as store:
        assert store.web_reader("lin@example.org") is None


def test_forms_without_the_csrf_token_or_from_another_origin_are_refused(site) -> None:
    _config, _settings, client, handler = site
    no_token = client.post(
        "/subscribe", data={"action": "subscribe", "email": "x@example.org", "keywords": "rag"}
    )
    assert no_token.status_code == 403
    other = client.post(
        "/subscribe",
        data={"csrf": csrf(client), "action": "subscribe", "email": "x@example.org", "keywords": "rag"},
        headers={"origin": "https://evil.example"},
    )
    assert other.status_code == 403
    assert handler.messages() == []


def test_rate_limits_security_headers_and_size_limits(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    serve_listings(httpserver)
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = web_config(
            tmp_path, httpserver, port, "subscribe_per_ip_hour = 2\nmail_per_address_day = 1\nmax_body = 2048"
        )
        with TestClient(create_app(load_settings(config)), base_url="http://testserver") as client:
            page = client.get("/subscribe")
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "same-origin"
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert page.headers["cache-control"] == "no-store"
            assert subscribe(client, "a@example.org", keywords="rag").status_code == 200
            assert subscribe(client, "a@example.org", keywords="rag").status_code == 200  # same words...
            assert handler.wait_for(1) and len(handler.messages()) == 1  # ...one mail a day to it
            assert subscribe(client, "b@example.org", keywords="rag").status_code == 429  # the IP's limit
            huge = client.post("/subscribe", data={"csrf": "x", "keywords": "a" * 5000})
            assert huge.status_code == 413
            # chunked, with no Content-Length: counted as it arrives
            chunks = iter([b"csrf=x&keywords=", b"a" * 3000])
            form = {"content-type": "application/x-www-form-urlencoded"}
            assert client.post("/subscribe", content=chunks, headers=form).status_code == 413


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    assert client_ip("203.0.113.9", "1.2.3.4", ["127.0.0.1"]) == "203.0.113.9"
    assert client_ip("127.0.0.1", "1.2.3.4", ["127.0.0.1"]) == "1.2.3.4"
    assert client_ip("127.0.0.1", "9.9.9.9, 1.2.3.4, 127.0.0.1", ["127.0.0.0/8"]) == "1.2.3.4"
    assert client_ip("127.0.0.1", None, ["127.0.0.1"]) == "127.0.0.1"
    assert rate_key("2001:db8::1") == rate_key("2001:db8::ffff") == "2001:db8::/64"
    assert rate_key("203.0.113.9") == "203.0.113.9"


def test_the_feeds_and_archive_are_served_with_caching_headers(site, tmp_path: Path) -> None:
    config, _settings, client, _handler = site
    ran = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    feed = client.get("/feed.xml")
    assert feed.status_code == 200 and feed.headers["cache-control"] == "public, max-age=300"
    assert feed.headers.get("etag")
    assert client.get("/feed.xml", headers={"if-none-match": feed.headers["etag"]}).status_code == 304
    assert client.get("/").status_code == 200
    assert client.get("/../digest.toml").status_code == 404


def test_a_web_reader_with_a_file_readers_address_loses_and_export_writes_toml(site, tmp_path: Path) -> None:
    config, settings, client, handler = site
    subscribe(client, "ADA@example.org", keywords="diffusion")
    ada_manage = confirm(client, confirmation_link(handler, "ada@example.org"))
    assert "its profile is the one used" in client.get(ada_manage.removeprefix("http://testserver")).text
    subscribe(client, "lin@example.org", keywords="language model", name='Lin "the" Reader')
    confirm(client, confirmation_link(handler, "lin@example.org"))
    checked = digest("check", "--config", str(config), cwd=tmp_path)
    assert "the file's profile is used" in checked.stdout, checked.stdout
    text = export_toml(settings)
    tables = tomllib.loads(text)["subscribers"]
    assert {"email": "lin@example.org", "keywords": ["language model"], "name": 'Lin "the" Reader'} in tables
    exported = digest("readers", "export", "--config", str(config), cwd=tmp_path)
    assert exported.returncode == 0 and "lin@example.org" in exported.stdout
    # a reader who unsubscribed is written commented out, and says why
    token = unsubscribe_token(settings_key(settings), "lin@example.org")
    headers = {"content-type": "application/x-www-form-urlencoded"}
    assert (
        client.post(
            f"/unsubscribe?token={token}", content=b"List-Unsubscribe=One-Click", headers=headers
        ).status_code
        == 200
    )
    after = export_toml(settings)
    assert "lin@example.org" not in {t["email"] for t in tomllib.loads(after).get("subscribers", [])}
    assert "(unsubscribed: suppressed until `digest unsubscribe --undo`)" in after


def settings_key(settings) -> bytes:
    return signing_key(settings)


def test_feedback_links_land_here_a_get_asks_and_a_post_applies(site) -> None:
    _config, settings, client, _handler = site
    token = feedback_token(settings_key(settings), "ada@example.org", "2411.00001", "more")
    page = client.get(f"/feedback?token={token}")
    assert page.status_code == 200 and "More like this" in page.text
    assert client.get("/feedback?token=" + token[:-3] + "abc").status_code == 400
    done = client.post("/feedback", data={"csrf": csrf(client), "token": token, "action": "more"})
    assert done.status_code == 200 and "Thank you" in done.text, done.text


def test_timed_tokens_expire_and_serve_one_purpose_only() -> None:
    token = timed_token(b"key", "manage", "ada@example.org", 1000)
    assert verify_timed(b"key", "manage", token, 999.0) == "ada@example.org"
    assert verify_timed(b"key", "manage", token, 1000.0) is None  # expired
    assert verify_timed(b"key", "confirm", token, 999.0) is None  # another purpose
    assert verify_timed(b"other", "manage", token, 999.0) is None  # another key
    assert verify_timed(b"key", "manage", "garbage", 0) is None


def test_a_confirmation_mail_that_cannot_go_out_stores_nothing(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    config = web_config(tmp_path, httpserver, free_port())  # nobody listens there
    settings = load_settings(config)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        page = subscribe(client, "lin@example.org", keywords="rag")
        assert page.status_code == 503 and "try again later" in page.text
    with Store.from_config(settings.state) as store:
        assert store.web_readers() == []


def test_a_paused_web_reader_gets_nothing_until_resumed(site, tmp_path: Path) -> None:
    config, _settings, client, handler = site
    subscribe(client, "lin@example.org", keywords="language model")
    manage = confirm(client, confirmation_link(handler, "lin@example.org")).removeprefix("http://testserver")
    token = manage.split("token=", 1)[1]
    paused = client.post("/manage", data={"csrf": csrf(client, manage), "token": token, "action": "pause"})
    assert "Paused" in paused.text
    ran = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert [
        m for m in handler.messages() if "new papers" in str(m["Subject"]) and "lin@" in str(m["To"])
    ] == []
    client.post("/manage", data={"csrf": csrf(client, manage), "token": token, "action": "resume"})
    again = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [m for m in handler.messages() if "new papers" in str(m["Subject"]) and "lin@" in str(m["To"])]


def test_digest_web_without_listen_and_base_url_says_what_to_set(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[web]\nlisten = "127.0.0.1:8080"\n')
    result = digest("web", "--config", str(tmp_path / "digest.toml"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: [web]: set listen"), result.stderr


def test_a_field_too_long_is_one_message_not_also_an_empty_profile() -> None:
    from digest.web.forms import MAX_FIELD, draft

    form = {"email": "ada@example.org", "keywords": "x" * (MAX_FIELD + 1)}
    result = draft(form, source_names=["hf"], hf_sources=["hf"])
    assert result.errors == {"keywords": [f"keywords: longer than {MAX_FIELD} characters; shorten it"]}
    assert result.subscriber is None
    empty = draft({"email": "ada@example.org"}, source_names=["hf"], hf_sources=["hf"])
    assert any("empty profile" in m for ms in empty.errors.values() for m in ms)  # still said alone
