"""[[channels]] in digest.toml: team chats that get a digest too (`digest.deliver.chat`)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from digest.config.sections import _Section


class ChannelConfig(_Section):
    """One [[channels]] table: a team chat that gets a digest too (`digest.deliver.chat`), for
    the papers its `profile` (the same keys as a reader's in subscribers.toml) matches."""

    name: str
    profile: dict[str, Any] = Field(default_factory=dict)
    # The destination is a secret (a webhook URL carries its token): never read from the file.
    url: Any = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]{0,39}", value):
            raise ValueError(
                f"{value!r}: a channel's name is lower-case letters, digits and _ (it names the "
                "variable its URL comes from, DIGEST_CHANNEL_URLS__NAME)"
            )
        return value

    @field_validator("url")
    @classmethod
    def _no_url_in_the_file(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "secrets are not read from the file (a webhook URL carries its token); remove it and "
                "set DIGEST_CHANNEL_URLS__<NAME> in the environment or the secrets dir"
            )
        return None
