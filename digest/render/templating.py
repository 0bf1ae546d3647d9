"""Template plumbing for the renderers: the Jinja environment, where templates are found, and the
small text helpers every renderer shares (cleaning hostile text, wrapping, snippets, dates).
What a template sees of a paper is in `views.py`, the highlighting that goes into it in `highlighting.py`.

No business logic lives here: what goes into an email or a feed is decided in `email.py`,
`feeds.py` and `archive.py`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from markupsafe import Markup

from digest.core.errors import RenderError
from digest.render.columns import wrap_columns

# -- where the templates are --------------------------------------------------------------------


def shipped_templates() -> Traversable:
    """Where the templates that ship with digest are read from: the one place that decides.

    An installed wheel carries them as package data, `digest/templates` (pyproject.toml
    force-includes the repository's templates/ there), read through importlib.resources so that
    any installer's layout works, a zip included. A source checkout has no `digest/templates`:
    there they are `templates/` at the top of the repository, beside the package, where users
    look for them.
    """
    package = resources.files("digest")
    packaged = package / "templates"
    if packaged.is_dir() or not isinstance(package, Path):
        return packaged
    return package.parent / "templates"


class _ShippedLoader(jinja2.BaseLoader):
    """Jinja's loader for `shipped_templates()`, read as package data rather than as files."""

    def __init__(self, root: Traversable) -> None:
        self.root = root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool]]:
        pieces = template.split("/")
        if any(piece in ("", ".", "..") for piece in pieces):
            raise jinja2.TemplateNotFound(template)
        path = self.root.joinpath(*pieces)
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        # Shipped templates do not change while digest runs: never stale, nothing to re-check.
        return path.read_text(encoding="utf-8"), str(path), lambda: True

    def list_templates(self) -> list[str]:
        return sorted(entry.name for entry in self.root.iterdir() if entry.is_file())


def _autoescape(name: str | None) -> bool:
    # Everything is HTML or XML except the plain-text email part.
    return not (name or "").endswith((".txt.j2", ".txt"))


def make_env(user_dir: Path | None = None, *, scrub: bool = True) -> jinja2.Environment:
    """A Jinja environment where templates in `user_dir` override the shipped ones by name.

    `scrub` passes everything a template prints through `_finalize` (no control characters). The
    email renderer turns it off for speed: what it gives its templates is already clean.
    """
    loaders: list[jinja2.BaseLoader] = []
    if user_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(user_dir)))
    loaders.append(_ShippedLoader(shipped_templates()))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize if scrub else None,
        extensions=[FragmentCache],
    )
    env.filters["wrap"] = wrap
    env.filters["clean"] = clean
    return env


class FragmentCache(Extension):
    """`{% cache key, … %}…{% endcache %}`: the block is rendered once per key, then reused.

    For the parts of a paper that every reader gets alike (links, badges, the text part's
    snippet), which are most of an email: `{% cache p.id %}` renders them once per paper per run,
    not once per email. The key must name everything the block depends on (`p.id,
    p.matched_categories` for badges that mark the reader's categories). Each block has its own
    cache, which lives as long as the environment: one run. Like Django's `{% cache %}` tag.
    """

    tags = {"cache"}  # noqa: RUF012 - Jinja declares it a plain class attribute
    LIMIT = 50_000  # fragments kept; past that the cache starts over (a run has ~2 per paper)

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        self.fragments = _Fragments()
        self.blocks = 0

    def parse(self, parser: Parser) -> list[nodes.Node]:
        lineno = next(parser.stream).lineno
        self.blocks += 1  # the block's own id: two blocks with the same key keep their own texts
        keys: list[nodes.Expr] = [nodes.Const(self.blocks)]
        while parser.stream.current.type != "block_end":
            if len(keys) > 1:
                parser.stream.expect("comma")
            keys.append(parser.parse_expression())
        body = parser.parse_statements(("name:endcache",), drop_needle=True)
        # {% set f = fragments[key] %}{% if f is none %}{% set f %}body{% endset %}
        # {% set f = put(key, f) %}{% endif %}{{ f }}. A subscript, not a method call: Jinja runs
        # calls through context.call, which would cost more than the block itself on a hit; and
        # a captured block, not a {% call %}, which would build a macro every time.
        name = f"cache_fragment_{self.blocks}"
        key = nodes.Tuple(keys, "load")
        found = nodes.Getitem(self.attr("fragments"), key, "load")
        stored = self.call_method("put", [key, nodes.Name(name, "load")])
        return [
            nodes.Assign(nodes.Name(name, "store"), found).set_lineno(lineno),
            nodes.If(
                nodes.Test(nodes.Name(name, "load"), "none", [], [], None, None),
                [
                    nodes.AssignBlock(nodes.Name(name, "store"), None, body),
                    nodes.Assign(nodes.Name(name, "store"), stored),
                ],
                [],
                [],
            ).set_lineno(lineno),
            nodes.Output([nodes.Name(name, "load")]).set_lineno(lineno),
        ]

    def put(self, key: tuple[Any, ...], fragment: str) -> str:
        if len(self.fragments) >= self.LIMIT:
            self.fragments.clear()
        self.fragments[key] = fragment
        return fragment

    def clear(self) -> None:
        self.fragments.clear()


class _Fragments(dict[tuple[Any, ...], str]):
    """A dict where a missing key is None: what `{% cache %}` tests for."""

    def __missing__(self, key: tuple[Any, ...]) -> None:
        return None


def clear_fragments(env: jinja2.Environment) -> None:
    """Forget every `{% cache %}` fragment: after rendering sample papers, whose ids are made up."""
    for ext in env.extensions.values():
        if isinstance(ext, FragmentCache):
            ext.clear()


def _finalize(value: Any) -> Any:
    # The last line of defence: no control character reaches any output, whatever a template
    # prints. Markup stays Markup so it is not escaped twice.
    if isinstance(value, str):
        # The common case, and fast: a printable str has none of those characters (isprintable
        # is a plain loop; a feed prints 2 KB descriptions), and one with newlines is searched.
        if value.isprintable() or not _OUTPUT_CONTROL_RE.search(value):
            return value
        if isinstance(value, Markup):
            return Markup(_OUTPUT_CONTROL_RE.sub(" ", value))
        return _OUTPUT_CONTROL_RE.sub(" ", value)
    if value is None:
        return ""
    return value


def template_error(exc: BaseException, fallback_name: str) -> RenderError:
    """One line: template name, line, message."""
    name = getattr(exc, "filename", None) or getattr(exc, "name", None) or fallback_name
    lineno = getattr(exc, "lineno", None)
    if lineno is None:
        lineno, frame_file = _template_line_from_traceback(exc)
        name = frame_file or name
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    where = f"{name}, line {lineno}" if lineno else str(name)
    return RenderError(f"template {where}: {message.splitlines()[0] if message else ''}")


def _template_line_from_traceback(exc: BaseException) -> tuple[int | None, str | None]:
    # Jinja rewrites tracebacks so that frames of a template point at the template file and line.
    tb = exc.__traceback__
    found: tuple[int | None, str | None] = (None, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2") or "<template>" in filename:
            found = (tb.tb_lineno, filename)
        tb = tb.tb_next
    return found


def load(env: jinja2.Environment, name: str) -> jinja2.Template:
    """Load and compile a template, turning any failure into a one-line RenderError."""
    try:
        return env.get_template(name)
    except jinja2.TemplateNotFound:
        raise RenderError(
            f"template {name}: not found in the templates directory or the shipped templates"
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise template_error(exc, name) from None
    except UnicodeDecodeError as exc:
        raise RenderError(f"template {name}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def compile_all(user_dir: Path | None) -> None:
    """Compile every template a run uses (yours where they override the shipped ones): what
    `digest check` does, so a broken archive or feed template is found before any email goes."""
    env = make_env(user_dir)
    for name in _ShippedLoader(shipped_templates()).list_templates():
        if name.endswith(".j2"):
            load(env, name)


def render(template: jinja2.Template, context: dict[str, Any]) -> str:
    try:
        return template.render(context)
    except Exception as exc:  # a template can raise anything; report it as a RenderError
        raise template_error(exc, template.name or "<template>") from None


# -- hostile text -------------------------------------------------------------------------------

# C0 controls, DEL, C1 controls, the XML non-characters and lone surrogates: each becomes one
# space, so that match offsets into the original text stay valid. What templates print keeps its
# newlines and tabs (the text part is laid out with them).
# Also the bidi embeddings, overrides and isolates (U+202A-202E, U+2066-2069): a name or a title
# with one could show its text reversed ("Trojan Source"), in the reader's mail and feeds alike.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff\ud800-\udfff]")
_OUTPUT_CONTROL_RE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff\ud800-\udfff]"
)
_SPACES = re.compile(r"\s+")


def clean(text: str | None) -> str:
    """Control characters (CR, LF, NUL, ...) become spaces; offsets are preserved."""
    if not text:
        return ""
    # Most text is printable, and every character of _CONTROL_RE is not (controls, surrogates,
    # non-characters): one C-level check instead of a regex scan.
    if text.isprintable():
        return text
    return _CONTROL_RE.sub(" ", text)


def one_line(text: str | None) -> str:
    """Clean and collapse whitespace: for titles, subjects and anything shown on one line."""
    if not text:
        return ""
    # Printable text needs no cleaning (see `clean`) and has no whitespace but " " (every other
    # character \s matches is a control or a separator, which are not printable), so without a
    # double space there is nothing to collapse. This runs on every title and snippet of a run,
    # and the regex, which replaced each single space with another, took 40 us an abstract.
    if text.isprintable():
        return text.strip() if "  " not in text else _SPACES.sub(" ", text).strip()
    return _SPACES.sub(" ", _CONTROL_RE.sub(" ", text)).strip()


def wrap(text: str, width: int = 76, indent: str = "", first: str | None = None) -> str:
    """Wrap plain text for the text part; `indent` on every line, `first` on the first.
    `width` counts display columns (a CJK character takes two).

    Greedy, like textwrap.fill(break_long_words=False, break_on_hyphens=False), which is several
    times slower and this runs for every paragraph of every email.
    """
    if first is not None and len(first) == len(indent):
        # The same lines as with `indent` alone: one cached entry per title, not one per title
        # and position in the list ("1.  ", "2.  ", ...).
        body = _wrap(text, width, indent, None)
        return first + body[len(indent) :] if body else ""
    return _wrap(text, width, indent, first)


@lru_cache(maxsize=8192)  # the same titles and authors go to many readers; why lines rarely
def _wrap(text: str, width: int, indent: str, first: str | None) -> str:
    if not (text.isascii() and indent.isascii() and (first or "").isascii()):
        # by display width, and beside CJK characters too (`columns`); ASCII below, faster
        return wrap_columns(clean(text), width, indent, first)
    lines: list[str] = []
    line = indent if first is None else first
    empty = True
    # The words of one_line(text): str.split() splits at exactly the characters \s matches.
    for word in clean(text).split():
        if not empty and len(line) + 1 + len(word) > width:
            lines.append(line)
            line, empty = indent + word, False
        else:
            line, empty = (line + word, False) if empty else (line + " " + word, False)
    if not empty:
        lines.append(line)
    return "\n".join(lines)


# -- snippets and highlighting --------------------------------------------------------------------

SNIPPET_CHARS = 300


def cut(text: str, limit: int = SNIPPET_CHARS) -> str:
    """`text` cut to at most about `limit` characters at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    space = text.rfind(" ", 0, limit)
    end = space if space > limit * 0.6 else limit
    return text[:end].rstrip(" ,;:.-(") + "…"


# -- small formatting helpers ---------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS_LONG = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAYS_SHORT = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def short_date(date: dt.date) -> str:
    """'21 Nov 2026', independent of the locale."""
    return f"{date.day} {_MONTHS[date.month - 1]} {date.year}"


def long_date(date: dt.date) -> str:
    """'Saturday, 21 November 2026'."""
    return f"{_WEEKDAYS[date.weekday()]}, {date.day} {_MONTHS_LONG[date.month - 1]} {date.year}"


def rfc822(moment: dt.datetime) -> str:
    """RFC 822 date for RSS, in English whatever the locale."""
    moment = moment.astimezone(dt.UTC)
    return (
        f"{_WEEKDAYS_SHORT[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
        f"{moment.year} {moment:%H:%M:%S} +0000"
    )


def shorten_authors(
    authors: Sequence[str], *, keep: int = 3, limit: int = 5, must_show: Sequence[str] = ()
) -> str:
    """'A, B and C'; more than `limit` authors become the first `keep` + 'et al.'.

    Authors a reader follows (`must_show`, matched case-insensitively as substrings) stay visible:
    'A, B, C, … Matched et al.'.
    """
    names = [a for a in authors if a and not a.isspace()]
    if len(names) > limit:
        extra = []
        if must_show:  # only a reader's view asks; the shared view of every paper does not
            wanted = [t.lower() for t in must_show]
            extra = [one_line(n) for n in names[keep:] if any(w in n.lower() for w in wanted)]
        head = ", ".join([one_line(n) for n in names[:keep]])
        return head + (", … " + ", ".join(extra) if extra else "") + " et al."
    names = [one_line(n) for n in names]
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
