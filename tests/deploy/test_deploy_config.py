"""The deploy settings: defaults, list values from every source, and errors that say what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from qactuar.cli import build_parser
from qactuar.config import Config, ConfigError, load_config, text_list


def test_defaults() -> None:
    config = Config()
    assert (config.DEPLOY_TIMEOUT, config.DEPLOY_MAX_BYTES, config.DEPLOY_KEEP_RELEASES) == (
        120.0,
        200 << 20,
        3,
    )
    assert (config.DEPLOY_ALLOWED_SCHEMES, config.DEPLOY_ALLOWED_HOSTS) == (["https"], [])


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("file,https", ["file", "https"]),
        (" file , https ", ["file", "https"]),
        ('["file", "https"]', ["file", "https"]),
        ("['https']", ["https"]),
        ("[]", []),
        ("", []),
    ],
)
def test_text_list(text: str, items: list[str]) -> None:
    assert text_list(text) == items


def test_lists_from_file_environment_and_command_line(tmp_path: Path) -> None:
    (tmp_path / "qactuar.toml").write_text(
        'deploy_allowed_schemes = ["file"]\ndeploy_allowed_hosts = ["a.example"]\n'
    )
    config = load_config(cwd=str(tmp_path), env={"QACTUAR_DEPLOY_ALLOWED_HOSTS": "git.example,b.example"})
    assert config.DEPLOY_ALLOWED_SCHEMES == ["file"]
    assert config.DEPLOY_ALLOWED_HOSTS == ["git.example", "b.example"]
    parsed = build_parser().parse_args(["serve", "--deploy-allowed-schemes", "https,ssh"])
    assert parsed.DEPLOY_ALLOWED_SCHEMES == ["https", "ssh"]


@pytest.mark.parametrize(
    ("env", "allowed"),
    [
        ({"QACTUAR_DEPLOY_ALLOWED_SCHEMES": "https,ext"}, "a list of git URL schemes from https, http, ssh"),
        ({"QACTUAR_DEPLOY_ALLOWED_HOSTS": "good.example,bad host"}, "a list of host names"),
        ({"QACTUAR_DEPLOY_KEEP_RELEASES": "0"}, "an integer >= 1"),
        ({"QACTUAR_DEPLOY_TIMEOUT": "0"}, "a number of seconds > 0"),
    ],
)
def test_bad_values_name_what_is_allowed(tmp_path: Path, env: dict[str, str], allowed: str) -> None:
    with pytest.raises(ConfigError, match="expected " + allowed):
        load_config(cwd=str(tmp_path), env=env)
