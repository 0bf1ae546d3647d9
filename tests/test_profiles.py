"""subscribers.toml: loading, and every class of mistake reported with file, line, subscriber, field."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from digest.config import Settings, SubscribersConfig
from digest.core.errors import ConfigError
from digest.core.models import Subscriber
from digest.profiles import load_subscribers, subscribers_path_from

EXAMPLE = Path(__file__).parent.parent / "subscribers.example.toml"
SOURCES = {"hf", "arxiv"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subscribers.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_subscribers(path, source_names=SOURCES)
    return [p.replace(str(path), "subscribers.toml") for p in info.value.problems]


def test_example_file_loads() -> None:
    subs = load_subscribers(EXAMPLE, source_names=SOURCES)
    assert [s.email for s in subs] == [
        "ada@example.org",
        "grace@example.org",
        "edsger@example.org",
        "team@example.org",
    ]
    ada = subs[0]
    assert (
        ada.keywords[0] == "LLM agents" and ada.exclude == ("medical",) and ada.authors == ("R. Kocielnik",)
    )
    assert ada.max_papers == 10 and ada.feed and ada.empty == "send" and ada.sources == ("hf", "arxiv")
    assert subs[1].categories == ("cs.CV", "cs.RO") and "SLAM" in subs[1].keywords
    assert subs[2].query and subs[2].min_upvotes == 2
    assert subs[3].all and subs[3].min_upvotes == 10


def test_a_full_profile(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[subscribers]]
email = "Ada@Example.org"
name = "Ada Lovelace"
keywords = ["vision-language", "prompt tuning", "LLM"]
exclude = ["medical", "surgery"]
authors = ["Yann LeCun"]
categories = ["cs.CV", "cs.CL"]
query = '("prompt tuning" OR adapter) AND title:multimodal NOT cat:q-bio'
max_papers = 20
min_upvotes = 0
sources = ["hf", "arxiv"]
feed = true
empty = "skip"

[[subscribers]]
email = "x@localhost"
all = true
""",
    )
    ada, local = load_subscribers(path, source_names=SOURCES)
    assert ada == Subscriber(
        email="Ada@example.org",
        name="Ada Lovelace",
        keywords=("vision-language", "prompt tuning", "LLM"),
        exclude=("medical", "surgery"),
        authors=("Yann LeCun",),
        categories=("cs.CV", "cs.CL"),
        query='("prompt tuning" OR adapter) AND title:multimodal NOT cat:q-bio',
        max_papers=20,
        sources=("hf", "arxiv"),
        feed=True,
    )
    assert local.email == "x@localhost" and local.all


def test_no_subscribers_is_an_empty_list(tmp_path: Path) -> None:
    assert load_subscribers(write(tmp_path, "# nobody yet\n")) == []


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_subscribers(tmp_path / "subscribers.toml")
    assert str(tmp_path / "subscribers.toml") in str(info.value)
    assert "copy subscribers.example.toml" in str(info.value)


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[subscribers]]\nemail = "a@example.org\n')
    with pytest.raises(ConfigError) as info:
        load_subscribers(path)
    assert f"{path}:2:" in str(info.value)


BAD = """\
[[subscribers]]
email = "ada@example.org"
keyowrds = ["LLM"]
authors = ["Yann LeCun"]
max_papers = 0
empty = "never"

[[subscribers]]
email = "ADA@example.org"
keywords = "LLM"
query = '("prompt tuning" OR adapter)) AND x'

[[subscribers]]
email = "not an email"
name = "Bob\\nSmith"
sources = ["hf", "arxv"]
categories = ["cs..CV"]
exclude = ["ok", "tab\\there"]

[[subscribers]]
email = "quiet@example.org"

[[subscribers]]
name = "no email"
keywords = ["+++"]
min_upvotes = true
feed = "yes"
all = "yes"

[subscriber]
email = "typo@example.org"
"""


def test_every_problem_at_once_with_file_line_subscriber_and_field(tmp_path: Path) -> None:
    found = problems(tmp_path, BAD)
    expected = [
        'subscribers.toml:3: subscriber ada@example.org: keyowrds: unknown key; did you mean "keywords"?',
        "subscribers.toml:5: subscriber ada@example.org: max_papers: must be at least 1, got 0",
        'subscribers.toml:6: subscriber ada@example.org: empty: must be "skip" or "send", got \'never\'',
        "subscribers.toml:9: subscriber ADA@example.org: email: duplicate address; subscriber #1 has it too",
        'subscribers.toml:10: subscriber ADA@example.org: keywords: must be a list of strings; write keywords = ["LLM"]',
        "subscribers.toml:11: subscriber ADA@example.org: query: unexpected ')' at column 29",
        "subscribers.toml:14: subscriber not an email: email: 'not an email' is not a valid address",
        "subscribers.toml:15: subscriber not an email: name: contains a line break; write it on one line",
        "subscribers.toml:16: subscriber not an email: sources: unknown source 'arxv'; configured sources: arxiv, hf",
        "subscribers.toml:17: subscriber not an email: categories: 'cs..CV' is not an arXiv category",
        "subscribers.toml:18: subscriber not an email: exclude: 'tab\\there' contains a control character (U+0009)",
        "subscribers.toml:20: subscriber quiet@example.org: empty profile: give keywords, authors, categories",
        "subscribers.toml:23: subscriber #5: email: required key is missing",
        "subscribers.toml:25: subscriber #5: keywords: '+++' has no letters or digits to search for",
        "subscribers.toml:26: subscriber #5: min_upvotes: must be a whole number, got a boolean",
        "subscribers.toml:27: subscriber #5: feed: must be true or false, got a string",
        "subscribers.toml:28: subscriber #5: all: must be true or false, got a string",
        'subscribers.toml:30: subscriber: unknown key; did you mean "subscribers"?',
    ]
    assert len(found) == len(expected), "\n".join(found)
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start), (line, start)


def test_one_problem_is_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, '[[subscribers]]\nemail = "a@example.org"\nkeywords = ["x"]\nmax_papers = -1\n')
    with pytest.raises(ConfigError) as info:
        load_subscribers(path)
    assert str(info.value) == f"{path}:4: subscriber a@example.org: max_papers: must be at least 1, got -1"


def test_sources_are_only_checked_when_known(tmp_path: Path) -> None:
    path = write(tmp_path, '[[subscribers]]\nemail = "a@example.org"\nall = true\nsources = ["anything"]\n')
    assert load_subscribers(path)[0].sources == ("anything",)
    with pytest.raises(ConfigError, match="unknown source 'anything'"):
        load_subscribers(path, source_names=SOURCES)


def test_subscribers_path_from(tmp_path: Path) -> None:
    settings = Settings(subscribers=SubscribersConfig(path=tmp_path / "s.toml"))
    assert subscribers_path_from("x.toml", settings) == Path("x.toml")
    assert subscribers_path_from(None, settings) == tmp_path / "s.toml"
    assert subscribers_path_from(None, Settings()) == Path("subscribers.toml")


def test_fingerprint_is_stable_and_changes_with_any_edit() -> None:
    sub = Subscriber(email="a@example.org", keywords=("LLM",))
    assert sub.fingerprint == (
        Subscriber(email="a@example.org", keywords=("LLM",))
    ).fingerprint
    assert len(sub.fingerprint) == 32
    edits = [replace(sub, keywords=("LLM", "RAG")), replace(sub, max_papers=5), replace(sub, name="A")]
    assert len({s.fingerprint for s in [sub, *edits]}) == 4


def test_a_non_ascii_local_part_is_refused_at_load_a_non_ascii_domain_is_not(tmp_path: Path) -> None:
    # the message builder cannot send to "jörg@…" (no SMTPUTF8 local parts), so `check` says so
    path = write(tmp_path, '[[subscribers]]\nemail = "jörg@example.org"\nall = true\n')
    with pytest.raises(
        ConfigError, match=r"subscribers.toml:2: subscriber jörg@example.org: email: .*before the @-sign"
    ):
        load_subscribers(path)
    path = write(tmp_path, '[[subscribers]]\nemail = "zoe@bücher.example"\nall = true\n')
    assert [s.email for s in load_subscribers(path)] == ["zoe@bücher.example"]
