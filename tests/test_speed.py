"""The speed tricks of `digest.core.speed` still take effect with the installed libraries.

Each trick leans on an internal of Python, Jinja or MarkupSafe. When an upgrade changes that
internal, a trick either stops working (a run silently gets slower) or starts giving something
else (an email silently changes): these tests fail first, so the upgrade is looked at.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup

from digest.core import speed
from digest.core.models import Hit, Match, Paper
from digest.render.templating import make_env

# -- gc_paused ---------------------------------------------------------------------------------------


def test_gc_paused_turns_the_collector_off_and_back_on() -> None:
    assert gc.isenabled()
    with speed.gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_gc_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with speed.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_gc_paused_hands_what_the_block_made_to_the_oldest_generation() -> None:
    # The point of the trick: what the block made is not walked by the next young collections.
    with speed.gc_paused():
        made = [[i] for i in range(1000)]  # lists are tracked by the collector
    assert gc.get_freeze_count() == 0  # unfrozen again: full collections still see them
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    young = {id(o) for o in gc.get_objects(generation=0)} | {id(o) for o in gc.get_objects(generation=1)}
    assert all(id(x) in oldest for x in made)
    assert not any(id(x) in young for x in made)


def test_gc_paused_does_not_undo_a_freeze_of_the_program() -> None:
    # Checked on objects of our own, not on the freeze count: a frozen object that dies (another
    # thread's, another test's) leaves the permanent generation and lowers the count.
    ours = [[i] for i in range(100)]
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        with speed.gc_paused():
            [[i] for i in range(10)]
        assert gc.get_freeze_count() > 0
        collected = {id(o) for generation in (0, 1, 2) for o in gc.get_objects(generation=generation)}
        assert not any(id(x) in collected for x in ours)  # still frozen: not back in a generation
    finally:
        gc.unfreeze()
    collected = {id(o) for generation in (0, 1, 2) for o in gc.get_objects(generation=generation)}
    assert all(id(x) in collected for x in ours)  # the check above can fail: unfrozen, they are seen


# -- give_back_freed_memory ----------------------------------------------------------------------------

_FREED_TUPLES = """
import random, sys
from digest.core import speed
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
tuples = [tuple(range(i % 19 + 1)) for i in range(600_000)]  # a run's matches and hits, say
made = rss()
random.seed(1)
random.shuffle(tuples)
while tuples:
    tuples.pop()  # freed in no order: the last 2,000 of each length kept, spread over the arenas
freed = rss()
speed.give_back_freed_memory()
print(made, freed, rss())
"""


@pytest.mark.integration  # a subprocess
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the RSS from /proc")
def test_give_back_freed_memory_returns_the_arenas_the_kept_tuples_pinned() -> None:
    # In a fresh interpreter: the test's own heap would blur a drop of some tens of MB. With
    # CPython's own allocator for small objects, which PYTHONMALLOC=malloc (set by sanitizer and
    # valgrind jobs) would replace by the C library's.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}
    done = subprocess.run(
        [sys.executable, "-c", _FREED_TUPLES], capture_output=True, text=True, check=True, env=env
    )
    made, freed, after = map(int, done.stdout.split())
    assert made > 60  # ~70 MB of tuples (MB)
    assert freed > made * 0.7  # freed, yet nearly all still held: the kept ones pin their arenas
    assert after < freed * 0.4  # given back


# -- tuple_maker ---------------------------------------------------------------------------------------


def test_tuple_maker_makes_the_same_hit_and_match_as_their_constructors() -> None:
    new_hit, new_match = speed.tuple_maker(Hit), speed.tuple_maker(Match)
    hit = new_hit(Hit, ("LLM", "title", 0, 3))
    assert type(hit) is Hit
    assert hit == Hit("LLM", "title", 0, 3)
    assert (hit.term, hit.field, hit.start, hit.end) == ("LLM", "title", 0, 3)
    paper = Paper(id="2411.00001", title="LLM", abstract="")
    match = new_match(Match, (paper, 3.0, (hit,)))
    assert type(match) is Match
    assert match == Match(paper, 3.0, (hit,))
    assert match.paper is paper and match.hits == (hit,)


@pytest.mark.parametrize("cls", [Hit, Match])
def test_what_tuple_maker_skips_is_only_argument_binding(cls: type[Any]) -> None:
    # A NamedTuple with state of its own, or a __new__/__init__ that checks or converts, would
    # make tuple.__new__ give something else than the class does.
    assert cls.__slots__ == ()
    assert cls.__init__ is tuple.__init__
    # the __new__ collections.namedtuple generates (`return _tuple_new(_cls, (a, b, ...))`)
    new = cls.__new__
    assert new.__code__.co_varnames[1:] == cls._fields
    assert new.__code__.co_names == ("_tuple_new",)
    assert new.__globals__["_tuple_new"] is tuple.__new__
    assert not hasattr(speed.tuple_maker(cls)(cls, tuple(range(len(cls._fields)))), "__dict__")


# -- markup_unchecked, escape_text -----------------------------------------------------------------


@given(st.text())
def test_markup_unchecked_is_the_markup_the_constructor_makes(html: str) -> None:
    fast = speed.markup_unchecked(html)
    slow = Markup(html)
    assert type(fast) is Markup
    assert fast == slow
    assert fast.__html__() == slow.__html__()
    assert fast + "<" == slow + "<"  # behaves as Markup: what is added to it is escaped


def test_markup_has_no_state_that_str_new_would_skip() -> None:
    assert issubclass(Markup, str)
    assert Markup.__slots__ == ()
    assert not hasattr(speed.markup_unchecked("x"), "__dict__")
    # What the trick skips is a Python-level __new__: were it gone, the trick would buy nothing.
    assert Markup.__new__ is not str.__new__


@given(st.text())
def test_escape_text_escapes_exactly_as_markupsafe(text: str) -> None:
    assert type(speed.escape_text(text)) is str
    assert speed.escape_text(text) == str(markupsafe.escape(text))


def test_escape_text_covers_every_character_markupsafe_escapes() -> None:
    special = "&<>\"'"
    assert speed.escape_text(special) == str(markupsafe.escape(special))
    assert all(speed.escape_text(chr(c)) == str(markupsafe.escape(chr(c))) for c in range(0x2000))


@pytest.mark.parametrize("value", ["<a & 'b'>", Markup("<b>x</b>"), 3, None, 2.5, "plain"])
def test_escape_for_output_prints_what_markupsafe_escape_prints(value: object) -> None:
    assert speed.escape_for_output(value) == str(markupsafe.escape(value))


# -- plain_escape_in ----------------------------------------------------------------------------------

SOURCE = "{{ text }}|{{ html }}|{{ n }}{% for x in items %}[{{ x }}]{% endfor %}{% block b %}{{ text }}{% endblock %}"
CONTEXT = {"text": "<a href='x'>&\"", "html": Markup("<b>ok</b>"), "n": 3, "items": ["<", Markup("<i>")]}


def test_plain_escape_in_takes_effect_on_a_compiled_template() -> None:
    template = make_env().from_string(SOURCE)
    assert speed.plain_escape_in(template) is True
    assert template.root_render_func.__globals__["escape"] is speed.escape_for_output


def test_plain_escape_in_renders_the_same_text() -> None:
    env = make_env(scrub=False)
    slow, fast = env.from_string(SOURCE), env.from_string(SOURCE)
    speed.plain_escape_in(fast)
    assert fast.render(CONTEXT) == slow.render(CONTEXT)
    assert "&lt;a href=&#39;x&#39;&gt;&amp;&#34;" in fast.render(CONTEXT)


def test_plain_escape_in_really_replaces_the_work_done_per_printed_value() -> None:
    # The render functions look `escape` up in their module globals at every call: what the trick
    # puts there is what runs, once per printed value, in the template's blocks as in its body.
    template = make_env(scrub=False).from_string(SOURCE)
    speed.plain_escape_in(template)
    calls: list[object] = []

    def counting(value: object) -> str:
        calls.append(value)
        return speed.escape_for_output(value)

    template.root_render_func.__globals__["escape"] = counting
    template.render(CONTEXT)
    assert CONTEXT["text"] in calls and CONTEXT["html"] in calls
    assert len(calls) == 6  # text, html, n, two items, the block's text


def test_plain_escape_in_leaves_a_template_it_does_not_understand_alone() -> None:
    template = jinja2.Environment(autoescape=False).from_string("{{ x }}")
    template.root_render_func.__globals__["escape"] = str  # as if Jinja bound escape otherwise
    assert speed.plain_escape_in(template) is False
    assert template.root_render_func.__globals__["escape"] is str


def test_the_email_template_gets_the_plain_escape(settings_for_speed: Any) -> None:
    from digest.render.email import EmailRenderer

    renderer = EmailRenderer(settings_for_speed)
    assert renderer._html.root_render_func.__globals__["escape"] is speed.escape_for_output


@pytest.fixture
def settings_for_speed(tmp_path: Any) -> Any:
    from pydantic import SecretStr

    from digest.config import Settings, StateConfig

    return Settings(secret=SecretStr("test-secret"), state=StateConfig(path=tmp_path / "s.sqlite3"))
