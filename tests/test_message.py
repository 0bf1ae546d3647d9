"""build_message: the headers exactly, the part order, the unsubscribe links, and that no value from
outside (a reader's name, a paper title in the subject, the config) can ever add a header."""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.policy
import re
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from digest.config import Settings, load_settings
from digest.core.errors import ConfigError, SendError
from digest.core.models import RenderedEmail, Subscriber
from digest.core.tokens import verify_unsubscribe
from digest.deliver import dot_lines
from digest.deliver.message import OutgoingMessage, build_message, message_domain, sanitize_header

KEY = b"test-key"
NOW = dt.datetime(2024, 11, 28, 7, 0, tzinfo=dt.UTC)
DATE = NOW.date()
RENDERED = RenderedEmail(
    subject="3 new papers for you · 2024-11-28",
    html="<html><body><p>Hello <b>Ada</b></p></body></html>",
    text="Hello Ada\n\n1. A paper\n",
)
ADA = Subscriber(email="ada@example.org", name="Ada Lovelace")

EXPECTED_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
}


def make_settings(
    unsubscribe_url: str | None = "https://papers.example.org/unsubscribe", **smtp: object
) -> Settings:
    return Settings(
        smtp={"from": "Paper Digest <digest@papers.example.org>", **smtp},
        output={"base_url": "https://papers.example.org/digest/"},
        delivery={"list_id": "Paper Digest <digest.papers.example.org>", "unsubscribe_url": unsubscribe_url},
    )


def roundtrip(msg: OutgoingMessage) -> EmailMessage:
    """What a receiving server sees: the bytes on the wire, parsed again."""
    parsed = email.message_from_bytes(msg.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert str(parsed["Message-ID"]) == msg.message_id
    assert [a.addr_spec for a in parsed["From"].addresses] == [msg.sender]
    assert [a.addr_spec for a in parsed["To"].addresses] == [msg.recipient]
    # CRLF throughout, and the dots SMTP must double are where build_message found them
    assert msg.dots is not None and msg.dots == dot_lines(msg.data)
    return parsed


SETTINGS = make_settings()


def header_names(msg: EmailMessage) -> list[str]:
    return sorted(name.lower() for name, _ in msg.items())


def build(
    subscriber: Subscriber = ADA, rendered: RenderedEmail = RENDERED, *, settings: Settings = SETTINGS
) -> OutgoingMessage:
    return build_message(rendered, subscriber, settings, date=DATE, key=KEY, now=NOW)


def test_headers_exactly():
    msg = roundtrip(build())
    assert header_names(msg) == sorted(EXPECTED_HEADERS)  # each exactly once
    assert msg["From"] == "Paper Digest <digest@papers.example.org>"
    assert msg["To"].addresses[0].display_name == "Ada Lovelace"
    assert msg["To"].addresses[0].addr_spec == "ada@example.org"
    assert msg["Subject"] == "3 new papers for you · 2024-11-28"
    assert msg["Date"] == format_datetime(NOW)
    assert msg["List-Id"] == "Paper Digest <digest.papers.example.org>"
    assert msg["Message-ID"].endswith("@papers.example.org>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_text_part_first_html_last():
    msg = roundtrip(build())
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().replace("\r\n", "\n") == RENDERED.text  # CRLF on the wire
    assert parts[1].get_content().strip() == RENDERED.html
    assert msg.get_body(preferencelist=("html",)) is parts[1]


def test_unsubscribe_links_carry_a_valid_token():
    msg = roundtrip(build())
    value = str(msg["List-Unsubscribe"])
    assert "=?" not in value  # never RFC 2047 encoded: clients would not see the URL
    mailto, https = (item.strip().strip("<>") for item in value.split(","))
    assert mailto.startswith("mailto:digest@papers.example.org?subject=unsubscribe%20")
    assert https.startswith("https://papers.example.org/unsubscribe?token=")
    token = https.split("token=", 1)[1]
    assert mailto.endswith("%20" + token)
    assert verify_unsubscribe(KEY, token) == "ada@example.org"


def test_long_addresses_keep_the_links_whole_on_the_wire():
    long = Subscriber(email="a.very.long.local.part.for.testing.folding@department.university.example.edu")
    raw = build(long).data.decode()
    header = raw.split("List-Unsubscribe:", 1)[1].split("\r\nList-Unsubscribe-Post", 1)[0]
    lines = header.split("\r\n")
    assert len(lines) == 2 and lines[1].startswith(" <https://")  # folded between the items only
    assert all(len(line) < 998 for line in raw.split("\r\n"))


def test_an_unsubscribe_endpoint_must_be_https():
    with pytest.raises(ValueError, match="not an https URL"):
        make_settings("http://papers.example.org/unsubscribe")


def test_no_one_click_without_an_https_link():
    msg = roundtrip(build(settings=make_settings(None)))
    assert "List-Unsubscribe-Post" not in msg
    assert str(msg["List-Unsubscribe"]).startswith("<mailto:digest@papers.example.org?subject=unsubscribe%20")
    assert "http" not in str(msg["List-Unsubscribe"])


def test_message_ids_unique_and_on_the_sender_domain():
    ids = {build().message_id for _ in range(200)}
    assert len(ids) == 200
    assert message_domain(make_settings()) == "papers.example.org"


def test_message_domain_is_ascii_for_an_idn_sender():
    assert message_domain(make_settings(**{"from": "Digest <d@bücher.example>"})) == "xn--bcher-kva.example"


def test_unicode_name_and_subject_survive():
    zoe = Subscriber(email="zoe@example.org", name='Zoë "the" O\'Brien, PhD')
    rendered = RenderedEmail(subject="Ünïcödé — 5 papers on 量子", html="<p>x</p>", text="x")
    msg = roundtrip(build(zoe, rendered))
    assert msg["To"].addresses[0].display_name == 'Zoë "the" O\'Brien, PhD'
    assert msg["To"].addresses[0].addr_spec == "zoe@example.org"
    assert msg["Subject"] == "Ünïcödé — 5 papers on 量子"


HOSTILE = [
    "Eve\r\nBcc: victim@example.org",
    "Eve\nBcc: victim@example.org",
    "Eve\rBcc: victim@example.org",
    "Eve\r\n\r\n<html>injected body</html>",
    "Eve\x00\x0b\x0c\x1b\x7f\x85Bcc: victim@example.org",
    "Eve\u2028Bcc: victim@example.org\u2029X-Evil: 1",
    "\r\nSubject: free money",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_cannot_inject_headers(hostile):
    sub = Subscriber(email="eve@example.org", name=hostile)
    rendered = RenderedEmail(subject=f"Paper: {hostile}", html="<p>x</p>", text="x")
    s = Settings(
        smtp={"from": f"Digest {hostile.translate({ord(c): ' ' for c in '@<>'})} <digest@example.org>"},
        delivery={
            "list_id": f"List {hostile} <digest.example.org>",
            "unsubscribe_url": "https://papers.example.org/u",
        },
        output={"base_url": "https://papers.example.org/"},
    )
    msg = roundtrip(build_message(rendered, sub, s, date=DATE, key=KEY, now=NOW))
    assert header_names(msg) == sorted(EXPECTED_HEADERS)
    assert msg["To"].addresses[0].addr_spec == "eve@example.org"
    assert len(msg["To"].addresses) == 1
    assert msg["Subject"] == sanitize_header(f"Paper: {hostile}")
    assert msg["From"].addresses[0].addr_spec == "digest@example.org"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    for value in msg.values():
        assert "\n" not in str(value) and "\r" not in str(value)


@hypothesis_settings(max_examples=100, deadline=None)
@given(
    name=st.text(st.characters(exclude_categories=("Cs",)), max_size=60),
    subject=st.text(st.characters(exclude_categories=("Cs",)), max_size=120),
)
def test_any_name_or_subject_gives_exactly_the_expected_headers(name, subject):
    rendered = RenderedEmail(subject=subject, html="<p>x</p>", text="x")
    msg = roundtrip(build(Subscriber(email="ada@example.org", name=name), rendered))
    assert header_names(msg) == sorted(EXPECTED_HEADERS)
    assert [a.addr_spec for a in msg["To"].addresses] == ["ada@example.org"]
    # Every word arrives; the stdlib's RFC 2047 folding may drop a space next to a no-break space.
    assert msg["Subject"].split() == sanitize_header(subject).split()


def test_sanitize_header():
    assert sanitize_header(" a\r\n\tb\x00c\u2028d  e ") == "a b c d e"


def test_a_bad_from_is_a_config_error_with_the_fix(tmp_path):
    # refused when the configuration loads (so `digest check` finds it), not at the first message
    config = tmp_path / "digest.toml"
    config.write_text('[smtp]\nhost = "127.0.0.1"\nfrom = "not an address"\n')
    with pytest.raises(
        ConfigError, match=r'digest.toml:3: smtp.from: .*from = "Paper Digest <digest@example.org>"'
    ):
        load_settings(config)


def test_a_bad_recipient_is_a_permanent_send_error():
    with pytest.raises(SendError) as info:
        build(Subscriber(email="no-at-sign"))
    assert info.value.permanent
    assert info.value.recipient == "no-at-sign"


# -- the wire bytes ---------------------------------------------------------------------------------
def _to_display_name(msg: OutgoingMessage) -> str:
    """The To phrase decoded as RFC 2047 says (the stdlib's address parser puts a space between
    two adjacent encoded-words, which the RFC says to drop)."""
    head = msg.data.split(b"\r\n\r\n", 1)[0].decode()
    value = head.split("\r\nTo: ", 1)[1].split("\r\nSubject:", 1)[0].replace("\r\n", "")
    return str(email.header.make_header(email.header.decode_header(value.rsplit(" <", 1)[0])))


def wire_lines(msg: OutgoingMessage) -> list[bytes]:
    assert msg.data.endswith(b"\r\n")
    lines = msg.data[:-2].split(b"\r\n")
    assert not any(b"\r" in line or b"\n" in line for line in lines)  # CRLF only, never a bare CR or LF
    return lines


def _as_html_reads_it(html: str) -> str:
    """`html` with numeric character references decoded (what a browser shows for them)."""
    return re.sub(r"&#(\d{1,7});", lambda m: chr(min(int(m.group(1)), 0x10FFFF)), html)


def _same_html(sent: str, original: str) -> bool:
    """The HTML part reads as the original: character references decoded, and a line break only
    where the original had a space (whitespace to HTML)."""
    sent, original = _as_html_reads_it(sent), _as_html_reads_it(original)
    return len(sent) == len(original) and all(
        a == b or (a, b) == ("\n", " ") for a, b in zip(sent, original, strict=True)
    )


def test_a_full_size_digest_round_trips_exactly():
    text = "".join(
        f"{i}. A paper title · with a long abstract line {'x' * (i % 120)}\n.dot\n-- \n" for i in range(300)
    )
    html = (
        "<html><body>"
        + "".join(f'<p class="x">{i} — ü {"y" * (i % 200)}</p>\n' for i in range(500))
        + ".starts with a dot\n"
        + " ".join(
            f'<td style="padding:0;color:#{i:06x}">&amp;{i} é</td>' for i in range(200)
        )  # one long line
        + "</body></html>\n"
    )
    msg = build(rendered=RenderedEmail(subject="20 new papers · 2024-11-28", html=html, text=text))
    assert len(msg.data) > 60_000
    parsed = roundtrip(msg)
    plain, rich = parsed.iter_parts()
    assert plain.get_content().replace("\r\n", "\n") == text
    assert (plain["Content-Transfer-Encoding"], rich["Content-Transfer-Encoding"]) == (
        "quoted-printable",
        "7bit",
    )
    sent_html = rich.get_content().replace("\r\n", "\n")
    assert sent_html.isascii() and "&#8212; &#252;" in sent_html and "&amp;3 &#233;" in sent_html
    assert _same_html(sent_html, html)
    lines = wire_lines(msg)
    assert max(len(line) for line in lines) <= 998
    head = lines[: lines.index(b"")]
    assert max(len(line) for line in head if not line.startswith((b"List-Unsubscribe:", b" <https:"))) <= 78
    text_part = msg.data.split(b"quoted-printable\r\n\r\n", 1)[1].split(b"\r\n--=_", 1)[0]
    assert not any(line.startswith(b".") for line in text_part.split(b"\r\n"))  # no dot-stuffing there
    boundary = parsed.get_boundary()
    assert boundary is not None and msg.data.count(boundary.encode()) == 4  # header, two parts, the end


def test_the_html_is_seven_bit_with_a_fraction_of_the_quoted_printable_lines():
    html = "".join(
        f'<div style="font-size:14px;line-height:20px;color:#1a1a2e">Paper {i} by Jürgen Müller</div>' * 12
        for i in range(60)
    )
    msg = build(rendered=RenderedEmail(subject="s", html=html, text="t"))
    rich = list(roundtrip(msg).iter_parts())[1]
    assert rich["Content-Transfer-Encoding"] == "7bit"
    assert _same_html(rich.get_content().replace("\r\n", "\n"), html + "\n")
    qp_lines = len(html.encode().replace(b"=", b"=3D")) // 76
    assert msg.data.count(b"\r\n") < qp_lines / 4


@pytest.mark.parametrize(
    "html, why",
    [
        (
            "<style>.a { font-family: 'Jürgen'; }</style><p>x</p>",
            "non-ASCII CSS: a reference is not decoded there",
        ),
        ("<p>" + "x" * 1200 + "</p>", "1,200 octets without a space"),
    ],
)
def test_html_that_cannot_be_seven_bit_stays_quoted_printable(html, why):
    msg = build(rendered=RenderedEmail(subject="s", html=html, text="t"))
    rich = list(roundtrip(msg).iter_parts())[1]
    assert rich["Content-Transfer-Encoding"] == "quoted-printable", why
    assert rich.get_content().replace("\r\n", "\n") == html + "\n"
    assert max(len(line) for line in wire_lines(msg)) <= 998


@hypothesis_settings(max_examples=300, deadline=None)
@given(html=st.text(st.characters(exclude_categories=("Cs",)), max_size=3000))
def test_any_html_arrives_as_the_same_html(html):
    msg = build(rendered=RenderedEmail(subject="s", html=html, text="t"))
    lines = wire_lines(msg)
    assert max(len(line) for line in lines) <= 998
    rich = list(roundtrip(msg).iter_parts())[1]
    got = rich.get_content().replace("\r\n", "\n")
    want = html.replace("\r\n", "\n").replace("\r", "\n")
    want = want if want.endswith("\n") else want + "\n"
    if rich["Content-Transfer-Encoding"] == "7bit":
        assert got.isascii() and _same_html(got, want)
    else:
        assert got == want


@pytest.mark.parametrize(
    "html", [".first\n.mj-column { width:100% }\n<p>x</p>", "<p>\n..\n.</p>", "." * 1200 + " ."]
)
def test_the_html_lines_that_start_with_a_dot_are_found_where_they_are(html):
    """The lines DATA dot-stuffs are found by build_message (in the render worker), in the HTML
    part alone: the text part is quoted-printable ("=2E"), the headers start with names."""
    msg = build(rendered=RenderedEmail(subject=". s", html=html, text=".t\n..u"))
    rich = list(roundtrip(msg).iter_parts())[1]  # checks `dots` against the whole message
    assert msg.dots is not None and all(msg.data[i : i + 1] == b"." for i in msg.dots)
    assert len(msg.dots) == (
        html.count("\n.") + html.startswith(".") if rich["Content-Transfer-Encoding"] == "7bit" else 0
    )


def test_bare_carriage_returns_and_no_final_newline_are_normalised():
    rendered = RenderedEmail(subject="s", html="<p>a</p>\r<p>b</p>", text="one\rtwo\r\nthree")
    plain, rich = roundtrip(build(rendered=rendered)).iter_parts()
    assert plain.get_content() == "one\r\ntwo\r\nthree\r\n"
    assert rich.get_content() == "<p>a</p>\r\n<p>b</p>\r\n"


def test_a_non_ascii_domain_goes_out_as_idna_which_every_server_takes():
    # (a non-ASCII local part is refused, as before: test_a_bad_recipient_is_a_permanent_send_error)
    msg = build(Subscriber(email="zoe@bücher.example", name="Zoë"))
    assert not msg.smtputf8 and msg.recipient == "zoe@xn--bcher-kva.example"
    parsed = roundtrip(msg)
    assert parsed["To"].addresses[0].addr_spec == "zoe@xn--bcher-kva.example"
    assert parsed["To"].addresses[0].display_name == "Zoë"
    assert msg.data.isascii()


def test_idna_is_2008_a_sharp_s_stays_its_own_domain():
    # the stdlib's "idna" codec (IDNA 2003) writes faß.de as fass.de: somebody else's domain
    assert build(Subscriber(email="user@faß.de")).recipient == "user@xn--fa-hia.de"


@pytest.mark.parametrize(
    ("from_", "problem"),
    [
        ("d@example.org, e@example.org", "more than one address"),
        ("Lab, Group <digest@example.org>", "more than one address"),  # the comma needs quotes
        ("jörg@example.org", "not an email address"),
        ("nonsense", "not an email address"),
    ],
)
def test_a_from_that_cannot_be_sent_is_refused(from_, problem):
    with pytest.raises(ValueError, match=problem):
        make_settings(**{"from": from_})


def test_a_from_with_a_non_ascii_domain_is_sent_as_idna():
    msg = roundtrip(build(settings=make_settings(**{"from": '"Digest, Lab" <d@bücher.example>'})))
    assert msg["From"].addresses[0].addr_spec == "d@xn--bcher-kva.example"
    assert msg["From"].addresses[0].display_name == "Digest, Lab"


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    name=st.text(st.characters(exclude_categories=("Cs",)), max_size=120),
    subject=st.text(st.characters(exclude_categories=("Cs",)), max_size=200),
)
def test_names_and_subjects_arrive_exactly_in_lines_of_78(name, subject):
    msg = build(
        Subscriber(email="ada@example.org", name=name), RenderedEmail(subject=subject, html="x", text="x")
    )
    parsed = roundtrip(msg)
    assert parsed["Subject"] == sanitize_header(subject)
    name = sanitize_header(name)
    if name.isascii():  # quoted where it must be
        assert parsed["To"].addresses[0].display_name == name
    else:
        assert _to_display_name(msg) == name
    lines = wire_lines(msg)
    assert all(len(line) <= 78 for line in lines if not line.startswith((b"List-Unsubscribe:", b" <https:")))
    assert not any(line.startswith(b".") for line in lines)


def test_without_an_unsubscribe_endpoint_only_the_mailto_link_and_no_one_click():
    # a static site (the archive's [output] base_url) cannot take the one-click POST
    settings = Settings(
        smtp={"from": "Paper Digest <digest@papers.example.org>"},
        output={"base_url": "https://papers.example.org/digest/"},
    )
    msg = roundtrip(build(settings=settings))
    assert str(msg["List-Unsubscribe"]).startswith("<mailto:digest@papers.example.org?subject=unsubscribe%20")
    assert "https" not in str(msg["List-Unsubscribe"])
    assert msg["List-Unsubscribe-Post"] is None


def test_bidi_overrides_do_not_reach_the_subject_or_the_names():
    hostile = "Eve \u202eRTL\u202c \u2067x\u2069"
    rendered = RenderedEmail(subject=f"3 papers {hostile} · 28 Nov", html="<p>x</p>", text="x")
    msg = roundtrip(build(Subscriber(email="eve@example.org", name=hostile), rendered))
    for header in ("Subject", "To"):
        assert not any("\u202a" <= c <= "\u202e" or "\u2066" <= c <= "\u2069" for c in str(msg[header]))
    assert msg["Subject"] == "3 papers Eve RTL x · 28 Nov"
