"""read_toml parses with rtoml where it can (digest.core.tomlfile) and must still give exactly what
tomllib gives: the same values of the same types in the same order, and the same error messages.
Each document here is read both ways, with rtoml and with tomllib alone (as where rtoml has no
wheel), and the two are compared by their repr, which shows types, timezones and key order."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.core import tomlfile
from digest.core.errors import ConfigError

pytestmark = pytest.mark.unit

# What subscribers.toml and digest.toml hold, and more: every type TOML has, no dotted key (so that
# rtoml reads it, see PROFILES_ARE_FAST).
VARIED = '''# a comment, with é
title = "TOML \\u00e9 \\U0001F600 \\"quoted\\" \\\\ \\t tab"
literal = 'C:\\path\\to'
multi = """
one \\
    two"""
multi_literal = \'\'\'
raw \\n kept\'\'\'
"ключ" = "значение 中文"
"dotted.in.quotes" = 1
int = +42
negative = -17
hex = 0xDEAD_beef
octal = 0o755
binary = 0b1101
grouped = 1_000
huge = 12345678901234567890
float = 6.626e-34
minus_zero = -0.0
grouped_float = 1_000.5
infinite = -inf
not_a_number = nan
yes = true
utc = 1979-05-27T07:32:00Z
lower_utc = 1979-05-27t07:32:00z
zero_offset = 1979-05-27T07:32:00+00:00
offset = 1979-05-27T00:32:00.999999-07:00
space = 1979-05-27 07:32:00+05:30
nanos = 1979-05-27T00:32:00.123456789Z
local_datetime = 1979-05-27T07:32:00
local_date = 1979-05-27
local_time = 00:32:00.5
array = [1, 2, 3,]
nested = [[1, 2], ["a", 'b'], [1.5, 2], []]
nested_tables = [[1, 2], [1.5, {x = 1}], []]
multiline_array = [
    "cs.CV",  # a comment
    "e.g. this",
]
inline = {a = 1, b = 2.5, c = {d = [1, 2]}, e = {}}
dates = [1979-05-27, 1979-05-27T07:32:00Z]

[table]
x = 1

[defaults]
cadence = "weekly"
weekday = "monday"

[[subscribers]]
email = "ada@example.org"
name = "Ada Lovelace"
keywords = ["diffusion", "graph neural networks", "LLMs"]
max_papers = 5

[[subscribers]]
email = "bob@example.org"
keywords = ["x"]
since = 2024-01-01T00:00:00+00:00
extra = [{z = 1}, {z = 2}]

[[subscribers]]
email = "cy@example.org"
like = ["https://arxiv.org/pdf/2401.12345v2.pdf"]
'''

# Dotted keys and headers: rtoml orders implicitly made tables otherwise, so tomllib reads these.
DOTTED = """a.b.c = 1
site."google.com" = true
[[parent.arr]]
[[other.arr]]
[parent]
x = 1
[servers.alpha]
ip = "10.0.0.1"
[[fruits]]
name = "apple"
[fruits.physical]
color = "red"
[[fruits.varieties]]
name = "red delicious"
"""

# What tomllib refuses and rtoml reads: TOML 1.1's additions, a second byte order mark, a dotted
# key into an array of tables. And plain mistakes, which both refuse.
INVALID = [
    '[state]\npath = "unterminated\n',
    "a = {x = 1,\n  y = 2}\n",
    "a = {x = 1, }\n",
    'a = {x = "}",\n  y = 2}\n',
    # braces a string or a comment balances on a line (found by the acceptance review)
    'x = { b = "}",\n  c = "{" }\n',
    'defaults = { cadence = "weekly",   # }: closes below\n  weekday = "friday" }  # {\n',
    "x = { b = '}',\n  c = '{' }\n",
    'a = "\\e"\n',
    'a = "\\x41"\n',
    "a = 1979-05-27T07:32Z\n",
    "a = 1979-05-27 07:32\n",
    "a = 07:32\n",
    "\ufeff\ufeffa = 1\n",  # read_toml drops one byte order mark, rtoml would drop the other
    "[[tab.arr]]\n[tab]\narr.v.l1 = 1\n",
    "a = 1\na = 2\n",
    "[t]\nx = 1\n[t]\ny = 2\n",
    "a = 1 b = 2\n",
    "x = [1, 2\n",
    'a = "x\x01y"\n',
    "a = 99999999999999999999999999.9.9\n",
    "a = 1979-02-30\n",
    "ключ = 1\n",
    "a = [1]\n[[a]]\nb = 1\n",
]


def read_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """read_toml's answer (its result's repr, or its error) as it is, and with tomllib alone."""
    answers = []
    for fast in (tomlfile._fast_loads, None):
        with monkeypatch.context() as m:
            m.setattr(tomlfile, "_fast_loads", fast)
            try:
                data, _ = tomlfile.read_toml(path)
                answers.append(repr(data))
            except ConfigError as exc:
                answers.append(f"ConfigError: {exc}")
    return answers[0], answers[1]


def write(tmp_path: Path, text: str, *, newline: str = "\n") -> Path:
    path = tmp_path / "file.toml"
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


@pytest.mark.skipif(tomlfile._fast_loads is None, reason="rtoml is not installed")
def test_rtoml_reads_the_varied_document() -> None:
    """So that comparing the two readings of VARIED compares rtoml with tomllib."""
    assert not tomlfile._needs_tomllib(VARIED)
    assert tomlfile._needs_tomllib(DOTTED)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("text", [VARIED, DOTTED], ids=["varied", "dotted"])
def test_rtoml_reads_what_tomllib_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, newline: str
) -> None:
    fast, slow = read_both(write(tmp_path, text, newline=newline), monkeypatch)
    assert fast == slow
    assert not fast.startswith("ConfigError")


def test_offset_datetimes_have_the_stdlibs_timezones(tmp_path: Path) -> None:
    data, _ = tomlfile.read_toml(write(tmp_path, VARIED))
    assert type(data["offset"].tzinfo) is timezone
    assert data["offset"].utcoffset() == timedelta(hours=-7)
    assert data["utc"].tzinfo is UTC
    assert data["local_datetime"].tzinfo is None


def test_a_byte_order_mark_is_read_past(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "file.toml"
    path.write_bytes(b"\xef\xbb\xbf" + VARIED.encode("utf-8"))
    fast, slow = read_both(path, monkeypatch)
    assert fast == slow
    assert not fast.startswith("ConfigError")


@pytest.mark.parametrize("text", INVALID)
def test_what_tomllib_refuses_is_refused_in_its_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    fast, slow = read_both(write(tmp_path, text), monkeypatch)
    assert fast == slow
    assert fast.startswith("ConfigError: ")


def test_the_error_messages_stay_as_they_were(tmp_path: Path) -> None:
    path = write(tmp_path, '[state]\npath = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        tomlfile.read_toml(path)
    assert str(info.value) == f"{path}:2: invalid TOML: Illegal character '\\n' (column 21)"

    path = tmp_path / "latin1.toml"
    path.write_bytes(b"a = 1\n\xff\n")
    with pytest.raises(ConfigError) as info:
        tomlfile.read_toml(path)
    assert str(info.value) == f"{path}: not UTF-8 text (byte 6); save it as UTF-8"

    with pytest.raises(ConfigError) as info:
        tomlfile.read_toml(tmp_path)  # a directory
    assert str(info.value) == f"{tmp_path}: cannot read: Is a directory"


# Pieces to insert: TOML's punctuation, the starts of what TOML 1.1 added, and what rtoml and
# tomllib were seen to differ on.
PIECES = [*"{}[]=,.\"'\\\n\r\t #:-+_0123456789eExTZzab é\x00\x7f", '"""', "'''", "\\e", "\\x41"]
PIECES += ["07:32", ", }", "{\n", "inf", "nan", "1979-05-27", "\ufeff", "a.b = 1\n", "[[subscribers.x]]\n"]


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.none() | st.sampled_from(PIECES)),
        min_size=1,
        max_size=3,
    )
)
def test_a_mangled_document_reads_the_same_both_ways(
    tmp_path_factory: pytest.TempPathFactory, edits: list[tuple[float, str | None]]
) -> None:
    """Insert a piece, or delete a character, here and there: rtoml and tomllib still agree."""
    text = VARIED
    for where, piece in edits:
        at = int(where * len(text))
        text = text[:at] + piece + text[at:] if piece is not None else text[:at] + text[at + 1 :]
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, slow = read_both(write(tmp_path_factory.mktemp("mangled"), text), monkeypatch)
    assert fast == slow
