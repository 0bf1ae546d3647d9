"""Where the shipped templates come from: package data in a wheel, templates/ in a checkout."""

from __future__ import annotations

import zipfile
from pathlib import Path

import jinja2
import pytest

from digest.render import templating
from digest.render.templating import make_env, shipped_templates

ROOT = Path(__file__).resolve().parent.parent


def test_a_source_checkout_reads_the_templates_at_the_top_of_the_repository() -> None:
    assert not (ROOT / "digest" / "templates").exists()  # else this test says nothing
    assert Path(str(shipped_templates())) == ROOT / "templates"
    assert "digest.mjml.j2" in make_env().list_templates()


def test_an_installed_wheel_reads_its_package_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The wheel's layout: pyproject.toml force-includes templates/ as digest/templates.
    package = tmp_path / "digest"
    (package / "templates").mkdir(parents=True)
    (package / "templates" / "digest.txt.j2").write_text("from the wheel {{ n }}")
    monkeypatch.setattr(templating.resources, "files", lambda name: package)
    assert shipped_templates() == package / "templates"
    assert make_env().get_template("digest.txt.j2").render(n=1) == "from the wheel 1"


def test_a_zipped_install_reads_its_package_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "digest.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("digest/templates/digest.txt.j2", "zipped {{ n }}")
    package = zipfile.Path(archive, "digest/")
    monkeypatch.setattr(templating.resources, "files", lambda name: package)
    env = make_env()
    assert env.get_template("digest.txt.j2").render(n=2) == "zipped 2"
    assert env.list_templates() == ["digest.txt.j2"]


def test_user_templates_override_the_shipped_ones_by_name(tmp_path: Path) -> None:
    (tmp_path / "digest.txt.j2").write_text("mine")
    env = make_env(tmp_path)
    assert env.get_template("digest.txt.j2").render() == "mine"
    assert env.get_template("digest.mjml.j2").filename == str(ROOT / "templates" / "digest.mjml.j2")


@pytest.mark.parametrize("name", ["../pyproject.toml", "/etc/passwd", "a/../../x", "nope.j2"])
def test_names_outside_the_shipped_templates_are_not_found(name: str) -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        make_env().get_template(name)
