"""Read what a reader says they like: an arXiv id, an arXiv or Hugging Face URL, or a DOI.

Every reference becomes one canonical key, so the same paper given two ways ("2411.01234v2" and
"https://arxiv.org/pdf/2411.01234") is one liked paper: `arxiv:<bare id>` (no version, old-style
ids without their subject class) or `doi:<lower-cased DOI>`. arXiv's own DOIs
(10.48550/arXiv.NNNN) are arXiv ids. Pure: no network.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

# New-style ids (0704.0001 onwards: 4+4 digits until 2014, 4+5 since) and old-style ones
# ("hep-ph/9912567", also written with a subject class, "math.GT/0309136").
_NEW_ID = r"(?P<new>\d{4}\.\d{4,5})"
_OLD_ID = r"(?P<archive>[a-z]+(?:-[a-z]+)?)(?:\.[A-Za-z]{2})?/(?P<number>\d{7})"
_ID = rf"(?:{_NEW_ID}|{_OLD_ID})(?:v(?P<version>\d+))?"
_ID_RE = re.compile(rf"^(?:arxiv:)?{_ID}$", re.IGNORECASE)
_DOI_RE = re.compile(r"^(?:doi:\s*)?(?P<doi>10\.\d{4,9}/\S+)$", re.IGNORECASE)
_ARXIV_DOI_RE = re.compile(r"^10\.48550/arxiv\.(?P<id>.+)$", re.IGNORECASE)
_ARXIV_HOSTS = frozenset(
    {"arxiv.org", "www.arxiv.org", "export.arxiv.org", "alphaxiv.org", "www.alphaxiv.org"}
)
_HF_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})
_DOI_HOSTS = frozenset({"doi.org", "dx.doi.org", "www.doi.org"})
_ARXIV_PATHS = ("abs", "pdf", "html", "format", "overview")
_MAX_LENGTH = 500  # a reference longer than this is not one


def like_key(ref: str) -> str:
    """The canonical key of a liked-paper reference: "arxiv:2411.01234", "arxiv:hep-ph/9912567"
    or "doi:10.1145/3292500.3330701". Raises ValueError with a one-line reason for anything else."""
    text = ref.strip() if isinstance(ref, str) else ""
    if not text:
        raise ValueError("an empty reference; give an arXiv id, an arXiv or Hugging Face URL, or a DOI")
    if len(text) > _MAX_LENGTH:
        raise ValueError(f"a reference of {len(text)} characters is too long to be a paper id or URL")
    key = _from_id(text) or _from_doi(text) or _from_url(text)
    if key is None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(
            f"cannot read {shown!r} as a paper: give an arXiv id (2411.01234), an arxiv.org/abs or "
            "/pdf URL, a huggingface.co/papers URL, or a DOI (10.xxxx/...)"
        )
    return key


def arxiv_id_of(key: str) -> str | None:
    """The bare arXiv id of a canonical key ("arxiv:2411.01234" -> "2411.01234"), else None."""
    if key.startswith("arxiv:"):
        return key.removeprefix("arxiv:")
    return None


def try_like_key(ref: str) -> str | None:
    """`like_key`, or None for a reference it cannot read."""
    try:
        return like_key(ref)
    except ValueError:
        return None


def _from_id(text: str) -> str | None:
    found = _ID_RE.match(text)
    if found is None:
        return None
    if found["new"]:
        return f"arxiv:{found['new']}"
    return f"arxiv:{found['archive'].lower()}/{found['number']}"


def _from_doi(text: str) -> str | None:
    found = _DOI_RE.match(text)
    if found is None:
        return None
    doi = found["doi"].rstrip(".,;")
    arxiv = _ARXIV_DOI_RE.match(doi)
    if arxiv is not None:
        return _from_id(arxiv["id"])
    return f"doi:{doi.lower()}"


def _from_url(text: str) -> str | None:
    if "://" not in text:
        text = "https://" + text  # "arxiv.org/abs/..." as people paste it
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    segments = [s for s in unquote(parts.path).split("/") if s]
    if host in _DOI_HOSTS and segments:
        return _from_doi("/".join(segments))
    if host in _HF_HOSTS and len(segments) >= 2 and segments[0] == "papers":
        return _from_id(segments[1])
    if host in _ARXIV_HOSTS and len(segments) >= 2 and segments[0] in _ARXIV_PATHS:
        rest = "/".join(segments[1:])
        rest = rest.removesuffix(".pdf")
        return _from_id(rest)
    return None
