"""Weekly digests (issue 19): a fortnight of real listings, run every day through the CLI.

A real local HTTP server serves each weekday a different slice of the real arXiv listing's items
(tests/arxiv_days.py; weekends the empty channel arXiv serves), `digest run` runs in-process for
each date, the mail goes to the outbox. Readers come in pairs with the same profile, one daily and
one weekly: over the fortnight the weekly one must get exactly the papers the daily one got, in
two emails instead of ten, each paper once.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from pathlib import Path

from arxiv_days import ids, new_items, rss_day
from cli_runner import digest, offline_config
from pytest_httpserver import HTTPServer

from digest.commands import PreviewDay, preview
from digest.config import load_settings
from digest.store import Store

START = dt.date(2024, 11, 25)  # a Monday
DAYS = [START + dt.timedelta(days=n) for n in range(14)]
WEEKDAYS = [d for d in DAYS if d.weekday() < 5]
ITEMS = new_items()
ON = {day: ITEMS[n * 12 : n * 12 + 12] for n, day in enumerate(WEEKDAYS)}  # 12 new papers a weekday

PROFILES = """
[defaults]
weekday = "friday"

[[subscribers]]
email = "daily-all@example.org"
all = true
max_papers = 200

[[subscribers]]
email = "weekly-all@example.org"
all = true
max_papers = 200
cadence = "weekly"
feed = true

[[subscribers]]
email = "daily-ml@example.org"
keywords = ["learning", "model"]
max_papers = 200

[[subscribers]]
email = "weekly-ml@example.org"
keywords = ["learning", "model"]
max_papers = 200
cadence = "weekly"

[[subscribers]]
email = "weekly-few@example.org"
keywords = ["learning", "model"]
max_papers = 3
cadence = "weekly"
"""


def setup(tmp: Path, server: HTTPServer, extra: str = "") -> Path:
    sources = f"""
[[sources]]
name = "arxiv"
kind = "arxiv_rss"
url = "{server.url_for("/rss/cs")}"
api_url = "{server.url_for("/api/query")}"
"""
    config = offline_config(tmp, sources, extra)
    (tmp / "subscribers.toml").write_text(PROFILES)
    return config


def serve(server: HTTPServer, day: dt.date) -> None:
    server.clear()
    server.expect_request("/rss/cs").respond_with_data(
        rss_day(day, ON.get(day, [])), content_type="application/rss+xml"
    )


def run_day(
    tmp: Path,
    config: Path,
    server: HTTPServer,
    day: dt.date,
    env: dict[str, str] | None = None,
    ok: tuple[int, ...] = (0, 5),
) -> None:
    serve(server, day)
    done = digest("run", "--config", str(config), "--date", day.isoformat(), cwd=tmp, env=env)
    assert done.returncode in ok, done.stdout + done.stderr  # 5: a weekend's empty listing


def mails(tmp: Path) -> dict[str, list[tuple[str, set[str]]]]:
    """Per reader, each email's date header day and the arXiv ids it links."""
    out: dict[str, list[tuple[str, set[str]]]] = {}
    for path in sorted((tmp / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        reader = message["To"].addresses[0].addr_spec
        out.setdefault(reader, []).append(
            (path.name[:10], set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", text)))
        )
    return out


def test_a_fortnight_daily_and_weekly_readers_get_the_same_papers_once(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = setup(tmp_path, httpserver)
    feed_seen: dict[dt.date, set[str]] = {}
    for day in DAYS:
        run_day(tmp_path, config, httpserver, day)
        if day == DAYS[1]:  # a Tuesday: the weekly reader's private feed already shows the week so far
            feeds = list((tmp_path / "public" / "feeds").glob("*.xml"))
            assert len(feeds) == 1
            feed_seen[day] = set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", feeds[0].read_text()))
    got = mails(tmp_path)
    everything = {i for day in WEEKDAYS for i in ids(ON[day])}
    assert len(got["daily-all@example.org"]) == 10
    assert len(got["weekly-all@example.org"]) == 2
    assert [d for d, _ in got["weekly-all@example.org"]] == ["2024-11-29", "2024-12-06"]  # Fridays
    for daily, weekly in (("daily-all", "weekly-all"), ("daily-ml", "weekly-ml")):
        daily_papers = [p for _, one in got[f"{daily}@example.org"] for p in one]
        weekly_papers = [p for _, one in got[f"{weekly}@example.org"] for p in one]
        assert len(daily_papers) == len(set(daily_papers)) and len(weekly_papers) == len(set(weekly_papers))
        assert set(weekly_papers) == set(daily_papers), weekly  # every matched paper, once
    assert set().union(*(one for _, one in got["weekly-all@example.org"])) == everything
    assert feed_seen[DAYS[1]] >= set(ids(ON[DAYS[0]])) | set(ids(ON[DAYS[1]]))
    # max_papers caps the week's digest, best first; the rest are counted
    few = got["weekly-few@example.org"]
    assert len(few) == 2 and all(len(one) == 3 for _, one in few)
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        assert store.held(before=DAYS[-1] + dt.timedelta(days=1)).keys() <= {
            "weekly-all@example.org",
            "weekly-ml@example.org",
            "weekly-few@example.org",
        }  # only the last weekend's (empty) days could wait
        row = store.delivery(dt.date(2024, 12, 6), "weekly-few@example.org")
        assert row is not None and row.status == "sent" and len(row.papers) == 3
        total = store.delivery_total(dt.date(2024, 12, 6), "weekly-few@example.org")
        daily_ml = sum(len(one) for d, one in got["daily-ml@example.org"] if d > "2024-11-29")
        assert total == daily_ml  # "N more" counts the whole week
    # running the whole fortnight again sends nothing more
    for day in DAYS:
        run_day(tmp_path, config, httpserver, day)
    assert mails(tmp_path) == got


def test_preview_shows_a_weekly_reader_the_week_s_digests(tmp_path: Path, httpserver: HTTPServer) -> None:
    config = setup(tmp_path, httpserver)
    for day in DAYS:
        run_day(tmp_path, config, httpserver, day)
    settings = load_settings(config)

    def shown(reader: str) -> list[PreviewDay]:
        return preview(
            settings, reader, subscribers_path=tmp_path / "subscribers.toml", date=DAYS[-1], days=14
        )

    weeks = shown("weekly-ml@example.org")
    sent = mails(tmp_path)["weekly-ml@example.org"]
    assert [w.digest.date.isoformat() for w in weeks] == [d for d, _ in sent] + ["2024-12-13"]
    assert [{m.paper.id for m in w.digest.matches} for w in weeks[:2]] == [one for _, one in sent]
    assert weeks[2].digest.matches == () and sum(w.new for w in weeks) == 12 * len(WEEKDAYS)
    daily = shown("daily-ml@example.org")
    assert len(daily) == 14  # a daily reader's preview is day by day, as before


def test_a_week_s_digest_sent_late_still_has_the_whole_week(tmp_path: Path, httpserver: HTTPServer) -> None:
    """The mail server is down from the weekday on for eleven days: the week's digest goes out
    late, whole, though its first days are older than the 15 days kept whole by then (the
    listings an unsent digest needs are kept until it is sent)."""
    config = setup(tmp_path, httpserver)
    outbox = config.read_text()
    dead = outbox.replace(
        'transport = "outbox"',
        'transport = "smtp"\nretry_backoff = 0\nmax_attempts = 1\n[smtp]\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\n',
    )
    (tmp_path / "subscribers.toml").write_text(
        '[[subscribers]]\nemail = "w@example.org"\nall = true\nmax_papers = 200\ncadence = "weekly"\nweekday = "friday"\n'
    )
    for n in range(17):
        day = START + dt.timedelta(days=n)
        config.write_text(outbox if day < WEEKDAYS[4] or n == 16 else dead)
        run_day(tmp_path, config, httpserver, day, ok=(0, 4, 5))
    (first_week, *_) = mails(tmp_path)["w@example.org"]
    assert first_week[0] == WEEKDAYS[4].isoformat()
    assert first_week[1] == {i for d in WEEKDAYS[:5] for i in ids(ON[d])}


def test_running_an_earlier_date_again_does_not_hold_its_day_a_second_time(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """After the week's digest took Tuesday, running Tuesday again must not hold it again: the
    papers the week's digest counted but did not show would reach the next week's."""
    config = setup(tmp_path, httpserver)
    for day in DAYS[:7]:
        run_day(tmp_path, config, httpserver, day)
    run_day(tmp_path, config, httpserver, DAYS[1])  # Tuesday again
    for day in DAYS[7:]:
        run_day(tmp_path, config, httpserver, day)
    week_two = {i for d in WEEKDAYS[5:] for i in ids(ON[d])}
    _, (_, second) = mails(tmp_path)["weekly-few@example.org"]
    assert second <= week_two, second - week_two  # nothing of week one in week two's digest
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        total = store.delivery_total(dt.date(2024, 12, 6), "weekly-few@example.org")
    daily = sum(len(one) for d, one in mails(tmp_path)["daily-ml@example.org"] if d > "2024-11-29")
    assert total == daily
