"""Speed tricks that lean on the internals of Python, Jinja or MarkupSafe, gathered in one place.

Each is a small function that says what it relies on and what it buys (measured with
`bench/run.py` at 10,000 readers). tests/test_speed.py checks that each still takes effect with
the installed versions, so an upgrade that breaks one fails the suite instead of silently slowing
a run down or changing its output; pyproject.toml pins upper bounds on the libraries concerned.
Nothing here knows about papers or readers: no business logic.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, cast

import markupsafe
from markupsafe import Markup

__all__ = [
    "escape_for_output",
    "escape_text",
    "gc_paused",
    "give_back_freed_memory",
    "markup_unchecked",
    "plain_escape_in",
    "tuple_maker",
]

T = TypeVar("T", bound=tuple[Any, ...])


# -- the garbage collector ------------------------------------------------------------------------


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off, then restored as it was, with what the block made handed
    straight to its oldest generation.

    Relies on: `gc.freeze()` moving every tracked object to the permanent generation and
    `gc.unfreeze()` moving them all back into the oldest one, each in constant time (CPython 3.7+).

    Buys: compiling profiles and a run allocate many small objects and no reference cycles; left
    on, the collector re-walks the growing heap again and again (a fifth of the compile time at
    10,000 readers). Merely turned back on, its next young pass would still walk every object the
    block made (some 500,000 matches, hits and tuples, a tenth of the time of `Matcher.top`, and
    as long again when the middle generation's turn follows), only to find no garbage: they are
    acyclic and live on. Full collections still walk them, as they would have once promoted.
    Skipped when the program froze objects itself, since unfreezing would undo that.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def give_back_freed_memory() -> None:
    """Return to the system the memory of objects the program has already let go of.

    Relies on: CPython keeping freed objects of its commonest kinds for reuse (up to 2,000
    tuples of each length from 1 to 19, and some lists, dicts and floats), each in the 1 MB arena
    of small objects it was made in, and an arena going back to the system only once nothing in it
    is used; and a collection of the oldest generation emptying those lists (`gc.collect()`; so in
    3.11 to 3.13 at least).

    Buys: after a run's digests are freed, the last 2,000 tuples of each length freed are spread
    over hundreds of arenas that are otherwise empty. At 100,000 readers (sending stood in for by
    ledger marks) the run held 503 MB where publishing starts, 256 MB after this (0.12 s); the
    publish worker forked next starts from the smaller run.
    """
    gc.collect()


# -- NamedTuples -------------------------------------------------------------------------------------


def tuple_maker(cls: type[T]) -> Callable[[type[T], tuple[Any, ...]], T]:
    """`tuple.__new__`, typed for `cls`: `make(cls, (a, b, c))` is `cls(a, b, c)`.

    Relies on: a `typing.NamedTuple` being a tuple subclass with no state of its own
    (`__slots__ = ()`) whose generated `__new__` only binds its arguments to positions.

    Buys: skipping that generated `__new__` (a Python-level call), which is most of the cost of
    making a `Hit` or a `Match`; a run at 10,000 readers makes some 500,000 of them.
    """
    return cast(Callable[[type[T], tuple[Any, ...]], T], tuple.__new__)


# -- MarkupSafe ------------------------------------------------------------------------------------


def markup_unchecked(html: str) -> Markup:
    """`Markup(html)` for a str known to be safe HTML, without `Markup.__new__`.

    Relies on: `Markup` being a str subclass with no state of its own, whose `__new__` only looks
    for `__html__` and an encoding before calling `str.__new__`.

    Buys: that Python call, for most of the 200,000 paper views of a run at 10,000 readers (the
    marked titles, snippets and why lines).
    """
    return str.__new__(Markup, html)


def escape_text(text: str) -> str:
    """`markupsafe.escape(text)`, character for character, as a plain str.

    Relies on: MarkupSafe's table of five replacements (`&`, `>`, `<`, `'` as `&#39;`, `"` as
    `&#34;`), which its own C and Python versions share.

    Buys: no Markup allocated for pieces that are joined into something larger anyway
    (highlighted titles, why lines); about a fifth of the cost of highlighting.
    """
    return (
        text.replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


def escape_for_output(value: Any) -> str:
    """What an autoescaping template prints for `value`, as a plain str where that is enough:
    a Markup as it is, a str through `escape_text`, anything else through `markupsafe.escape`."""
    kind = type(value)
    if kind is Markup:
        return cast(str, value)
    if kind is str:
        return escape_text(value)
    return markupsafe.escape(value)


# -- Jinja -----------------------------------------------------------------------------------------


class _CompiledTemplate(Protocol):
    root_render_func: Callable[..., Any]


def plain_escape_in(template: _CompiledTemplate) -> bool:
    """Make a compiled template escape what it prints with `escape_for_output`; whether it did.

    Relies on: Jinja's code generator writing a template as a module whose render functions look
    `escape` up in their module globals at every call (`root_render_func.__globals__["escape"]`,
    `markupsafe.escape` imported there via `jinja2.runtime`), and only ever joining its result
    into the output (never asking whether it is Markup).

    Buys: autoescaping sends every printed value through `markupsafe.escape`, which gives back a
    new Markup (another Python call) even for a Markup, which it copies. An email prints some 400
    values, so that was a tenth of the rendering time. When a Jinja version compiles templates
    otherwise, nothing is changed and this returns False (tests/test_speed.py then fails).
    """
    namespace = template.root_render_func.__globals__
    if namespace.get("escape") is not markupsafe.escape:
        return False
    namespace["escape"] = escape_for_output
    return True
