"""The profile query language: what parses to what, and errors with their column."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.matching.query import And, Not, Or, QuerySyntaxError, Term, atoms, evaluate, parse_query, to_text


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("LLM", "LLM"),
        ('"prompt tuning"', '"prompt tuning"'),
        ("a OR b AND c", "(a OR (b AND c))"),
        ("a b c", "(a AND b AND c)"),
        ("a NOT b", "(a AND NOT b)"),
        ("NOT NOT a", "NOT NOT a"),
        ("(a OR b) c", "((a OR b) AND c)"),
        (
            '("prompt tuning" OR adapter) AND title:multimodal NOT cat:q-bio',
            '(("prompt tuning" OR adapter) AND title:multimodal AND NOT cat:q-bio)',
        ),
        ('author:"Yann LeCun" OR abstract:RAG', '(author:"Yann LeCun" OR abstract:RAG)'),
        ("keywords:distillation category:cs.CV", "(keywords:distillation AND cat:cs.CV)"),
        ("llm and agents", "(llm AND and AND agents)"),  # lower-case "and" is a word
    ],
)
def test_parses(query: str, canonical: str) -> None:
    assert to_text(parse_query(query)) == canonical


def test_ast_shape() -> None:
    node = parse_query('title:"vision language" OR NOT cat:cs')
    assert node == Or((Term("vision language", "title", 1), Not(Term("cs", "cat", 32))))
    assert isinstance(parse_query("a b"), And)


@pytest.mark.parametrize(
    ("query", "message", "column"),
    [
        ('("prompt tuning"))', "unexpected ')'", 18),
        ("(adapter OR x", "missing ')'", 1),
        ("a OR", "unexpected end of query", 5),
        ("AND a", "unexpected 'AND'", 1),
        ('title:"open', "unterminated quote", 7),
        ("titel:x", "unknown field 'titel'", 1),
        ("title:(a)", "expected a word or a quoted phrase after title:", 7),
        ("()", "empty parentheses", 2),
        ("   ", "empty query", 1),
        ("a OR +++", "has no letters or digits", 6),
        ("cat:cs..CV", "is not an arXiv category", 1),
    ],
)
def test_syntax_errors(query: str, message: str, column: int) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    assert message in info.value.message
    assert info.value.column == column
    assert str(info.value).endswith(f"at column {column}")


def test_atoms_carry_polarity() -> None:
    node = parse_query("a NOT (b OR NOT c)")
    assert [(t.text, pos) for t, pos in atoms(node)] == [("a", True), ("b", False), ("c", True)]


def test_evaluate() -> None:
    node = parse_query("(a OR b) NOT c")
    a, b, c = (t for t, _ in atoms(node))
    assert evaluate(node, {a: True, b: False, c: False})
    assert not evaluate(node, {a: True, b: False, c: True})
    assert not evaluate(node, {a: False, b: False, c: False})


_words = st.sampled_from(["llm", "RAG", "vision-language", '"prompt tuning"', "title:agents", "cat:cs.CV"])


@st.composite
def _queries(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        return draw(_words)
    op = draw(st.sampled_from([" AND ", " OR ", " ", " NOT "]))
    left, right = draw(_queries(depth + 1)), draw(_queries(depth + 1))
    return f"({left}{op}{right})" if draw(st.booleans()) else f"{left}{op}{right}"


@settings(max_examples=60, deadline=None)
@given(_queries())
def test_canonical_form_is_a_fixed_point(query: str) -> None:
    once = to_text(parse_query(query))
    assert to_text(parse_query(once)) == once


@pytest.mark.parametrize("query", ["(" * 33 + "a" + ")" * 33, "NOT " * 33 + "a", "(" * 500 + "a" + ")" * 500])
def test_nesting_deeper_than_the_cap_is_a_syntax_error_not_a_crash(query: str) -> None:
    with pytest.raises(QuerySyntaxError, match="nested too deeply"):
        parse_query(query)


def test_nesting_up_to_the_cap_parses() -> None:
    assert to_text(parse_query("(" * 32 + "a" + ")" * 32)) == "a"
    assert to_text(parse_query("NOT " * 32 + "a")).count("NOT") == 32
