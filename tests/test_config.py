"""Config loading: layers, files, paths, and one clear error for every way a setting can be wrong."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from qactuar.config import Config, ConfigError, is_app_string, load_config, route_problem
from qactuar.logs import default_log_config


def load(tmp_path: Path, **kwargs: Any) -> Config:
    """load_config isolated from the real environment and working directory."""
    kwargs.setdefault("env", {})
    kwargs.setdefault("cwd", str(tmp_path))
    return load_config(**kwargs)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error(tmp_path: Path, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **kwargs)
    return str(caught.value)


# --- sources and precedence --------------------------------------------------------------------------------


def test_no_sources_gives_defaults_with_absolute_paths(tmp_path: Path) -> None:
    config = load(tmp_path)
    defaults = Config()
    assert config.PORT == defaults.PORT
    assert config.MODE == "prefork"
    assert default_log_config() == config.LOGS
    assert config.CONFIG_FILE == ""
    assert str(tmp_path) == config.APP_DIR
    assert str(tmp_path / ".qactuar") == config.STATE_DIR
    assert config.ADMIN_TOKEN_FILE == ""


def test_qactuar_toml_in_working_directory_is_found(tmp_path: Path) -> None:
    path = write(tmp_path / "qactuar.toml", 'port = 9001\n[apps]\n"/" = "site:app"\n')
    config = load(tmp_path)
    assert config.PORT == 9001
    assert config.APPS == {"/": "site:app"}
    assert str(path) == config.CONFIG_FILE


def test_qactuar_config_env_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "qactuar.toml", "port = 1\n")
    path = write(tmp_path / "conf" / "site.json", '{"PORT": 9002}')
    config = load(tmp_path, env={"QACTUAR_CONFIG": "conf/site.json"})
    assert config.PORT == 9002
    assert str(path) == config.CONFIG_FILE


def test_config_file_argument_beats_env(tmp_path: Path) -> None:
    write(tmp_path / "env.toml", "port = 1\n")
    path = write(tmp_path / "cli.toml", "port = 9003\n")
    config = load(tmp_path, config_file="cli.toml", env={"QACTUAR_CONFIG": "env.toml"})
    assert (9003, str(path)) == (config.PORT, config.CONFIG_FILE)


@pytest.mark.parametrize(
    ("kwargs", "source"),
    [
        ({"config_file": "missing.toml"}, "command line --config"),
        ({"env": {"QACTUAR_CONFIG": "missing.toml"}}, "environment variable QACTUAR_CONFIG"),
    ],
)
def test_named_config_file_must_exist(tmp_path: Path, kwargs: dict[str, Any], source: str) -> None:
    message = error(tmp_path, **kwargs)
    assert message.startswith(source)
    assert str(tmp_path / "missing.toml") in message


LAYERS: list[tuple[str, dict[str, Any]]] = [
    ("file", {}),
    ("env", {"env": {"QACTUAR_PORT": "8002"}}),
    ("cli", {"cli": {"PORT": 8003}}),
    ("run", {"overrides": {"PORT": 8004}}),
]


@pytest.mark.parametrize("top", range(len(LAYERS)))
def test_each_layer_beats_the_ones_below(tmp_path: Path, top: int) -> None:
    write(tmp_path / "qactuar.toml", "port = 8001\nhost = 'file-host'\n")
    kwargs: dict[str, Any] = {}
    for _, layer in LAYERS[: top + 1]:
        kwargs.update(layer)
    config = load(tmp_path, **kwargs)
    assert 8001 + top == config.PORT
    assert config.HOST == "file-host"  # set only in the file: every layer keeps it


def test_conf_sits_between_file_and_environment(tmp_path: Path) -> None:
    write(tmp_path / "qactuar.toml", "port = 8001\nworkers = 3\nhost = 'file-host'\n")
    conf = Config(PORT=8005, WORKERS=5)
    config = load(tmp_path, conf=conf, env={"QACTUAR_WORKERS": "7"})
    assert (config.HOST, config.PORT, config.WORKERS) == ("file-host", 8005, 7)


def test_a_loaded_config_given_as_conf_reads_the_same_file(tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere" / "site.toml", "port = 8006\n")
    loaded = load(tmp_path, config_file=str(path))
    again = load(tmp_path / "elsewhere", conf=loaded)
    assert again == loaded


def test_mounts_add_to_the_apps_below(tmp_path: Path) -> None:
    write(tmp_path / "qactuar.toml", '[apps]\n"/" = "site:app"\n"/api" = "api:app"\n')
    config = load(tmp_path, mounts={"/api": "api2:app", "/blog": "blog:app"})
    assert config.APPS == {"/": "site:app", "/api": "api2:app", "/blog": "blog:app"}


def test_cli_apps_replace_the_file_apps(tmp_path: Path) -> None:
    write(tmp_path / "qactuar.toml", '[apps]\n"/api" = "api:app"\n')
    config = load(tmp_path, cli={"APPS": {"/": "main:app"}}, mounts={"/blog": "blog:app"})
    assert config.APPS == {"/": "main:app", "/blog": "blog:app"}


# --- file formats ------------------------------------------------------------------------------------------

TOML = """
host = "0.0.0.0"
port = 8080
mode = "postfork"
max_processes = 20
request_timeout = 2
use_uvloop = false
log_level = "debug"

[apps]
"/" = "site.main:app"
"/api" = "api.factory:create_app()"

[logs]
version = 1
disable_existing_loggers = false
"""


def test_toml_file(tmp_path: Path) -> None:
    config = load(tmp_path, config_file=str(write(tmp_path / "site.toml", TOML)))
    assert (config.HOST, config.PORT, config.MODE, config.MAX_PROCESSES) == ("0.0.0.0", 8080, "postfork", 20)
    assert config.REQUEST_TIMEOUT == 2.0
    assert isinstance(config.REQUEST_TIMEOUT, float)
    assert config.USE_UVLOOP is False
    assert config.LOG_LEVEL == "debug"
    assert config.APPS == {"/": "site.main:app", "/api": "api.factory:create_app()"}
    assert config.LOGS == {"version": 1, "disable_existing_loggers": False}


def test_json_file_with_seed_keys(tmp_path: Path) -> None:
    seed = {"HOST": "localhost", "PORT": 8000, "ADMIN_PORT": 1987, "APPS": {"/": "tonberry_app:app"}}
    config = load(tmp_path, config_file=str(write(tmp_path / "seed.json", json.dumps(seed))))
    assert (config.HOST, config.PORT, config.ADMIN_PORT) == ("localhost", 8000, 1987)
    assert config.APPS == {"/": "tonberry_app:app"}


def test_either_case_is_accepted_in_both_formats(tmp_path: Path) -> None:
    assert load(tmp_path, config_file=str(write(tmp_path / "a.toml", "PORT = 1\n"))).PORT == 1
    assert load(tmp_path, config_file=str(write(tmp_path / "b.json", '{"port": 2}'))).PORT == 2


# --- paths -------------------------------------------------------------------------------------------------


def test_relative_paths_in_a_file_resolve_beside_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write(
        site / "qactuar.toml",
        'app_dir = "apps"\nstate_dir = "../state"\nssl_cert_path = "tls/cert.pem"\n'
        'ssl_key_path = "/etc/key.pem"\nadmin_socket = ""\n',
    )
    config = load(tmp_path / "elsewhere", config_file=str(site / "qactuar.toml"))
    assert str(site / "apps") == config.APP_DIR
    assert str(tmp_path / "state") == config.STATE_DIR
    assert str(site / "tls" / "cert.pem") == config.SSL_CERT_PATH
    assert config.SSL_KEY_PATH == "/etc/key.pem"
    assert config.ADMIN_SOCKET == ""


def test_defaulted_paths_sit_beside_the_config_file(tmp_path: Path) -> None:
    site = write(tmp_path / "site" / "qactuar.toml", "port = 1\n").parent
    config = load(tmp_path, config_file=str(site / "qactuar.toml"))
    assert str(site) == config.APP_DIR
    assert config.state_dir() == site / ".qactuar"
    assert config.admin_token_file() == site / ".qactuar" / "admin.token"


@pytest.mark.parametrize(
    "kwargs",
    [{"env": {"QACTUAR_APP_DIR": "code"}}, {"cli": {"APP_DIR": "code"}}, {"overrides": {"APP_DIR": "code"}}],
)
def test_relative_paths_elsewhere_resolve_against_the_working_directory(
    tmp_path: Path, kwargs: dict[str, Any]
) -> None:
    write(tmp_path / "site" / "qactuar.toml", "port = 1\n")
    config = load(tmp_path, config_file="site/qactuar.toml", **kwargs)
    assert str(tmp_path / "code") == config.APP_DIR


def test_admin_token_file_setting(tmp_path: Path) -> None:
    config = load(tmp_path, cli={"ADMIN_TOKEN_FILE": "secrets/token"})
    assert config.admin_token_file() == tmp_path / "secrets" / "token"


def test_layout_helpers_on_a_config_built_in_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Config().state_dir() == tmp_path / ".qactuar"
    assert Config(CONFIG_FILE="/srv/site/qactuar.toml").admin_token_file() == Path(
        "/srv/site/.qactuar/admin.token"
    )
    assert Config(STATE_DIR="/var/lib/q").admin_token_file() == Path("/var/lib/q/admin.token")


# --- environment -------------------------------------------------------------------------------------------


def test_environment_text_is_converted(tmp_path: Path) -> None:
    env = {
        "QACTUAR_PORT": "9100",
        "QACTUAR_REQUEST_TIMEOUT": "2.5",
        "QACTUAR_RELOAD": "yes",
        "QACTUAR_ACCESS_LOG": "off",
        "QACTUAR_USE_UVLOOP": "0",
        "QACTUAR_APPS": '{"/": "site:app"}',
        "QACTUAR_LOGS": '{"version": 1}',
        "QACTUAR_HOST": "::1",
    }
    config = load(tmp_path, env=env)
    assert (config.PORT, config.REQUEST_TIMEOUT, config.HOST) == (9100, 2.5, "::1")
    assert (config.RELOAD, config.ACCESS_LOG, config.USE_UVLOOP) == (True, False, False)
    assert config.APPS == {"/": "site:app"}
    assert config.LOGS == {"version": 1}


@pytest.mark.parametrize(
    ("name", "text", "allowed"),
    [
        ("PORT", "80a", "an integer from 0 to 65535"),
        ("RELOAD", "maybe", "true or false"),
        ("REQUEST_TIMEOUT", "soon", "a number of seconds > 0"),
        ("APPS", "{not json", "a table mapping route"),
        ("APPS", '["/"]', "a table mapping route"),
    ],
)
def test_environment_errors_name_the_variable(tmp_path: Path, name: str, text: str, allowed: str) -> None:
    message = error(tmp_path, env={f"QACTUAR_{name}": text})
    assert message.startswith(f"environment variable QACTUAR_{name}: ")
    assert repr(text) in message
    assert allowed in message


def test_unknown_environment_variable_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="Qactuar"):
        config = load(tmp_path, env={"QACTUAR_PROT": "1", "QACTUAR_PORT": "9200"})
    assert config.PORT == 9200
    assert "QACTUAR_PROT" in caplog.text
    assert "did you mean 'QACTUAR_PORT'?" in caplog.text


def test_config_file_cannot_be_set_from_the_environment(tmp_path: Path) -> None:
    message = error(tmp_path, env={"QACTUAR_CONFIG_FILE": "x.toml"})
    assert "CONFIG_FILE is set by the loader" in message
    assert "QACTUAR_CONFIG" in message


# --- old keys ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "ignored"), [("SELECT_SLEEP_TIME", 0.025), ("RECV_TIMEOUT", 0.001), ("select_sleep_time", "x")]
)
def test_polling_keys_are_ignored_with_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, key: str, ignored: Any
) -> None:
    path = write(tmp_path / "seed.json", json.dumps({key: ignored, "PORT": 9300}))
    with caplog.at_level(logging.WARNING, logger="Qactuar"):
        config = load(tmp_path, config_file=str(path))
    assert config.PORT == 9300
    [record] = [r for r in caplog.records if r.name == "Qactuar"]
    assert record.levelno == logging.WARNING
    assert key in record.getMessage()
    assert "is ignored" in record.getMessage()
    assert "polling" in record.getMessage()
    assert str(path) in record.getMessage()


@pytest.mark.parametrize(
    ("old", "new"), [("async_only", "async"), ("simple_fork", "postfork"), ("prefork", "prefork")]
)
def test_server_type_maps_to_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, old: str, new: str
) -> None:
    path = write(tmp_path / "old.json", json.dumps({"SERVER_TYPE": old}))
    with caplog.at_level(logging.WARNING, logger="Qactuar"):
        assert new == load(tmp_path, config_file=str(path)).MODE
    assert "SERVER_TYPE is deprecated; use MODE" in caplog.text


def test_process_pool_size_maps_to_workers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="Qactuar"):
        assert load(tmp_path, env={"QACTUAR_PROCESS_POOL_SIZE": "6"}).WORKERS == 6
    assert "QACTUAR_PROCESS_POOL_SIZE" in caplog.text
    assert "use QACTUAR_WORKERS" in caplog.text


def test_old_and_new_key_together_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "q.toml", 'mode = "async"\nserver_type = "simple_fork"\n')
    message = error(tmp_path, config_file=str(path))
    assert str(path) in message
    assert "MODE is given twice (as 'mode' and 'server_type')" in message


def test_bad_server_type_names_the_old_key(tmp_path: Path) -> None:
    path = write(tmp_path / "old.json", json.dumps({"SERVER_TYPE": "threads"}))
    message = error(tmp_path, config_file=str(path))
    assert "key 'SERVER_TYPE'" in message
    assert "'threads'" in message
    assert "'prefork', 'postfork', 'async'" in message


# --- types and values --------------------------------------------------------------------------------------


def test_every_default_passes_its_own_rule(tmp_path: Path) -> None:
    defaults = Config()
    every_field = {
        f.name: getattr(defaults, f.name) for f in dataclasses.fields(Config) if f.name != "CONFIG_FILE"
    }
    config = load(tmp_path, overrides=every_field)
    assert config.PORT == defaults.PORT


def test_int_is_accepted_for_a_float_field(tmp_path: Path) -> None:
    config = load(tmp_path, overrides={"KEEPALIVE_TIMEOUT": 3})
    assert config.KEEPALIVE_TIMEOUT == 3.0
    assert type(config.KEEPALIVE_TIMEOUT) is float


def test_zero_means_off_where_documented(tmp_path: Path) -> None:
    zeros = ("PORT", "ADMIN_PORT", "WORKERS", "MAX_BODY_BYTES", "MAX_REQUESTS", "LIMIT_CONCURRENCY")
    config = load(tmp_path, overrides=dict.fromkeys(zeros, 0))
    assert all(getattr(config, name) == 0 for name in zeros)


BAD_VALUES: list[tuple[str, str, str]] = [
    # (toml line, shown value, allowed text)
    ('port = "8000"', "'8000'", "an integer from 0 to 65535"),
    ("port = true", "True", "an integer from 0 to 65535"),
    ("port = 80.5", "80.5", "an integer from 0 to 65535"),
    ("port = 70000", "70000", "an integer from 0 to 65535 (0 picks a free port)"),
    ("port = -1", "-1", "an integer from 0 to 65535"),
    ('mode = "threads"', "'threads'", "one of 'prefork', 'postfork', 'async'"),
    ('lifespan = "maybe"', "'maybe'", "one of 'auto', 'on', 'off'"),
    ("workers = -1", "-1", "an integer >= 0"),
    ("max_processes = 0", "0", "an integer >= 1"),
    ("request_timeout = 0", "0", "a number of seconds > 0"),
    ("graceful_timeout = -1.5", "-1.5", "a number of seconds > 0"),
    ("keepalive_timeout = inf", "inf", "a number of seconds > 0"),
    ('worker_timeout = "30"', "'30'", "a number of seconds > 0"),
    ("backlog = 0", "0", "an integer >= 1"),
    ("max_headers = 0", "0", "an integer >= 1"),
    ("max_body_bytes = -1", "-1", "an integer >= 0 (0 = unlimited)"),
    ("max_requests_jitter = -2", "-2", "an integer >= 0 (0 = off)"),
    ("recv_bytes = 1000", "1000", "an integer >= 1024"),
    ("reload = 1", "1", "true or false"),
    ('access_log = "yes"', "'yes'", "true or false"),
    ("host = 1", "1", "a string"),
    ('log_level = "LOUD"', "'LOUD'", "a logging level name"),
    ('state_dir = ""', "''", "a non-empty directory path"),
    ('root_path = "prefix"', "'prefix'", "'' or a path prefix like '/prefix'"),
    ('root_path = "/"', "'/'", "'' or a path prefix like '/prefix'"),
    ('root_path = "/a/"', "'/a/'", "'' or a path prefix like '/prefix'"),
    ("apps = 3", "3", "a table mapping route to 'module:attr'"),
    ("logs = { disable_existing_loggers = false }", "disable_existing_loggers", "version = 1"),
    ("logs = { version = 2 }", "{'version': 2}", "a logging dictConfig table with version = 1"),
    ("logs = { version = true }", "{'version': True}", "a logging dictConfig table with version = 1"),
]


@pytest.mark.parametrize(("line", "shown", "allowed"), BAD_VALUES)
def test_bad_value_in_file_names_file_key_value_and_allowed(
    tmp_path: Path, line: str, shown: str, allowed: str
) -> None:
    path = write(tmp_path / "qactuar.toml", line + "\n")
    message = error(tmp_path)
    key = line.split(" =", maxsplit=1)[0]
    assert message.startswith(f"config file {path}, key {key!r}: ")
    assert shown in message
    assert f"for {key.upper()}; expected" in message
    assert allowed in message


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        ("api", "does not start with '/'"),
        ("/api/", "ends with '/'"),
        ("/a//b", "has an empty segment"),
        ("/a/./b", "has a '.' or '..' segment"),
        ("/a/..", "has a '.' or '..' segment"),
        ("/a b", "has whitespace or a control character"),
        ("/a\tb", "has whitespace or a control character"),
        ("/a\x1bb", "has whitespace or a control character"),
        ("/a?x=1", "has '?' or '#'"),
        ("/a#top", "has '?' or '#'"),
        ("", "does not start with '/'"),
    ],
)
def test_bad_route(tmp_path: Path, route: str, problem: str) -> None:
    path = write(tmp_path / "q.json", json.dumps({"APPS": {route: "site:app"}}))
    message = error(tmp_path, config_file=str(path))
    assert message.startswith(f"config file {path}, key 'APPS': APPS route {route!r} {problem}")
    assert "a route is '/' or segments like '/api/v1'" in message
    assert route_problem(route) is not None


@pytest.mark.parametrize("route", ["/", "/api", "/api/v1", "/caf\u00e9", "/a.b", "/..a", "/-_~"])
def test_good_routes(route: str) -> None:
    assert route_problem(route) is None


@pytest.mark.parametrize(
    "target",
    [
        "site",
        "site:",
        ":app",
        "site:app()()",
        "1site:app",
        "site:app.",
        "site..x:app",
        "site:class",
        "s-x:app",
    ],
)
def test_bad_app_string(tmp_path: Path, target: str) -> None:
    path = write(tmp_path / "qactuar.toml", f'[apps]\n"/api" = {json.dumps(target)}\n')
    message = error(tmp_path)
    assert message.startswith(f"config file {path}, key 'apps': APPS app {target!r} for route '/api'")
    assert "expected 'module.path:attr' or 'module.path:factory()'" in message
    assert not is_app_string(target)


@pytest.mark.parametrize("target", ["site:app", "pkg.mod:obj.app", "pkg.mod:create_app()", "caf\u00e9:app"])
def test_good_app_strings(target: str) -> None:
    assert is_app_string(target)


def test_app_string_must_be_a_string(tmp_path: Path) -> None:
    message = error(tmp_path, overrides={"APPS": {"/": 3}})
    assert message.startswith("qactuar.run() argument APPS: APPS app 3 for route '/'")


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    path = write(tmp_path / "qactuar.toml", "prot = 80\n")
    message = error(tmp_path)
    assert message == f"config file {path}, key 'prot': unknown setting 'prot'; did you mean 'port'?"


def test_unknown_key_in_json_suggests_upper_case(tmp_path: Path) -> None:
    path = write(tmp_path / "q.json", '{"MAX_PROCESS": 3}')
    assert error(tmp_path, config_file=str(path)).endswith("did you mean 'MAX_PROCESSES'?")


def test_unknown_key_without_a_close_match_lists_the_settings(tmp_path: Path) -> None:
    write(tmp_path / "qactuar.toml", "zzzzzz = 1\n")
    message = error(tmp_path)
    assert "unknown setting 'zzzzzz'; known settings: host, port," in message


@pytest.mark.parametrize(
    ("kwargs", "source"),
    [
        ({"cli": {"PORT": 70000}}, "command line --port: "),
        ({"cli": {"APPS": {"/": "bad"}}}, "command line APP argument: "),
        ({"mounts": {"api": "site:app"}}, "command line --mount: "),
        ({"overrides": {"port": 70000}}, "qactuar.run() argument port: "),
        ({"conf": Config(PORT=70000)}, "qactuar.run() conf=Config(PORT=...): "),
    ],
)
def test_errors_name_each_kind_of_source(tmp_path: Path, kwargs: dict[str, Any], source: str) -> None:
    assert error(tmp_path, **kwargs).startswith(source)


def test_unknown_run_argument_is_an_error(tmp_path: Path) -> None:
    message = error(tmp_path, overrides={"WORKER": 2})
    assert message == "qactuar.run() argument WORKER: unknown setting 'WORKER'; did you mean 'WORKERS'?"


def test_same_key_in_two_cases_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "q.toml", "port = 1\nPORT = 2\n")
    assert "PORT is given twice (as 'port' and 'PORT')" in error(tmp_path, config_file=str(path))


def test_config_file_key_in_a_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "qactuar.toml", 'config_file = "other.toml"\n')
    message = error(tmp_path)
    assert message.startswith(f"config file {path}, key 'config_file': CONFIG_FILE is set by the loader")
    assert "--config FILE" in message


# --- file errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["site.yaml", "site.ini", "site"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, "port: 1\n")
    message = error(tmp_path, config_file=str(path))
    assert message.startswith(f"config file {path}: unsupported file type")
    assert "use .toml or .json" in message


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "qactuar.toml", 'port = 8000\nhost = "a\nmode = "async"\n')
    message = error(tmp_path)
    assert message.startswith(f"config file {path}: invalid TOML: ")
    assert "line 2" in message


def test_invalid_json_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "q.json", '{\n  "PORT": 8000,\n  "HOST": \n}\n')
    message = error(tmp_path, config_file=str(path))
    assert message.startswith(f"config file {path}: invalid JSON: ")
    assert "line 4" in message


def test_json_top_level_must_be_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "q.json", "[1, 2]")
    assert error(tmp_path, config_file=str(path)) == (
        f"config file {path}: the top level must be an object of settings"
    )


def test_toml_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "qactuar.toml"
    path.write_bytes(b'host = "\xff"\n')
    assert error(tmp_path).startswith(f"config file {path}: invalid TOML: ")


# --- TLS pair ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "given", "missing"),
    [
        ('ssl_cert_path = "cert.pem"', "SSL_CERT_PATH", "SSL_KEY_PATH"),
        ('ssl_key_path = "key.pem"', "SSL_KEY_PATH", "SSL_CERT_PATH"),
    ],
)
def test_cert_and_key_go_together(tmp_path: Path, line: str, given: str, missing: str) -> None:
    path = write(tmp_path / "qactuar.toml", line + "\n")
    message = error(tmp_path)
    assert message.startswith(f"config file {path}, key {given.lower()!r}: {given} = ")
    assert f"is given but {missing} is not" in message
    assert "SSL_CERT_PATH and SSL_KEY_PATH together" in message


def test_cert_and_key_from_different_layers(tmp_path: Path) -> None:
    write(tmp_path / "qactuar.toml", 'ssl_cert_path = "cert.pem"\n')
    config = load(tmp_path, env={"QACTUAR_SSL_KEY_PATH": "/keys/key.pem"})
    assert (str(tmp_path / "cert.pem"), "/keys/key.pem") == (config.SSL_CERT_PATH, config.SSL_KEY_PATH)
