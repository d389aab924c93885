"""The command line and qactuar.run(): argv -> Config handed to run_server (a fake here), exit codes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import qactuar
import qactuar.process
from qactuar import cli
from qactuar.cli import OPTIONS, build_parser, main
from qactuar.config import Config, ConfigError
from qactuar.types import Receive, Scope, Send

EXIT_CODE = 7  # what the fake run_server returns, to show main() passes it on


@dataclass
class Served:
    """What the fake run_server saw, in call order with configure_logging."""

    calls: list[str] = field(default_factory=list)
    configs: list[Config] = field(default_factory=list)
    apps: list[Any] = field(default_factory=list)
    reloaders: list[Callable[[], Config] | None] = field(default_factory=list)

    @property
    def config(self) -> Config:
        [config] = self.configs
        return config


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """Run in an empty tmp_path with no QACTUAR_* variables; record instead of serving or logging."""
    record = Served()

    def run_server(config: Config, app: Any = None, reload_config: Callable[[], Config] | None = None) -> int:
        record.calls.append("run_server")
        record.configs.append(config)
        record.apps.append(app)
        record.reloaders.append(reload_config)
        return EXIT_CODE

    def configure_logging(config: Config) -> None:
        record.calls.append("configure_logging")

    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("QACTUAR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(qactuar.process, "run_server", run_server, raising=False)
    monkeypatch.setattr(cli, "configure_logging", configure_logging)
    monkeypatch.setattr(qactuar, "configure_logging", configure_logging)
    yield record


def serve(served: Served, *argv: str) -> Config:
    assert main(list(argv)) == EXIT_CODE
    return served.config


# --- forms -------------------------------------------------------------------------------------------------


def test_serve_app(served: Served) -> None:
    config = serve(served, "serve", "site.main:app")
    assert config.APPS == {"/": "site.main:app"}
    assert served.calls == ["configure_logging", "run_server"]


def test_seed_short_form(served: Served) -> None:
    config = serve(served, "site.main:app", "--port", "9000")
    assert (config.APPS, config.PORT) == ({"/": "site.main:app"}, 9000)


def test_bare_command_serves_qactuar_toml(served: Served, tmp_path: Path) -> None:
    (tmp_path / "qactuar.toml").write_text('port = 9001\n[apps]\n"/api" = "api:app"\n')
    config = serve(served)
    assert (config.APPS, config.PORT) == ({"/api": "api:app"}, 9001)
    assert str(tmp_path / "qactuar.toml") == config.CONFIG_FILE


def test_bare_command_with_flags(served: Served) -> None:
    assert serve(served, "--port", "9002", "--mode", "async").MODE == "async"


def test_app_replaces_file_apps_and_other_settings_still_layer(served: Served, tmp_path: Path) -> None:
    (tmp_path / "qactuar.toml").write_text('port = 9003\nworkers = 3\n[apps]\n"/api" = "api:app"\n')
    config = serve(served, "serve", "main:app", "--workers", "5")
    assert (config.APPS, config.PORT, config.WORKERS) == ({"/": "main:app"}, 9003, 5)


def test_config_flag(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "conf" / "site.json"
    path.parent.mkdir()
    path.write_text('{"PORT": 9004, "APP_DIR": "apps"}')
    config = serve(served, "--config", "conf/site.json")
    assert (9004, str(path)) == (config.PORT, config.CONFIG_FILE)
    assert str(tmp_path / "conf" / "apps") == config.APP_DIR


def test_environment_sits_below_flags(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QACTUAR_PORT", "9005")
    monkeypatch.setenv("QACTUAR_HOST", "0.0.0.0")
    config = serve(served, "--port", "9006")
    assert (config.HOST, config.PORT) == ("0.0.0.0", 9006)


def test_flags_not_typed_leave_lower_layers_alone(served: Served, tmp_path: Path) -> None:
    (tmp_path / "qactuar.toml").write_text("port = 9007\naccess_log = false\nuse_uvloop = false\n")
    config = serve(served, "app:app")
    assert (config.PORT, config.ACCESS_LOG, config.USE_UVLOOP) == (9007, False, False)


# --- mounts ------------------------------------------------------------------------------------------------


def test_mount_adds_to_file_apps(served: Served, tmp_path: Path) -> None:
    (tmp_path / "qactuar.toml").write_text('[apps]\n"/" = "site:app"\n')
    config = serve(served, "--mount", "/api=api.main:app", "--mount", "/blog=blog:make()")
    assert config.APPS == {"/": "site:app", "/api": "api.main:app", "/blog": "blog:make()"}


def test_mount_with_app(served: Served) -> None:
    config = serve(served, "serve", "main:app", "--mount", "/api=api:app")
    assert config.APPS == {"/": "main:app", "/api": "api:app"}


def test_mount_needs_route_and_app(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--mount", "api:app"]) == 2
    assert "'api:app' is not ROUTE=MODULE:ATTR" in capsys.readouterr().err
    assert served.calls == []


# --- flags -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "field_name", "value"),
    [
        (["--access-log"], "ACCESS_LOG", True),
        (["--no-access-log"], "ACCESS_LOG", False),
        (["--reload"], "RELOAD", True),
        (["--no-reload"], "RELOAD", False),
        (["--uvloop"], "USE_UVLOOP", True),
        (["--no-uvloop"], "USE_UVLOOP", False),
        (["--no-use-uvloop"], "USE_UVLOOP", False),
        (["-u"], "USE_UVLOOP", True),
        (["--factory"], "FACTORY", True),
        (["-p", "9010"], "PORT", 9010),
        (["--workers", "4"], "WORKERS", 4),
        (["--process-pool-size", "3"], "WORKERS", 3),
        (["--mode", "postfork"], "MODE", "postfork"),
        (["-s", "simple_fork"], "MODE", "postfork"),
        (["--server-type", "async_only"], "MODE", "async"),
        (["--request-timeout", "2.5"], "REQUEST_TIMEOUT", 2.5),
        (["--lifespan", "off"], "LIFESPAN", "off"),
        (["--log-level", "debug"], "LOG_LEVEL", "debug"),
        (["--root-path", "/prefix"], "ROOT_PATH", "/prefix"),
    ],
)
def test_flag_sets_field(served: Served, argv: list[str], field_name: str, value: Any) -> None:
    assert getattr(serve(served, "app:app", *argv), field_name) == value


def test_path_flags_resolve_against_the_working_directory(served: Served, tmp_path: Path) -> None:
    config = serve(served, "-a", "src", "--ssl-cert-path", "c.pem", "--ssl-cert-key", "k.pem")
    assert str(tmp_path / "src") == config.APP_DIR
    assert (str(tmp_path / "c.pem"), str(tmp_path / "k.pem")) == (config.SSL_CERT_PATH, config.SSL_KEY_PATH)


def test_every_field_but_logs_apps_and_config_file_has_one_option() -> None:
    fields = {f.name for f in dataclasses.fields(Config)}
    named = [option.field for option in OPTIONS]
    assert sorted(named) == sorted(fields - {"LOGS", "APPS", "CONFIG_FILE"})


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.field)
def test_each_option_parses_into_its_field(option: cli.Option) -> None:
    default = getattr(Config(), option.field)
    flag = f"--{option.field.lower().replace('_', '-')}"
    argv = ["serve", flag] if isinstance(default, bool) else ["serve", flag, str(default)]
    parsed = vars(build_parser().parse_args(argv))
    assert parsed[option.field] == (True if isinstance(default, bool) else default)


def test_untyped_flags_are_absent_from_the_namespace() -> None:
    parsed = vars(build_parser().parse_args(["serve", "--port", "1"]))
    assert {name for name in parsed if name.isupper()} == {"PORT"}


def test_bad_choice_is_a_usage_error(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--mode", "threads"]) == 2
    assert "invalid choice: 'threads'" in capsys.readouterr().err


# --- version, help, errors ---------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"qactuar {qactuar.__version__}\n"


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["app:app", "-h"]])
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 0
    assert "usage: qactuar" in capsys.readouterr().out


def test_bad_config_exits_2_with_one_line(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "qactuar.toml").write_text("port = 70000\n")
    assert main(["app:app"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"qactuar: error: config file {tmp_path / 'qactuar.toml'}, key 'port': "
        "70000 is not allowed for PORT; expected an integer from 0 to 65535 (0 picks a free port)\n"
    )
    assert served.calls == []


def test_bad_app_argument(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "not an app"]) == 2
    assert capsys.readouterr().err.startswith(
        "qactuar: error: command line APP argument: APPS app 'not an app'"
    )


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qactuar", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"qactuar {qactuar.__version__}\n")


def test_python_dash_m_bad_config(tmp_path: Path) -> None:
    (tmp_path / "qactuar.toml").write_text("mode = 'threads'\n")
    result = subprocess.run(
        [sys.executable, "-m", "qactuar"], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("qactuar: error: config file ")
    assert "Traceback" not in result.stderr


# --- qactuar.run() -----------------------------------------------------------------------------------------


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for a user's app; never called here."""


def test_run_passes_a_callable_app_through(served: Served) -> None:
    assert qactuar.run(asgi_app, port=9100) == EXIT_CODE
    assert served.apps == [asgi_app]
    assert (served.config.PORT, served.config.APPS) == (9100, {})
    assert served.calls == ["configure_logging", "run_server"]


def test_run_with_an_app_string(served: Served) -> None:
    qactuar.run("site:app")
    assert served.apps == [None]
    assert served.config.APPS == {"/": "site:app"}


def test_run_arguments_beat_every_other_layer(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "qactuar.toml").write_text("port = 1\nhost = 'h1'\nworkers = 1\nmax_processes = 1\n")
    monkeypatch.setenv("QACTUAR_PORT", "2")
    monkeypatch.setenv("QACTUAR_WORKERS", "2")
    conf = Config(HOST="h3", MAX_PROCESSES=3, GRACEFUL_TIMEOUT=3.0)
    qactuar.run(asgi_app, host="h4", port=9101, conf=conf, MAX_PROCESSES=4)
    config = served.config
    assert (config.HOST, config.PORT, config.WORKERS, config.MAX_PROCESSES) == ("h4", 9101, 2, 4)
    assert config.GRACEFUL_TIMEOUT == 3.0


def test_run_raises_config_error(served: Served) -> None:
    with pytest.raises(ConfigError, match=r"^qactuar\.run\(\) argument port: 70000 is not allowed for PORT"):
        qactuar.run(asgi_app, port=70000)
    assert served.calls == []


def test_package_exports() -> None:
    assert sorted(qactuar.__all__) == ["Config", "ConfigError", "__version__", "run"]


def test_serve_hands_over_a_reloader_that_rereads_the_file(served: Served, tmp_path: Path) -> None:
    config_file = tmp_path / "qactuar.toml"
    config_file.write_text('port = 8100\n[apps]\n"/" = "hello:app"\n')
    assert main(["serve", "--workers", "3"]) == EXIT_CODE
    reload_config = served.reloaders[0]
    assert reload_config is not None
    config_file.write_text('port = 8200\n[apps]\n"/" = "hello:app"\n"/x" = "x:app"\n')
    fresh = reload_config()
    assert fresh.PORT == 8200 and fresh.WORKERS == 3  # the file is re-read, the command line still applies
    assert fresh.APPS == {"/": "hello:app", "/x": "x:app"}


def test_closed_stdout_is_a_quiet_exit(tmp_path: Path) -> None:
    """`qactuar ... | head`: the reader leaves early; no traceback, exit status 141 like Unix tools."""
    script = (
        "import sys\n"
        "from qactuar import cli\n"
        "def chatty(args):\n"
        "    for n in range(200000):\n"
        "        print('line', n)\n"
        "    return 0\n"
        "cli.COMMANDS['status'] = lambda parser: chatty\n"
        "sys.exit(cli.main(['status']))\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    assert writer.stdout is not None and writer.stderr is not None
    assert writer.stdout.readline().startswith(b"line 0")
    writer.stdout.close()
    assert writer.wait(30) == 141
    with writer.stderr:
        assert b"Traceback" not in writer.stderr.read()
