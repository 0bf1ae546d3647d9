"""Seeded synthetic subscribers for the benchmarks, drawn from a real listing's vocabulary.

Benchmark support only; no product logic. The profiles look like the ones people write: a few
single words and 2–3 word phrases lifted from real titles (in the case people type them, some
acronyms in capitals, some hyphenated words), now and then an exclude, an author or two from the
listing (sometimes as initials, "Y. LeCun"), arXiv categories, and a few boolean queries with
quoted phrases and field prefixes. Popular words are drawn more often than rare ones, as in
real profiles, so many readers share terms.

Everything comes from `random.Random(seed)` over vocabularies sorted deterministically, so the
same seed and the same papers give byte-identical subscribers.toml files and comparable runs.

    papers = parse_arxiv_rss(...) + parse_hf_daily(...)
    profiles = generate(papers, 1000, seed=42)
    write_toml(profiles, tmp / "subscribers.toml")
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from digest.core.models import Paper
from digest.matching.terms import TOKEN_RE, author_name, compile_term, is_acronym, token_key

# Words that carry no topic; people do not subscribe to them.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "across",
        "after",
        "against",
        "all",
        "also",
        "among",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "based",
        "be",
        "been",
        "before",
        "being",
        "between",
        "beyond",
        "both",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "either",
        "for",
        "from",
        "further",
        "has",
        "have",
        "having",
        "how",
        "however",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "made",
        "make",
        "many",
        "may",
        "more",
        "most",
        "much",
        "must",
        "new",
        "no",
        "non",
        "nor",
        "not",
        "novel",
        "of",
        "off",
        "on",
        "once",
        "one",
        "only",
        "onto",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "per",
        "same",
        "should",
        "show",
        "shows",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "toward",
        "towards",
        "two",
        "under",
        "until",
        "up",
        "upon",
        "use",
        "used",
        "using",
        "very",
        "via",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "you",
        "your",
        "approach",
        "approaches",
        "method",
        "methods",
        "study",
        "studies",
        "towards",
        "paper",
        "results",
        "analysis",
        "problem",
        "problems",
        "case",
        "cases",
        "effect",
        "effects",
        "general",
        "first",
        "second",
        "three",
        "new",
        "large",
        "small",
        "high",
        "low",
    ]
)
# A single word found in more than this share of the papers (title or abstract) is too generic to
# follow on its own ("results", "state", "models"): people subscribe to topic words. It may still
# occur inside a phrase.
MAX_WORD_SHARE = 0.10
_WORD = re.compile(r"[^\W\d_]\w*(?:-\w+)*")
_ROMAN = re.compile(r"[IVXLC]+")
FIRST_NAMES = [
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Frances",
    "John",
    "Radia",
    "Leslie",
    "Tim",
    "Shafi",
    "Yoshua",
    "Fei-Fei",
    "Daphne",
    "Judea",
    "Raj",
    "Hedy",
    "Katherine",
    "Dorothy",
    "Kurt",
    "Emmy",
    "Sofia",
    "Wei",
    "Priya",
    "Amara",
    "Lars",
    "Ines",
]
SOURCES = ("arxiv", "hf")


# (items, cumulative weights): drawn with rng.choices(items, cum_weights=...), which is O(log n).
Pool = tuple[tuple[str, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Vocabulary:
    """What profiles draw from, each pool weighted by how often it occurs in the listing."""

    words: Pool
    phrases: Pool
    acronyms: Pool
    hyphenated: Pool
    authors: tuple[str, ...]
    categories: Pool


def _weighted(counter: Counter[str], power: float = 1.0) -> Pool:
    """Items weighted by count**power; sorted by (-count, text), independent of dict order."""
    items = sorted(((n, t) for t, n in counter.items()), key=lambda x: (-x[0], x[1]))
    return tuple(t for _, t in items), tuple(accumulate(n**power for n, _ in items))


def vocabulary(papers: Sequence[Paper]) -> Vocabulary:
    """The listing's title words and phrases, acronyms, hyphenated words, authors and categories."""
    words: Counter[str] = Counter()
    phrases: Counter[str] = Counter()
    acronyms: Counter[str] = Counter()
    hyphenated: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    authors: set[str] = set()
    share: Counter[str] = Counter()  # papers whose title or abstract has the (plural-folded) word
    for paper in papers:
        share.update({token_key(t) for t in TOKEN_RE.findall(f"{paper.title} {paper.abstract}")})
    for paper in papers:
        tokens = _WORD.findall(paper.title)
        for tok in tokens:
            base = tok[:-1] if tok.endswith("s") and is_acronym(tok[:-1]) else tok
            if is_acronym(base) and not _ROMAN.fullmatch(base):
                acronyms[base] += 1
            elif "-" in tok and len(tok) > 5:
                hyphenated[tok.lower()] += 1
            elif len(tok) >= 4 and tok.lower() not in STOPWORDS and not any(c.isdigit() for c in tok):
                words[tok.lower()] += 1
        # 2- and 3-word runs of topic words, as people quote them from titles
        run: list[str] = []
        for tok in [*tokens, ""]:
            if tok and tok.lower() not in STOPWORDS and len(tok) >= 3:
                run.append(tok)
                continue
            for n in (2, 3):
                for i in range(len(run) - n + 1):
                    gram = run[i : i + n]
                    phrases[" ".join(w if is_acronym(w) else w.lower() for w in gram)] += 1
            run = []
        categories.update(paper.categories)
        for name in paper.authors:
            parts = name.split()
            if 2 <= len(parts) <= 4 and author_name(name) is not None and all(p[0].isupper() for p in parts):
                authors.add(name)
    limit = MAX_WORD_SHARE * len(papers)
    words = Counter({w: n for w, n in words.items() if share[token_key(w)] <= limit})
    return Vocabulary(
        # popular topic words are chosen more often, but less than in proportion to their counts
        words=_weighted(words, power=0.5),
        phrases=_weighted(phrases),
        acronyms=_weighted(acronyms),
        hyphenated=_weighted(hyphenated),
        authors=tuple(sorted(authors)),
        categories=_weighted(categories),
    )


def _pick(rng: random.Random, pool: Pool) -> str:
    items, cumulative = pool
    return rng.choices(items, cum_weights=cumulative)[0]


def _initials(name: str) -> str:
    """'Yann LeCun' -> 'Y. LeCun' (how people often write the authors they follow)."""
    parts = name.split()
    return " ".join([*(p[0] + "." for p in parts[:-1]), parts[-1]])


def _keyword(rng: random.Random, vocab: Vocabulary) -> str:
    roll = rng.random()
    if roll < 0.50:
        word = _pick(rng, vocab.words)
        return word.capitalize() if rng.random() < 0.15 else word
    if roll < 0.75:
        return _pick(rng, vocab.phrases)
    if roll < 0.88:
        return _pick(rng, vocab.acronyms)
    return _pick(rng, vocab.hyphenated)


def _quoted(text: str) -> str:
    return f'"{text}"' if (" " in text or "-" in text) else text


def _query(rng: random.Random, vocab: Vocabulary) -> str:
    """One of the shapes people write: AND/OR/NOT, quoted phrases, title:/abstract:/cat: prefixes."""
    w1, w2, w3 = (_pick(rng, vocab.words) for _ in range(3))
    phrase = _pick(rng, vocab.phrases)
    acronym = _pick(rng, vocab.acronyms)
    cat = _pick(rng, vocab.categories)
    shape = rng.randrange(6)
    if shape == 0:
        return f'"{phrase}" AND ({w1} OR {w2})'
    if shape == 1:
        return f"title:{w1} AND NOT {w2}"
    if shape == 2:
        return f'cat:{cat} AND abstract:"{phrase}"'
    if shape == 3:
        return f'({acronym} OR "{phrase}") NOT title:{w3}'
    if shape == 4:
        author = rng.choice(vocab.authors)
        return f'author:"{author}" OR title:{_quoted(w1)}'
    return f"{w1} {w2} OR cat:{cat}"


def generate(papers: Sequence[Paper], count: int, *, seed: int = 42) -> list[dict[str, Any]]:
    """`count` profiles as subscribers.toml tables (dicts), deterministic for (papers, seed)."""
    vocab = vocabulary(papers)
    rng = random.Random(seed)
    profiles: list[dict[str, Any]] = []
    for i in range(count):
        first = rng.choice(FIRST_NAMES)
        profile: dict[str, Any] = {"email": f"reader{i:05d}@example.org", "name": f"{first} Reader{i}"}
        if rng.random() < 0.01:
            profile["all"] = True
            profile["max_papers"] = rng.randint(5, 50)
            profiles.append(profile)
            continue
        keywords = list(dict.fromkeys(_keyword(rng, vocab) for _ in range(rng.randint(3, 15))))
        profile["keywords"] = [k for k in keywords if compile_term(k) is not None]
        if rng.random() < 0.3:
            profile["exclude"] = sorted({_pick(rng, vocab.words) for _ in range(rng.randint(1, 3))})
        if rng.random() < 0.3 and vocab.authors:
            names = rng.sample(vocab.authors, rng.randint(1, 4))
            profile["authors"] = [_initials(n) if rng.random() < 0.3 else n for n in names]
        if rng.random() < 0.4:
            profile["categories"] = sorted({_pick(rng, vocab.categories) for _ in range(rng.randint(1, 3))})
        if rng.random() < 0.05:
            profile["query"] = _query(rng, vocab)
        if rng.random() < 0.03:
            profile["sources"] = [rng.choice(SOURCES)]
        profile["max_papers"] = rng.randint(5, 50)
        if rng.random() < 0.2:
            profile["feed"] = True
        profiles.append(profile)
    return profiles


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(profiles: Sequence[dict[str, Any]]) -> str:
    lines = ["# Synthetic subscribers generated by bench/scenario.py; not real people.", ""]
    for profile in profiles:
        lines.append("[[subscribers]]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in profile.items()]
        lines.append("")
    return "\n".join(lines)


def write_toml(profiles: Sequence[dict[str, Any]], path: Path) -> Path:
    path.write_text(to_toml(profiles), encoding="utf-8")
    return path
