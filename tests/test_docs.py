"""The reference documents every configuration key and every command (sqlite-utils style)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from digest.cli import app
from digest.config import Settings

ROOT = Path(__file__).parent.parent
REFERENCE = (ROOT / "docs" / "reference.md").read_text()
EXAMPLE = (ROOT / "digest.example.toml").read_text()


def config_keys() -> list[tuple[str, str]]:
    keys = []
    for section, field in Settings.model_fields.items():
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))[0] if section == "sources" else annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            for name, sub in inner.model_fields.items():
                keys.append((section, sub.alias or name))
        else:
            keys.append(("", section))
    return keys


@pytest.mark.parametrize(("section", "key"), config_keys())
def test_every_config_key_is_documented(section: str, key: str) -> None:
    header = "[[sources]]" if section == "sources" else f"[{section}]" if section else "Top level"
    start = REFERENCE.index(f"### `{header}`" if section else "### Top level")
    end = REFERENCE.find("\n### ", start + 1)
    assert f"| `{key}` |" in REFERENCE[start:end], f"{header} {key} missing from docs/reference.md"
    if key not in ("password", "secret"):
        assert re.search(rf"^#?\s*{re.escape(key)}\s*=", EXAMPLE, re.M), (
            f"{key} missing from digest.example.toml"
        )


@pytest.mark.parametrize("command", [c.name or c.callback.__name__ for c in app.registered_commands])  # type: ignore[union-attr]
def test_every_command_is_documented_with_an_example(command: str) -> None:
    assert f"`digest {command}" in REFERENCE
    callback = next(c.callback for c in app.registered_commands if (c.name or c.callback.__name__) == command)  # type: ignore[union-attr]
    assert "Example: digest " + command in (callback.__doc__ or "")
