"""Configuration: file + environment, secrets, every problem reported with where it is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from digest.config import load_settings, signing_key
from digest.core.errors import ConfigError

ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray ./digest.toml or .env


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(text)
    return path


def test_no_file_means_defaults_with_hugging_face() -> None:
    settings = load_settings(None)
    assert [(s.name, s.kind) for s in settings.sources] == [("hf", "hf_daily")]
    assert settings.transport == "outbox"
    assert settings.schedule.cron == "0 7 * * 1-5"


def test_example_config_loads_and_paths_are_relative_to_the_file() -> None:
    settings = load_settings(ROOT / "digest.example.toml")
    assert [s.name for s in settings.sources] == ["hf", "arxiv"]
    assert settings.state.path == ROOT / "state" / "digest.sqlite3"


def test_config_found_by_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text("[output]\nfeed_days = 3\n")
    write(tmp_path, "[output]\nfeed_days = 5\n")
    assert load_settings(None).output.feed_days == 5
    monkeypatch.setenv("DIGEST_CONFIG", str(other))
    assert load_settings(None).output.feed_days == 3


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[smtp]\nhost = "file.example.org"\nport = 25\n')
    monkeypatch.setenv("DIGEST_SMTP__HOST", "env.example.org")
    settings = load_settings(path)
    assert settings.smtp.host == "env.example.org"
    assert settings.smtp.port == 25
    assert settings.transport == "smtp"


def test_every_problem_at_once_with_file_line_key_and_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[state]
path = "s.sqlite3"

[[sources]]
kind = "hf_daily"
url = "https://huggingface.co/api/daily_papers"

[[sources]]
kind = "rss"
url = "ftp://example.org/feed"
bogus = 1

[smtpp]
host = "x"
""",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = info.value.problems
    text = "\n".join(problems)
    assert f"{path}:9: sources[1].kind" in text and "hf_daily" in text  # names the allowed kinds
    assert f"{path}:10: sources[1].url" in text and "https://" in text
    assert f"{path}:11: sources[1].bogus: unknown key" in text
    assert f"{path}:13: smtpp: unknown key" in text
    assert len(problems) == 4


def test_duplicate_source_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[sources]]\nkind = "feed"\nurl = "https://a.example/f"\n\n'
        '[[sources]]\nkind = "feed"\nurl = "https://b.example/f"\n',
    )
    with pytest.raises(ConfigError, match="duplicate source name feed"):
        load_settings(path)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[state]\npath = "unterminated\n')
    with pytest.raises(ConfigError, match=rf"{path}:2: invalid TOML"):
        load_settings(path)


def test_password_in_file_is_refused_and_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nhost = "localhost"\npassword = "hunter2"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "DIGEST_SMTP__PASSWORD" in str(info.value)
    assert "hunter2" not in "\n".join(info.value.problems)


def test_secrets_from_environment_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SMTP__PASSWORD", "hunter2")
    monkeypatch.setenv("DIGEST_SECRET", "s3cret-key")
    settings = load_settings(None)
    assert settings.smtp.password is not None and settings.smtp.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert "s3cret-key" not in repr(settings)
    assert signing_key(settings) == b"s3cret-key"


def test_secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "DIGEST_SECRET").write_text("from-a-file")
    monkeypatch.setenv("DIGEST_SECRETS_DIR", str(secrets))
    assert signing_key(load_settings(None)) == b"from-a-file"


def test_generated_secret_is_kept_and_announced(tmp_path: Path) -> None:
    path = write(tmp_path, '[state]\npath = "state/d.sqlite3"\n')
    settings = load_settings(path)
    notices: list[str] = []
    first = signing_key(settings, notice=notices.append)
    assert len(notices) == 1 and "DIGEST_SECRET" in notices[0]
    assert signing_key(settings, notice=notices.append) == first
    assert len(notices) == 1
    assert (tmp_path / "state" / "secret.key").stat().st_mode & 0o777 == 0o600


def test_insecure_smtp_refused_off_loopback(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nhost = "mail.example.org"\nsecurity = "none"\n')
    with pytest.raises(ConfigError, match="allow_insecure"):
        load_settings(path)
    write(tmp_path, '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\n')
    assert load_settings(path).smtp.security == "none"


def test_bad_timezone(tmp_path: Path) -> None:
    path = write(tmp_path, '[schedule]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match=r"digest.toml:2: schedule.timezone: .*IANA"):
        load_settings(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.toml")


def test_template_folder_and_ca_file_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path, '[templates]\ndir = "mine"\n\n[smtp]\nca_file = "ca.pem"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.problems == [
        f"{path}:2: templates.dir: no such folder {tmp_path / 'mine'}",
        f"{path}:5: smtp.ca_file: no such file {tmp_path / 'ca.pem'}",
    ]
    (tmp_path / "mine").mkdir()
    (tmp_path / "ca.pem").write_text("x")
    assert load_settings(path).templates.dir == tmp_path / "mine"


def test_secrets_dir_sets_nested_keys_like_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "DIGEST_SMTP__PASSWORD").write_text("hunter2\n")
    monkeypatch.setenv("DIGEST_SECRETS_DIR", str(secrets))
    settings = load_settings(write(tmp_path, '[smtp]\nhost = "mail.example.org"\nusername = "u"\n'))
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "hunter2"


@pytest.mark.parametrize("where", ["missing", "a file"])
def test_a_secrets_dir_that_is_not_a_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    target = tmp_path / "nope"
    if where == "a file":
        target.write_text("x")
    monkeypatch.setenv("DIGEST_SECRETS_DIR", str(target))
    with pytest.raises(ConfigError, match=r"^environment: DIGEST_SECRETS_DIR='.*nope': "):
        load_settings(None)


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_digest_secret_is_refused_not_used_as_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # a GitHub Action's ${{ secrets.DIGEST_SECRET }} is "" when the secret is not defined
    monkeypatch.setenv("DIGEST_SECRET", value)
    with pytest.raises(
        ConfigError, match=r"environment DIGEST_SECRET: secret: DIGEST_SECRET is set but empty"
    ):
        load_settings(None)


def test_a_bad_value_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SMTP__PORT", "abc")
    with pytest.raises(ConfigError, match=r"^environment DIGEST_SMTP__PORT: smtp.port: "):
        load_settings(write(tmp_path, "[smtp]\nport = 2525\n"))


def test_a_list_from_the_environment_that_is_not_json_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SOURCES", "garbage")
    with pytest.raises(ConfigError, match=r"^environment: DIGEST_SOURCES: not valid JSON"):
        load_settings(None)


def test_a_dotenv_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"X=1\n\xff\n")
    with pytest.raises(ConfigError, match=r"^\.env: not UTF-8"):
        load_settings(None)


@pytest.mark.parametrize(
    ("smtp", "port"),
    [
        ("", 587),
        ('security = "starttls"', 587),
        ('security = "tls"', 465),
        ('security = "tls"\nport = 2465', 2465),
    ],
)
def test_the_smtp_port_follows_the_security_unless_given(tmp_path: Path, smtp: str, port: int) -> None:
    settings = load_settings(write(tmp_path, f'[smtp]\nhost = "mail.example.org"\n{smtp}\n'))
    assert settings.smtp.port_number == port


def test_a_dry_run_key_is_not_written(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[state]\npath = "state/digest.sqlite3"\n'))
    assert signing_key(settings, keep=False) != signing_key(settings, keep=False)  # made for once
    assert not (tmp_path / "state" / "secret.key").exists()


def test_a_file_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_bytes("\ufeff[smtp]\nport = 2525\n".encode())
    assert load_settings(path).smtp.port_number == 2525


def test_a_path_from_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = load_settings(write(tmp_path, '[state]\npath = "~/digest/state.sqlite3"\n'))
    assert settings.state.path == tmp_path / "home" / "digest" / "state.sqlite3"


def test_a_bad_value_from_dotenv_or_the_secrets_dir_names_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path, "[smtp]\nport = 2525\n")
    (tmp_path / ".env").write_text("DIGEST_SMTP__PORT=abc\n")
    with pytest.raises(ConfigError, match=r"^\.env: DIGEST_SMTP__PORT: smtp.port: "):
        load_settings(config)
    (tmp_path / ".env").unlink()
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "DIGEST_SECRET").write_text("")
    monkeypatch.setenv("DIGEST_SECRETS_DIR", str(secrets))
    with pytest.raises(
        ConfigError, match=r"run-secrets/DIGEST_SECRET \(DIGEST_SECRETS_DIR\): secret: .* empty"
    ):
        load_settings(config)
    (secrets / "DIGEST_SECRET").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"run-secrets/DIGEST_SECRET: not UTF-8"):
        load_settings(config)


@pytest.mark.parametrize(("section", "problem"), [
    ('[schedule]\ncron = "0 7 31 2 *"', "never fires"),  # 31 February
    ('[delivery]\nsubject = "  "', "the subject is empty"),
])  # fmt: skip
def test_a_schedule_that_never_fires_and_a_blank_subject_are_refused(
    tmp_path: Path, section: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(write(tmp_path, section + "\n"))


def test_an_unsubscribe_url_with_a_fragment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fragment"):
        load_settings(write(tmp_path, '[delivery]\nunsubscribe_url = "https://example.org/u#top"\n'))


def test_a_secret_in_the_file_is_reported_on_its_line_with_every_other_problem(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nhost = "localhost"\npassword = "hunter2"\n\n[fetch]\nretrys = 1\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{path}:3: [smtp] password: secrets are not read from the file")
    assert any(p.startswith(f"{path}:6: fetch.retrys") for p in problems[1:]), problems
    assert "hunter2" not in "\n".join(problems)
