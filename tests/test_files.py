"""core/files.py: the atomic write every stage uses, and the clean-up after a killed one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from digest.core.files import remove_leftovers, write_atomic


def test_a_write_is_whole_with_the_mode_asked_for(tmp_path: Path) -> None:
    target = tmp_path / "site" / "feed.xml"
    write_atomic(target, "<rss>é</rss>\n")
    assert target.read_text(encoding="utf-8") == "<rss>é</rss>\n"
    assert target.stat().st_mode & 0o777 == 0o644
    write_atomic(tmp_path / "key", b"secret\n", mode=0o600)
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["feed.xml", "key"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "feed.xml"
    target.write_text("old")

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["feed.xml"]


def test_leftovers_of_a_killed_write_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "feeds").mkdir()
    keep = [tmp_path / "index.html", tmp_path / "feeds" / "abc.xml", tmp_path / ".well-known.txt"]
    gone = [tmp_path / ".index.html.k3j2.tmp", tmp_path / "feeds" / ".abc.xml.x9.tmp"]
    for path in keep + gone:
        path.write_text("x")
    assert remove_leftovers(tmp_path) == 2
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(keep)
    assert remove_leftovers(tmp_path / "missing") == 0
