"""Loading 10,000 profiles quickly says exactly what it said before (digest.profiles.schema).

`check_email` checks a plain address's domain once per domain rather than once per reader; its
answer must stay email-validator's, word for word, whichever address of a domain comes first."""

from __future__ import annotations

from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.core.errors import ConfigError
from digest.profiles import load_subscribers
from digest.profiles.schema import _checked_domain, check_email

pytestmark = pytest.mark.unit

DOMAINS = [
    "example.org",
    "EXAMPLE.org",
    "example.org.",
    "mail.example.co.uk",
    "münchen.de",
    "xn--mnchen-3ya.de",
    "faß.de",
    "b.c",
    "com",
    "-bad.org",
    "a..b.org",
    ".example.org",
    "exa mple.org",
    "example.invalid",
    "test",
    "[127.0.0.1]",
    "\u0338example.org",
    "x" * 63 + ".org",
    "x" * 64 + ".org",
    ".".join(["abcdefghij" * 6] * 4),  # 243 characters
    "",
]
LOCALS = [
    "ada",
    "ada.lovelace",
    "ada+digest",
    "a_b-c",
    "0",
    "Ada",
    "postmaster",
    "Postmaster",
    "ada..lovelace",
    ".ada",
    "ada.",
    "a" * 64,
    "a" * 65,
    "a" * 200,
    '"ada lovelace"',
    "adá",
    "ada@home",
    "Ada <ada",
    "",
]


def expected(address: str) -> str:
    """What check_email said before it checked a domain once: email-validator's own answer."""
    try:
        return validate_email(
            address, check_deliverability=False, test_environment=True, allow_smtputf8=False
        ).normalized
    except EmailNotValidError as exc:
        return f"ValueError: {exc}"


def answer(address: str) -> str:
    try:
        return check_email(address)
    except ValueError as exc:
        return f"ValueError: {exc}"


@pytest.mark.parametrize("order", [1, -1], ids=["forward", "backward"])
def test_every_address_gets_email_validators_answer(order: int) -> None:
    _checked_domain.cache_clear()
    addresses = [f"{local}@{domain}" for domain in DOMAINS for local in LOCALS][::order]
    for address in addresses + addresses:  # the second time, every domain has been seen
        assert answer(address) == expected(address), address


def test_an_address_too_long_only_with_its_domain_is_refused() -> None:
    domain = ".".join(["abcdefghij" * 6] * 4)
    assert check_email(f"ab@{domain}") == f"ab@{domain}"  # 246 characters
    with pytest.raises(ValueError, match="too long"):
        check_email(f"{'a' * 20}@{domain}")


@settings(max_examples=300, deadline=None)
@given(
    local=st.text(alphabet="abcXYZ019._+-'!#~\"é@ ", min_size=0, max_size=70),
    domain=st.sampled_from(DOMAINS),
)
def test_any_local_part_gets_email_validators_answer(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert answer(address) == expected(address)


def test_a_problem_in_each_of_thousands_of_profiles_names_each_ones_line(tmp_path: Path) -> None:
    """Every problem's line, in a big file with one in each profile (`tomlfile.locate` indexes
    the file's lines once: it searched the whole file for each problem, minutes at 100,000)."""
    count = 3_000
    text = "".join(
        f'\n[[subscribers]]\n# reader {n}\nemail = "r{n}@example.org"\nkeywords = ["graph"]\nsources = ["nowhere"]\n'
        for n in range(count)
    )
    path = tmp_path / "subscribers.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_subscribers(path, source_names=["arxiv"])
    problems = raised.value.problems
    assert len(problems) == count
    lines = text.splitlines()
    for n, problem in zip(range(count), problems, strict=True):
        where = int(problem.split(":")[1])
        assert (
            lines[where - 1] == 'sources = ["nowhere"]' and lines[where - 3] == f'email = "r{n}@example.org"'
        )
        assert f"subscriber r{n}@example.org: sources: unknown source 'nowhere'" in problem


def test_a_folder_given_as_the_subscribers_file_is_called_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_subscribers(tmp_path)
    assert str(raised.value) == (
        f"{tmp_path}: a folder, not a subscribers file; point --subscribers (or [subscribers] path "
        "in digest.toml) at the file itself"
    )
