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



def test_the_file_is_toml_1_1_and_its_errors_still_name_the_line(tmp_path: Path) -> None:
    """tomli reads TOML 1.1: an inline table over several lines, ending in a comma."""
    path = write(
        tmp_path,
        'subscribers = [\n  {\n    email = "a@example.org",\n    keywords = ["LLM"],\n  },\n]\n',
    )
    [sub] = load_subscribers(path, source_names=SOURCES)
    assert (sub.email, sub.keywords) == ("a@example.org", ("LLM",))
    assert problems(tmp_path, '[[subscribers]]\nemail = "a@example.org"\nkeywords = ["x" "y"]\n') == [
        "subscribers.toml:3: invalid TOML: Unclosed array (column 17)"
    ]
    # a profile written inline: the reader and the key, no line (docs/matching.md says so)
    inline = 'subscribers = [\n  {\n    email = "eve@example.org",\n    keywords = ["ok"],\n    max_papers = 0,\n  },\n]\n'
    assert problems(tmp_path, inline) == [
        "subscribers.toml: subscriber eve@example.org: max_papers: must be at least 1, got 0"
    ]


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


# -- the strict schema: each kind of mistake, worded as the loader has always worded it ---------


def test_known_keys_are_the_subscriber_fields() -> None:
    from dataclasses import fields

    from digest.profiles import KNOWN_KEYS

    assert set(KNOWN_KEYS) == {f.name for f in fields(Subscriber)}


@pytest.mark.parametrize(
    "text",
    [
        'subscribers = "ada@example.org"\n',
        "subscribers = [1, 2]\n",
        "[subscribers]\nemail = 'a@example.org'\n",
    ],
)
def test_not_a_list_of_tables_is_one_problem(tmp_path: Path, text: str) -> None:
    assert problems(tmp_path, text) == [
        "subscribers.toml:1: subscribers: write each profile as a [[subscribers]] table"
    ]


def test_values_are_stripped_and_the_address_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[subscribers]]\nemail = " Ada@Example.org "\nname = " Ada "\nkeywords = [" LLM "]\nempty = " send "\n'
        '\n[[subscribers]]\nemail = "x@LOCALHOST"\nall = true\n',
    )
    ada, local = load_subscribers(path)
    assert ada == Subscriber(email="Ada@example.org", name="Ada", keywords=("LLM",), empty="send")
    assert local == Subscriber(email="x@localhost", all=True)


def test_each_type_mistake_names_what_was_given(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "[[subscribers]]\nemail = 'a@example.org'\nname = 5\ncategories = { cs = 1 }\nall = 1\n"
        "max_papers = 1.5\nquery = '   '\nmin_upvotes = -1\n",
    )
    assert found == [
        "subscribers.toml:3: subscriber a@example.org: name: must be a string, got a number",
        "subscribers.toml:4: subscriber a@example.org: categories: must be a list of strings, got a table",
        "subscribers.toml:5: subscriber a@example.org: all: must be true or false, got a number",
        "subscribers.toml:6: subscriber a@example.org: max_papers: must be a whole number, got a number",
        "subscribers.toml:7: subscriber a@example.org: query: is empty; remove it or write a query",
        "subscribers.toml:8: subscriber a@example.org: min_upvotes: must be 0 or more, got -1",
    ]


def test_a_list_with_a_non_string_is_one_problem_whatever_its_strings(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[subscribers]]\nemail = "a@example.org"\nkeywords = ["+++", 1, "\\tx", 2]\n')
    assert found == [
        "subscribers.toml:3: subscriber a@example.org: keywords: must be a list of strings, got a list"
    ]


def test_an_item_with_a_control_character_is_also_checked_for_what_it_says(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[[subscribers]]\nemail = "a@example.org"\nall = true\nauthors = ["\\t???", "()", "A\\u0085B"]\n',
    )
    assert found == [
        "subscribers.toml:4: subscriber a@example.org: authors: '\\t???' contains a control character (U+0009)",
        "subscribers.toml:4: subscriber a@example.org: authors: 'A\\x85B' contains a control character (U+0085)",
        "subscribers.toml:4: subscriber a@example.org: authors: '???' is not a name",
        "subscribers.toml:4: subscriber a@example.org: authors: '()' is not a name",
    ]


def test_a_bad_address_in_an_empty_profile_is_two_problems(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[subscribers]]\nemail = "ada"\n')
    assert found == [
        "subscribers.toml:1: subscriber ada: empty profile: give keywords, authors, categories or a query, "
        "or all = true for every paper",
        "subscribers.toml:2: subscriber ada: email: 'ada' is not a valid address: "
        "An email address must have an @-sign.",
    ]


def test_a_mistyped_all_is_not_also_an_empty_profile(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[subscribers]]\nemail = "a@example.org"\nall = "yes"\n')
    assert found == ["subscribers.toml:3: subscriber a@example.org: all: must be true or false, got a string"]


def test_a_duplicate_is_found_in_a_profile_with_other_problems_too(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[[subscribers]]\nemail = "Ada@Example.org"\nall = true\n\n'
        '[[subscribers]]\nemail = " ada@example.org "\nall = true\nmax_papers = 0\n',
    )
    assert found == [
        "subscribers.toml:6: subscriber ada@example.org: email: duplicate address; subscriber #1 has it too "
        "(one profile per address)",
        "subscribers.toml:8: subscriber ada@example.org: max_papers: must be at least 1, got 0",
    ]


def test_an_unknown_key_like_no_known_one_lists_them_all(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[subscribers]]\nemail = "a@example.org"\nall = true\nxyzzy = 1\n')
    assert found == [
        "subscribers.toml:4: subscriber a@example.org: xyzzy: unknown key; known keys: email, name, keywords, "
        "exclude, authors, categories, query, all, max_papers, min_upvotes, sources, feed, empty"
    ]


def test_no_configured_sources_says_none(tmp_path: Path) -> None:
    path = write(tmp_path, '[[subscribers]]\nemail = "a@example.org"\nall = true\nsources = ["hf"]\n')
    with pytest.raises(ConfigError) as info:
        load_subscribers(path, source_names=[])
    assert str(info.value).endswith("sources: unknown source 'hf'; configured sources: none")
