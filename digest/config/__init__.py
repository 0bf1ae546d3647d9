"""Typed configuration: digest.toml + environment (+ .env, secrets dir), validated at load time.

`sections` holds the models of digest.toml's tables, `settings` how they are read and merged with
the environment, `cron` the `[schedule] cron` trigger. This package imports only `digest.core`.
"""

from digest.config.channels import ChannelConfig
from digest.config.sections import (
    HF_DAILY_URL,
    SUBJECT_PLACEHOLDERS,
    DeliveryConfig,
    FetchConfig,
    OutputConfig,
    ScheduleConfig,
    SmtpConfig,
    SourceConfig,
    SourceKind,
    StateConfig,
    SubscribersConfig,
    SummariesConfig,
    TemplatesConfig,
    check_language,
    check_subject,
    is_loopback,
)
from digest.config.settings import Settings, config_path_from, load_settings, signing_key

__all__ = [
    "HF_DAILY_URL",
    "SUBJECT_PLACEHOLDERS",
    "ChannelConfig",
    "DeliveryConfig",
    "FetchConfig",
    "OutputConfig",
    "ScheduleConfig",
    "Settings",
    "SmtpConfig",
    "SourceConfig",
    "SourceKind",
    "StateConfig",
    "SubscribersConfig",
    "SummariesConfig",
    "TemplatesConfig",
    "check_language",
    "check_subject",
    "config_path_from",
    "is_loopback",
    "load_settings",
    "signing_key",
]
