"""The profile query language: a hand-written recursive-descent parser producing a small AST.

    query    := or_expr END
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := not_expr (["AND"] not_expr)*        adjacent terms are ANDed
    not_expr := "NOT" not_expr | primary
    primary  := "(" or_expr ")" | [field ":"] (WORD | "quoted phrase")
    field    := title | abstract | keywords | author | cat | category

Operators are written in capitals; a lower-case "and" is an ordinary word. A bare term searches the
title, the abstract and the Hugging Face keywords. Errors are `QuerySyntaxError(message, column)`
with a 1-based column. Evaluation lives in `digest.matching.matcher`; this module only parses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from digest.matching.terms import CATEGORY_RE, TOKEN_RE, author_name

QueryField = Literal["title", "abstract", "keywords", "author", "cat"]
TEXT_FIELDS: tuple[QueryField, ...] = ("title", "abstract", "keywords")
FIELD_NAMES: dict[str, QueryField] = {
    "title": "title",
    "abstract": "abstract",
    "keywords": "keywords",
    "keyword": "keywords",
    "author": "author",
    "cat": "cat",
    "category": "cat",
}
OPERATORS = ("AND", "OR", "NOT")


class QuerySyntaxError(ValueError):
    """A query that does not parse; `column` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        self.message = message
        self.column = column
        super().__init__(f"{message} at column {column}")


@dataclass(frozen=True, slots=True)
class Term:
    """One searchable atom. `fields` is None for a bare term (title, abstract and keywords)."""

    text: str
    field: QueryField | None = None
    column: int = 0

    @property
    def fields(self) -> tuple[QueryField, ...]:
        return TEXT_FIELDS if self.field is None else (self.field,)


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Term | And | Or | Not


# -- lexer -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: Literal["(", ")", "OP", "FIELD", "WORD", "PHRASE", "END"]
    value: str
    column: int


_WORD_RE = re.compile(r"[^\s()\"]+")
_FIELD_RE = re.compile(r"([A-Za-z]+):")


def _lex(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c.isspace():
            i += 1
        elif c in "()":
            out.append(_Tok(c, c, col))  # type: ignore[arg-type]
            i += 1
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise QuerySyntaxError('unterminated quote; close the phrase with "', col)
            out.append(_Tok("PHRASE", text[i + 1 : end], col))
            i = end + 1
        else:
            m = _FIELD_RE.match(text, i)
            if m:
                name = m.group(1).lower()
                if name not in FIELD_NAMES:
                    known = ", ".join(f"{f}:" for f in ("title", "abstract", "keywords", "author", "cat"))
                    raise QuerySyntaxError(f"unknown field {m.group(1)!r}; use one of {known}", col)
                out.append(_Tok("FIELD", FIELD_NAMES[name], col))
                i = m.end()
                continue
            m = _WORD_RE.match(text, i)
            assert m is not None
            word = m.group()
            out.append(_Tok("OP" if word in OPERATORS else "WORD", word, col))
            i = m.end()
    out.append(_Tok("END", "", n + 1))
    return out


# -- parser ----------------------------------------------------------------------------------------


MAX_DEPTH = 32  # parentheses and NOTs inside each other; the parser and the matcher recurse


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _lex(text)
        self.pos = 0
        self.depth = 0

    def _deeper(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(
                f"nested too deeply (more than {MAX_DEPTH} parentheses or NOTs)", tok.column
            )

    @property
    def tok(self) -> _Tok:
        return self.toks[self.pos]

    def _next(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise QuerySyntaxError("empty query", 1)
        node = self.or_expr()
        if self.tok.kind != "END":
            raise self._unexpected()
        return node

    def _unexpected(self) -> QuerySyntaxError:
        tok = self.tok
        if tok.kind == "END":
            return QuerySyntaxError("unexpected end of query", tok.column)
        shown = f"{tok.value}:" if tok.kind == "FIELD" else tok.value
        return QuerySyntaxError(f"unexpected {shown!r}", tok.column)

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.tok.kind == "OP" and self.tok.value == "OR":
            self._next()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _starts_operand(self) -> bool:
        tok = self.tok
        return tok.kind in ("(", "FIELD", "WORD", "PHRASE") or (tok.kind == "OP" and tok.value == "NOT")

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while True:
            if self.tok.kind == "OP" and self.tok.value == "AND":
                self._next()
                items.append(self.not_expr())
            elif self._starts_operand():
                items.append(self.not_expr())
            else:
                break
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.tok.kind == "OP" and self.tok.value == "NOT":
            self._deeper(self._next())
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "(":
            self._deeper(self._next())
            if self.tok.kind == ")":
                raise QuerySyntaxError("empty parentheses", self.tok.column)
            node = self.or_expr()
            if self.tok.kind != ")":
                if self.tok.kind == "END":
                    raise QuerySyntaxError("missing ')' to close the '(' opened", tok.column)
                raise self._unexpected()
            self._next()
            self.depth -= 1
            return node
        field: QueryField | None = None
        if tok.kind == "FIELD":
            field = tok.value  # type: ignore[assignment]
            self._next()
            if self.tok.kind not in ("WORD", "PHRASE"):
                raise QuerySyntaxError(
                    f"expected a word or a quoted phrase after {tok.value}:", self.tok.column
                )
        if self.tok.kind in ("WORD", "PHRASE"):
            word = self._next()
            return _term(word.value, field, tok.column if field else word.column)
        raise self._unexpected()


def _term(text: str, field: QueryField | None, column: int) -> Term:
    text = text.strip()
    if field == "cat":
        if not CATEGORY_RE.fullmatch(text):
            raise QuerySyntaxError(f"{text!r} is not an arXiv category such as cs.CV or hep-th", column)
    elif field == "author":
        if author_name(text) is None:
            raise QuerySyntaxError(f"{text!r} is not an author name", column)
    elif not TOKEN_RE.search(text):
        raise QuerySyntaxError(f"{text!r} has no letters or digits to search for", column)
    return Term(text, field, column)


def parse_query(text: str) -> Node:
    """Parse a profile query; raises QuerySyntaxError(message, column)."""
    return _Parser(text).parse()


def atoms(node: Node, positive: bool = True) -> Iterator[tuple[Term, bool]]:
    """Every term with its polarity (False under an odd number of NOTs)."""
    if isinstance(node, Term):
        yield node, positive
    elif isinstance(node, Not):
        yield from atoms(node.item, not positive)
    else:
        for item in node.items:
            yield from atoms(item, positive)


def evaluate(node: Node, truth: dict[Term, bool]) -> bool:
    """The boolean value of the query given each term's truth."""
    if isinstance(node, Term):
        return truth[node]
    if isinstance(node, Not):
        return not evaluate(node.item, truth)
    if isinstance(node, And):
        return all(evaluate(item, truth) for item in node.items)
    return any(evaluate(item, truth) for item in node.items)


def to_text(node: Node) -> str:
    """A canonical, fully parenthesised rendering (for tests and debugging)."""
    if isinstance(node, Term):
        body = f'"{node.text}"' if not _WORD_RE.fullmatch(node.text) or node.text in OPERATORS else node.text
        return f"{node.field}:{body}" if node.field else body
    if isinstance(node, Not):
        return f"NOT {to_text(node.item)}"
    op = " AND " if isinstance(node, And) else " OR "
    return "(" + op.join(to_text(i) for i in node.items) + ")"
