"""Typed configuration: digest.toml + environment (+ .env, secrets dir), validated at load time.

Precedence, highest first: environment (`DIGEST_` prefix, nested with `__`, e.g.
`DIGEST_SMTP__HOST`), a `.env` file in the working directory, a secrets directory
(`DIGEST_SECRETS_DIR`, one file per variable), then the TOML file, then built-in defaults.

Secrets (`DIGEST_SMTP__PASSWORD`, `DIGEST_SUMMARIES__API_KEY`, `DIGEST_SECRET`) are `SecretStr` and
may not be written in the TOML file at all: a config file gets committed, copied and pasted into
issues.

Relative paths in the file are relative to the file's own folder, so `digest run --config
/etc/digest/digest.toml` from cron behaves the same whatever the working directory is.
"""

from __future__ import annotations

import os
import re
import secrets
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from digest.config.channels import ChannelConfig
from digest.config.relevance import RelevanceConfig
from digest.config.sections import (
    HF_DAILY_URL,
    DeliveryConfig,
    FetchConfig,
    OutputConfig,
    ScheduleConfig,
    SmtpConfig,
    SourceConfig,
    StateConfig,
    SubscribersConfig,
    SummariesConfig,
    TemplatesConfig,
)
from digest.config.web import WebConfig
from digest.core.errors import ConfigError
from digest.core.files import write_atomic
from digest.core.tomlfile import describe_validation_error, locate, read_toml

# The TOML file of the Settings being loaded; pydantic-settings builds sources from the class, so
# the path travels in a context variable rather than a global.
_toml_data: ContextVar[dict[str, Any] | None] = ContextVar("_toml_data", default=None)


class _TomlDataSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_toml_data.get() or {})


class Settings(BaseSettings):
    """Everything digest.toml and the environment can say."""

    model_config = SettingsConfigDict(
        env_prefix="DIGEST_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    state: StateConfig = StateConfig()
    sources: list[SourceConfig] = Field(
        default_factory=lambda: [SourceConfig(name="hf", kind="hf_daily", url=HF_DAILY_URL)]
    )
    fetch: FetchConfig = FetchConfig()
    subscribers: SubscribersConfig = SubscribersConfig()
    smtp: SmtpConfig = SmtpConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    output: OutputConfig = OutputConfig()
    templates: TemplatesConfig = TemplatesConfig()
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    summaries: SummariesConfig = SummariesConfig()
    web: WebConfig = WebConfig()  # [web]: the subscribe/manage/unsubscribe pages (digest.web)
    relevance: RelevanceConfig = RelevanceConfig()  # [relevance]: like / dislike / feedback ranking
    channels: list[ChannelConfig] = Field(default_factory=list)
    # DIGEST_CHANNEL_URLS__<NAME>: each [[channels]]' destination, an Apprise URL (a secret)
    channel_urls: dict[str, SecretStr] = Field(default_factory=dict)
    secret: SecretStr | None = None  # DIGEST_SECRET: signs unsubscribe and private-feed links

    @field_validator("channels")
    @classmethod
    def _one_channel_a_name(cls, value: list[ChannelConfig]) -> list[ChannelConfig]:
        names = [c.name for c in value]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(
                f"channel {', '.join(twice)} is configured twice; give each [[channels]] its own name"
            )
        return value

    def channel_url(self, name: str) -> str | None:
        """The destination of channel `name` (environment or secrets dir), or None."""
        url = self.channel_urls.get(name.lower())
        return url.get_secret_value().strip() or None if url is not None else None

    @field_validator("secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # An Action's `${{ secrets.DIGEST_SECRET }}` is "" when the secret is not defined; signing
        # with an empty key would make every reader's links guessable from their address.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("DIGEST_SECRET is set but empty; set it to a long random string, or unset it")
        return value

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        if not sources:
            raise ValueError("no sources: add a [[sources]] table or remove the empty list")
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate source name {', '.join(dupes)}: give each [[sources]] a unique name")
        return sources

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        secrets_dir = os.environ.get("DIGEST_SECRETS_DIR")
        # Nested: a file named DIGEST_SMTP__PASSWORD sets [smtp] password, as the variable would.
        secret_source = (
            NestedSecretsSettingsSource(
                SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir), secrets_dir_missing="error"
            )
            if secrets_dir
            else file_secret_settings
        )
        return (init_settings, env_settings, dotenv_settings, secret_source, _TomlDataSource(settings_cls))

    # -- derived --------------------------------------------------------------------------------
    @property
    def transport(self) -> Literal["smtp", "outbox"]:
        if self.delivery.transport:
            return self.delivery.transport
        return "smtp" if self.smtp.host else "outbox"

    @property
    def state_dir(self) -> Path:
        return self.state.path.parent

    @property
    def hf_source_names(self) -> list[str]:
        """The Hugging Face Daily Papers sources: the ones with week and month lists (`trending`)."""
        return [s.name for s in self.sources if s.kind == "hf_daily"]

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


# Keys that may only come from the environment, as (section, key).
_SECRET_KEYS = {
    ("smtp", "password"): "DIGEST_SMTP__PASSWORD",
    ("summaries", "api_key"): "DIGEST_SUMMARIES__API_KEY",
    ("", "channel_urls"): "DIGEST_CHANNEL_URLS__<NAME>",
    ("", "secret"): "DIGEST_SECRET",
}


def config_path_from(explicit: str | os.PathLike[str] | None) -> Path | None:
    """`--config PATH`, else `DIGEST_CONFIG`, else `./digest.toml` if it exists, else None."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("DIGEST_CONFIG")
    if env:
        return Path(env)
    default = Path("digest.toml")
    return default if default.is_file() else None


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load and validate the configuration; every problem is reported at once in a ConfigError."""
    config_path = config_path_from(path)
    data: dict[str, Any] = {}
    text = ""
    label = "environment"
    if config_path is not None:
        label = str(config_path)
        if not config_path.is_file():
            raise ConfigError(f"{config_path}: no such config file; check --config or DIGEST_CONFIG")
        data, text = read_toml(config_path)
    secret_problems = _take_secrets_out(data, text, label)  # reported with every other problem
    token = _toml_data.set(data)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = secret_problems + describe_validation_error(
            exc, label, text, env_prefix="DIGEST_", origins=_variable_origins()
        )
        raise ConfigError(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems in {label}", problems
        ) from None
    except SettingsError as exc:
        # a DIGEST_ variable (or .env line, or secrets file) that is not valid JSON for a list or
        # table, or DIGEST_SECRETS_DIR that is not a folder
        raise ConfigError(f"environment: {_settings_error(exc)}") from None
    except UnicodeDecodeError as exc:
        where = next((f for f in _variable_files() if not _is_utf8(f)), Path(".env"))
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    finally:
        _toml_data.reset(token)
    if secret_problems:
        raise ConfigError(
            secret_problems[0]
            if len(secret_problems) == 1
            else f"{len(secret_problems)} problems in {label}",
            secret_problems,
        )
    if config_path is not None:
        settings = _resolve_paths(settings, config_path.resolve().parent)
    _check_files(settings, label, text)
    return settings


def _take_secrets_out(data: dict[str, Any], text: str, label: str) -> list[str]:
    """A problem, with its line, for each secret written in the file, which is removed from `data`
    (never read, never echoed) so that the file's other problems are reported with it."""
    problems = []
    for (section, key), env_name in _SECRET_KEYS.items():
        holder = data.get(section, {}) if section else data
        if isinstance(holder, dict) and key in holder:
            del holder[key]
            line = locate(text, (section, key) if section else (key,))
            problems.append(
                f"{label}{':' + str(line) if line else ''}: [{section or 'top level'}] {key}: secrets are not "
                f"read from the file; remove it and set {env_name} in the environment"
            )
    return problems


def _variable_files() -> list[Path]:
    """The files that set DIGEST_ variables: ./.env, then each file of $DIGEST_SECRETS_DIR."""
    files = [Path(".env")] if Path(".env").is_file() else []
    folder = os.environ.get("DIGEST_SECRETS_DIR")
    if folder and Path(folder).is_dir():
        files += sorted(p for p in Path(folder).iterdir() if p.is_file())
    return files


def _is_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return True


def _variable_origins() -> dict[str, str]:
    """DIGEST_ variable name -> where its value comes from, by the precedence of `Settings`:
    the environment, then ./.env, then $DIGEST_SECRETS_DIR. For error messages only."""
    origins: dict[str, str] = {}
    folder = os.environ.get("DIGEST_SECRETS_DIR")
    for path in reversed(_variable_files()):  # lowest precedence first, overwritten by higher
        if path.name == ".env" and path.parent == Path("."):
            for line in path.read_text(errors="replace").splitlines():
                name = line.removeprefix("export ").split("=", 1)[0].strip().upper()
                if name.startswith("DIGEST_") and "=" in line:
                    origins[name] = f".env: {name}"
        elif folder:
            origins[path.name.upper()] = f"{path} (DIGEST_SECRETS_DIR)"
    origins |= {k.upper(): f"environment {k.upper()}" for k in os.environ if k.upper().startswith("DIGEST_")}
    return origins


def _settings_error(exc: SettingsError) -> str:
    message = str(exc)
    m = re.match(r'error parsing value for field "(\w+)" from source "(\w+)"', message)
    if m:
        field, source = m.groups()
        where = {"EnvSettingsSource": "", "DotEnvSettingsSource": " in .env"}.get(
            source, " in DIGEST_SECRETS_DIR"
        )
        return (
            f"DIGEST_{field.upper()}{where}: not valid JSON; a list or table from the environment is "
            f'written as JSON, e.g. DIGEST_{field.upper()}=\'[{{"kind": "hf_daily", "url": "https://..."}}]\''
            if field == "sources"
            else f"DIGEST_{field.upper()}{where}: not valid JSON for a table; set its keys one by one, "
            f"e.g. DIGEST_{field.upper()}__KEY=value"
        )
    if "secrets_dir" in message or "directory" in message:
        detail = message.split(": ", 1)[-1] if "secrets_dir" in message else "no such folder"
        return f"DIGEST_SECRETS_DIR={os.environ.get('DIGEST_SECRETS_DIR', '')!r}: {detail}"
    return message


def _check_files(settings: Settings, label: str, text: str) -> None:
    """Paths that must exist now, not when a run is half-way: a template folder, a CA file."""
    problems = []
    for loc, path, what in (
        (("templates", "dir"), settings.templates.dir, "folder"),
        (("smtp", "ca_file"), settings.smtp.ca_file, "file"),
    ):
        if path is None or (path.is_dir() if what == "folder" else path.is_file()):
            continue
        line = locate(text, loc)
        problems.append(f"{label}{':' + str(line) if line else ''}: {'.'.join(loc)}: no such {what} {path}")
    if problems:
        raise ConfigError(problems[0], problems)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def fix(p: Path) -> Path:
        p = p.expanduser()  # "~/digest/state.sqlite3" means the home folder, as in a shell
        return p if p.is_absolute() else base / p

    return settings.model_copy(
        update={
            "state": settings.state.model_copy(update={"path": fix(settings.state.path)}),
            "subscribers": settings.subscribers.model_copy(update={"path": fix(settings.subscribers.path)}),
            "delivery": settings.delivery.model_copy(update={"outbox": fix(settings.delivery.outbox)}),
            "output": settings.output.model_copy(update={"dir": fix(settings.output.dir)}),
            "templates": settings.templates.model_copy(
                update={"dir": fix(settings.templates.dir) if settings.templates.dir else None}
            ),
            "smtp": settings.smtp.model_copy(
                update={"ca_file": fix(settings.smtp.ca_file) if settings.smtp.ca_file else None}
            ),
        }
    )


def signing_key(settings: Settings, *, notice: Any = None, keep: bool = True) -> bytes:
    """The key for unsubscribe tokens and private-feed paths.

    DIGEST_SECRET when set; otherwise a random key generated once and kept in the state directory
    (mode 0600), so a first run just works and links stay stable across runs. With `keep=False`
    (a dry run, which records nothing) a missing key is made for this once and not written.
    """
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode()
    if settings.state.shared:
        # Runners on several hosts sign the same readers' links: a key file on one host would
        # give each its own key, and one host's unsubscribe link would fail on another's.
        raise ConfigError(
            "[state] url: a state on PostgreSQL is shared by runners that must sign links alike: "
            "set DIGEST_SECRET (the same on every runner)"
        )
    key_file = settings.state_dir / "secret.key"
    if key_file.is_file():
        return key_file.read_text().strip().encode()
    if not keep:
        return secrets.token_urlsafe(32).encode()
    key = secrets.token_urlsafe(32)
    write_atomic(key_file, key + "\n", mode=0o600)
    if notice is not None:
        notice(f"no DIGEST_SECRET set: generated one and kept it in {key_file}")
    return key.encode()
