"""Fixtures shared by every test module. Module-specific fixtures live in their test files."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
ARXIV_ALL = DATA / "arxiv_rss_2024-11-28_all.xml"
ARXIV_TRIMMED = DATA / "arxiv_rss_2024-11-28_trimmed.xml"
HF_DAY = DATA / "hf_daily_papers_2026-06-12.json"


@pytest.fixture
def data_dir() -> Path:
    return DATA
