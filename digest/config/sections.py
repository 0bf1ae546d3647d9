"""The sections of digest.toml as typed models: every key, its default and its check.

How the file and the environment are read into them is `digest.config.settings`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import string
import zoneinfo
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from digest.config.cron import make_trigger
from digest.config.urls import http_url, postgres_url
from digest.core.addresses import sender_address
from digest.core.errors import ConfigError

HF_DAILY_URL = "https://huggingface.co/api/daily_papers"
# The fewest [state] keep_days: digest.plan.LATE_DAYS + 1 (a digest sent late needs its day's
# papers and explanations). Config sits below the plan; tests/test_retention.py checks they agree.
MIN_KEEP_DAYS = 15
ARXIV_API_URL = "https://export.arxiv.org/api/query"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StateConfig(_Section):
    path: Path = Path("state/digest.sqlite3")
    # How long a write waits for another process's lock on the database (a backup, an sqlite3
    # shell) before the run fails with one line; two digest runs never wait here (the run lock).
    busy_timeout: float = Field(default=30.0, ge=0, le=3600)
    # Days (with a snapshot) kept whole; older ones keep only what later runs read (paper ids and
    # versions, who got a digest): see docs/deployment.md, "How big the state gets". 0 keeps all;
    # unset, what later runs read whole: late digests' 15 days, or [output] feed_days if more
    # (digest.pipeline.retention.window_days).
    keep_days: int | None = Field(default=None, ge=0, le=3660)
    # The state on a PostgreSQL server instead of the file at `path` ("postgresql://user@host/db",
    # psycopg 3: `pip install '.[postgres]'`), so that several runners share one ledger.
    # Secret (it may hold a password); DIGEST_STATE__URL sets it from the environment.
    url: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else SecretStr(postgres_url(value.get_secret_value().strip()))

    @property
    def shared(self) -> bool:  # on PostgreSQL, which several runners may share
        return self.url is not None

    def exists(self) -> bool:  # a state to read may be there (the store says if a database has one)
        return self.url is not None or self.path.exists()

    @field_validator("keep_days")
    @classmethod
    def _keep_days(cls, value: int | None) -> int | None:
        if value is not None and 0 < value < MIN_KEEP_DAYS:
            raise ValueError(
                f"{value} is too few: late digests go out up to {MIN_KEEP_DAYS - 1} days after their "
                f"date and need that day whole; use {MIN_KEEP_DAYS} or more (and at least [output] "
                "feed_days), or 0 to keep everything"
            )
        return value


SourceKind = Literal["hf_daily", "arxiv_rss", "feed"]


class SourceConfig(_Section):
    name: str = ""  # defaults to the kind
    kind: SourceKind
    url: str
    # What readers see as the source in emails and feeds. None: the kind's label ("Hugging Face"
    # for hf_daily, "arXiv" for arxiv_rss; for a feed its own title, else `name`).
    display_name: str | None = Field(default=None, max_length=100)
    # arXiv (arxiv_rss, or a feed's arXiv items): `replace`/`replace-cross` items are new versions
    # of old papers; true treats a replacement of a paper never seen before as new.
    include_replacements: bool = False
    # hf_daily: how many days back to fetch (the run date and the day before by default, since
    # the list for a day fills up during that day).
    days: int = Field(default=2, ge=1, le=14)
    # arxiv_rss: where announcement days the feed no longer shows (a skipped or failed run) are
    # fetched from: the arXiv API, by the same categories and the day's submission window.
    api_url: str = ARXIV_API_URL

    @field_validator("url", "api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())  # it is shown on one line
        if not value:
            raise ValueError("is blank; leave display_name out to show the kind's label")
        return value

    @model_validator(mode="after")
    def _default_name(self) -> SourceConfig:
        if not self.name:
            object.__setattr__(self, "name", self.kind)
        return self


class FetchConfig(_Section):
    timeout: float = Field(default=30.0, gt=0)  # seconds, connect and each wait for the next bytes
    # seconds for a whole request, connect to last byte: a server sending a byte now and then
    # never trips `timeout`
    deadline: float = Field(default=120.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    backoff: float = Field(default=1.0, ge=0)  # first retry delay in seconds, doubled each time
    max_bytes: int = Field(default=50_000_000, gt=0)  # size cap per response body, once decoded
    # Announcement days a run missed (skipped runs, a source that failed) are fetched by the next
    # run up to this many days back; 0 turns backfilling off.
    backfill_days: int = Field(default=7, ge=0, le=60)
    # seconds between two requests to the arXiv API (its terms ask for 3)
    api_delay: float = Field(default=3.0, ge=0)


class SubscribersConfig(_Section):
    path: Path = Path("subscribers.toml")


class SmtpConfig(_Section):
    host: str | None = None
    port: int | None = Field(default=None, gt=0, lt=65536)  # None: 587, or 465 for "tls" (see port_number)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None  # only from DIGEST_SMTP__PASSWORD
    from_: str = Field(default="Paper Digest <digest@localhost>", alias="from")
    concurrency: int = Field(default=4, ge=1, le=64)
    rate: float = Field(default=0, ge=0)  # messages per second over all connections, 0 = no limit
    timeout: float = Field(default=60.0, gt=0)
    allow_insecure: bool = False  # permit security = "none" to a host that is not loopback
    verify: bool = True  # verify the server certificate
    ca_file: Path | None = None  # extra CA bundle (a private CA, a self-signed test server)

    @property
    def port_number(self) -> int:
        """`port`, else the port of `security`: 465 for implicit TLS, 587 (submission) otherwise."""
        if self.port is not None:
            return self.port
        return 465 if self.security == "tls" else 587

    @field_validator("from_")
    @classmethod
    def _from_is_an_address(cls, value: str) -> str:
        try:
            sender_address(value)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("[smtp] from = ")) from None
        return value

    @model_validator(mode="after")
    def _insecure_only_on_loopback(self) -> SmtpConfig:
        if self.host and self.security == "none" and not self.allow_insecure and not is_loopback(self.host):
            raise ValueError(
                f'security = "none" sends mail and password in clear text to {self.host}; '
                'use "starttls" or "tls", or set allow_insecure = true'
            )
        return self


class DeliveryConfig(_Section):
    # None: "smtp" when [smtp] host is set, else "outbox".
    transport: Literal["smtp", "outbox"] | None = None
    outbox: Path = Path("outbox")
    max_attempts: int = Field(default=4, ge=1, le=20)  # per message, for 4xx and dropped connections
    retry_backoff: float = Field(default=2.0, ge=0)  # seconds before the first retry, doubled each time
    max_connection_failures: int = Field(default=3, ge=1)  # in a row, then the run stops sending
    # replies that never came within [smtp] timeout, in a row (over all connections), then the run
    # stops sending: a server that stalls after DATA would otherwise cost every message the timeout
    max_timeouts: int = Field(default=2, ge=1)
    # Processes that render the emails ahead of the sender (forked at the start of sending, fed a
    # bounded number at a time), so the SMTP connections never wait for a template; 0 renders
    # each one in the sending process just before it goes out. 1 suits a small machine whose
    # other core the mail server (or the local relay) uses.
    render_workers: int = Field(default=1, ge=0, le=32)
    # A digest of unknown fate (the run died, or the connection dropped, after the message may have
    # reached the server): "report" it on every run until `--retry-unknown`; or "resend" it once,
    # on the next run, under its first Message-ID (most mail systems drop the second copy).
    unknown: Literal["report", "resend"] = "report"
    subject: str = "{count} new papers for you · {date}"  # {count}, {date}, {name}
    list_id: str = "Paper Digest <digest.localhost>"
    # An https endpoint you run that unsubscribes `?token=...` (GET shows a page, POST is the
    # one-click of RFC 8058). None: the emails offer the mailto link only, which lands in the
    # From mailbox and is applied with `digest unsubscribe`. (A static site cannot take a POST.)
    unsubscribe_url: str | None = None

    @field_validator("unsubscribe_url")
    @classmethod
    def _unsubscribe_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError(f"{value!r} is not an https URL; one-click unsubscribe needs https")
        if parts.fragment or value.endswith("#"):
            raise ValueError(f"{value!r} has a #fragment, after which the ?token= would be lost; remove it")
        return value

    @field_validator("subject")
    @classmethod
    def _subject_placeholders(cls, value: str) -> str:
        check_subject(value)
        return value


SUBJECT_PLACEHOLDERS = ("count", "date", "name")


def check_subject(template: str) -> None:
    """ValueError unless `template` uses only bare {count}, {date} and {name}.

    `str.format` would also follow attributes and indexes (`{name.__class__}`) and honour any
    width (`{count:>99999999}` builds a 100 MB subject), so only bare names are allowed.
    """
    hint = "the placeholders are {count}, {date} and {name} (write {{ and }} for braces)"
    if not template.strip():
        raise ValueError(f'the subject is empty; e.g. subject = "{{count}} new papers · {{date}}"; {hint}')
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{exc}; {hint}") from None
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in SUBJECT_PLACEHOLDERS or spec or conversion:
            written = (
                "{" + field + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            )
            raise ValueError(f"{written} is not a placeholder; {hint}")


class OutputConfig(_Section):
    dir: Path = Path("public")
    base_url: str | None = None  # where `dir` is served, for absolute links in feeds and emails
    feed_days: int = Field(default=14, ge=1, le=366)
    atom: bool = True  # also write feed.atom next to feed.xml
    # Day pages older than this many days are removed (the archive index lists what is left);
    # 0 keeps every page.
    archive_days: int = Field(default=90, ge=0, le=3660)

    @model_validator(mode="after")
    def _archive_covers_feeds(self) -> OutputConfig:
        if 0 < self.archive_days < self.feed_days:
            raise ValueError(
                f"archive_days = {self.archive_days} is less than feed_days = {self.feed_days}: the "
                "feeds link to day pages; make archive_days at least feed_days, or 0 to keep every page"
            )
        return self

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return http_url(value, "https://host/path/").rstrip("/") + "/"


class TemplatesConfig(_Section):
    dir: Path | None = None  # templates here override the shipped ones of the same name


class ScheduleConfig(_Section):
    # timezone before cron: the cron is checked in it (validators see the fields before theirs)
    timezone: str = "UTC"
    cron: str = "0 7 * * 1-5"
    misfire_grace_hours: float = Field(default=6, gt=0)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'{value!r} is not an IANA time zone; write e.g. "Europe/Berlin"') from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str, info: ValidationInfo) -> str:
        timezone = info.data.get("timezone")
        if timezone is None:  # reported on its own
            return value
        config = cls.model_construct(cron=value, timezone=timezone)
        try:
            trigger = make_trigger(config)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("[schedule] ")) from None
        if trigger.get_next_fire_time(None, dt.datetime.now(config.tz)) is None:  # "0 7 31 2 *"
            raise ValueError(f"cron = {value!r} never fires: no such day; check day and month")
        return value

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


# A language as a prompt names it ("English", "German", "Brazilian Portuguese", "zh-Hans"): it goes
# into the prompt, so nothing but letters, spaces and a few joiners.
_LANGUAGE = re.compile(r"[^\W\d_][\w ()'.-]{0,39}")


def check_language(value: str) -> str:
    """`value` as one line; ValueError unless it reads as a language's name or tag."""
    value = " ".join(value.split())
    if not _LANGUAGE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a language name; write it as the model should read it, e.g. "
            '"English", "German" or "Simplified Chinese" (letters and spaces, at most 40 characters)'
        )
    return value


class SummariesConfig(_Section):
    """`[summaries]`: a one-line TL;DR per paper a reader gets, from an OpenAI-compatible endpoint."""

    enabled: bool = False
    # the API root that `/chat/completions` is appended to: OpenAI, DeepSeek, Ollama, vLLM, llama.cpp
    base_url: str = "https://api.openai.com/v1"
    model: str = Field(default="", max_length=100)  # required when enabled
    api_key: SecretStr | None = None  # only from DIGEST_SUMMARIES__API_KEY (or the secrets dir)
    language: str = "English"  # the list's; a reader's `language` overrides it
    concurrency: int = Field(default=8, ge=1, le=64)  # requests at once
    timeout: float = Field(default=60.0, gt=0)  # seconds per request, connect to last byte
    deadline: float = Field(default=300.0, gt=0)  # seconds for the whole stage, retries included
    retries: int = Field(default=3, ge=0, le=10)  # on 429, 5xx, timeouts and dropped connections
    backoff: float = Field(default=1.0, ge=0)  # seconds before the first retry, doubled each time
    max_papers: int = Field(default=500, ge=0)  # papers summarised a day (cached ones are free)
    max_tokens: int = Field(default=1_000_000, ge=0)  # tokens a day, prompt and answer
    max_chars: int = Field(default=400, ge=80, le=2000)  # a longer answer is discarded
    allow_insecure: bool = False  # permit an http:// base_url that is not loopback with an api_key

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return http_url(value, "e.g. http://localhost:11434/v1").rstrip("/")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if value != " ".join(value.split()):
            raise ValueError(f"{value!r}: write the model's name on one line, without spaces around it")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return check_language(value)

    @model_validator(mode="after")
    def _usable(self) -> SummariesConfig:
        if self.enabled and not self.model:
            raise ValueError('enabled = true needs a model, e.g. model = "gpt-4o-mini" or "qwen2.5:7b"')
        host = urlsplit(self.base_url).hostname or ""
        if (
            self.api_key is not None
            and self.base_url.startswith("http://")
            and not self.allow_insecure
            and not is_loopback(host)
        ):
            raise ValueError(
                f"base_url {self.base_url!r} would send the API key in clear text to {host}; "
                "use https, or set allow_insecure = true"
            )
        return self

    def language_for(self, reader: str) -> str:
        """The language of a reader's summaries: their own `language`, else the list's."""
        return reader or self.language


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
