"""Fuzzing the config loader: any file, any value of any type for any key, any environment text.

The promise (qactuar/config.py, README "Configuration"): a bad setting is a ``ConfigError`` (the CLI
turns it into exit status 2) whose message names the source, the key, the value and what is allowed
-- never a traceback.  Properties:

* arbitrary TOML documents (generated values of every TOML type under every key, and raw text
  that is mostly not TOML) and arbitrary JSON documents either load or raise ``ConfigError``;
  a per-key error names the file and the key as written;
* every key with a value of any type (files, ``qactuar.run()`` arguments) and any text in any
  ``QACTUAR_<KEY>`` variable: loads, or ``ConfigError`` naming that key;
* whatever loads has the declared type for every field.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qactuar.config import FIELD_TYPES, Config, ConfigError, load_config

FUZZ = settings.get_profile("qactuar-fuzz")
KEYS = sorted(name for name in FIELD_TYPES if name != "CONFIG_FILE")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz-config")


def load(workdir: Path, **kwargs: Any) -> Config | str:
    """The Config, or the ConfigError's message; any other exception fails the test."""
    kwargs.setdefault("env", {})
    try:
        return load_config(cwd=str(workdir), **kwargs)
    except ConfigError as exc:
        message = str(exc)
        assert message.strip(), "an empty error message"
        return message


def check_types(config: Config) -> None:
    for name, kind in FIELD_TYPES.items():
        value = getattr(config, name)
        if kind is float:
            assert type(value) is float and not math.isnan(value), (name, value)
        elif kind is int:
            assert type(value) is int, (name, value)
        else:
            assert isinstance(value, kind), (name, value)


# --- values -------------------------------------------------------------------------------------------------

toml_scalars = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(),  # beyond 64 bits: tomllib reads any size
    st.just(10**400),
    st.floats(),
    st.booleans(),
    st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "str": st.sampled_from(
        ["", "prefork", "async", "off", "v1", "/healthz", "/", "660", "DEBUG", "~", "~x\x00"]
    )
    | st.text(max_size=12),
    "int": st.integers(-2, 70000) | st.sampled_from([0, 1, 1024, 65535, 65536]),
    "float": st.floats(-1, 1e6) | st.sampled_from([0.0, 0.5, math.inf, math.nan]),
    "bool": st.booleans(),
    "list": st.lists(
        st.sampled_from(["https", "file", "127.0.0.1", "10.0.0.0/8", "*", "unix", "bad host"]), max_size=3
    ),
    "dict": st.dictionaries(
        st.sampled_from(["/", "/api", "api/", "/a/../b", "version"]),
        st.sampled_from(["m:app", "m:f()", "1bad", 1, None]),
        max_size=3,
    ),
}


def values_for(key: str) -> st.SearchStrategy[Any]:
    return PLAUSIBLE[FIELD_TYPES[key].__name__] | toml_values


@st.composite
def settings_tables(draw: st.DrawFn, spell: Any = str.lower) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True))
    table = {spell(key): draw(values_for(key)) for key in keys}
    if draw(st.integers(0, 4)) == 0:
        table[
            draw(st.sampled_from(["prot", "server_type", "select_sleep_time", "config_file", "", "ünï"]))
        ] = 1
    return table


# --- a small TOML writer (the standard library reads TOML but does not write it) --------------------------


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):  # TOML has no null: a None in a generated value is left out
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    assert isinstance(value, dict)
    return (
        "{"
        + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items() if v is not None)
        + "}"
    )


def toml_document(table: dict[str, Any]) -> str:
    return "".join(
        f"{toml_string(key)} = {toml_value(value)}\n" for key, value in table.items() if value is not None
    )


TOML_FRAGMENTS = [
    "port = ",
    "[apps]\n",
    '"/" = "m:app"\n',
    "=",
    "[",
    "]",
    "{",
    "}",
    '"',
    "'",
    "\n",
    "#",
    "\\u0000",
    "inf",
]
toml_text = st.lists(st.sampled_from(TOML_FRAGMENTS) | st.text(max_size=8), max_size=20).map("".join)


def key_named(message: str, key: str) -> bool:
    return repr(key) in message or key in message


# --- properties ---------------------------------------------------------------------------------------------


@FUZZ
@given(table=settings_tables())
def test_any_toml_settings_load_or_name_the_key(workdir: Path, table: dict[str, Any]) -> None:
    path = workdir / "fuzz.toml"
    path.write_text(toml_document(table), encoding="utf-8")
    result = load(workdir, config_file=str(path))
    if isinstance(result, Config):
        check_types(result)
        return
    assert str(path) in result, result
    assert any(key_named(result, key) for key in table), result


@FUZZ
@given(text=toml_text | st.text(max_size=60))
def test_any_toml_text_loads_or_names_the_file(workdir: Path, text: str) -> None:
    path = workdir / "text.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    result = load(workdir, config_file=str(path))
    if isinstance(result, Config):
        check_types(result)
    else:
        assert str(path) in result, result


@FUZZ
@given(
    document=settings_tables(spell=str.upper).map(lambda table: json.dumps(table, default=str))
    | st.sampled_from(
        ["[" * 5000 + "]" * 5000, '{"PORT": 1' + "0" * 400 + "}", '{"PORT": 1' + "0" * 5000 + "}"]
    )
    | st.text(max_size=30)
)
def test_any_json_document_loads_or_names_the_file(workdir: Path, document: str) -> None:
    path = workdir / "fuzz.json"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    result = load(workdir, config_file=str(path))
    if isinstance(result, Config):
        check_types(result)
    else:
        assert str(path) in result, result


@FUZZ
@given(data=st.data(), key=st.sampled_from(KEYS))
def test_any_value_of_any_type_for_any_key(workdir: Path, data: st.DataObject, key: str) -> None:
    """Through ``qactuar.run()`` arguments: the layer that receives Python values as they are."""
    value = data.draw(values_for(key) | st.builds(object) | st.sets(st.integers(), max_size=2))
    result = load(workdir, overrides={key: value})
    if isinstance(result, Config):
        check_types(result)
    else:
        assert f"argument {key}" in result, result


env_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
) | st.sampled_from(
    [
        "1" * 400,
        "1e999",
        "nan",
        "-0",
        " 5 ",
        "[" * 3000,
        "{" * 3000,
        "[[[1]]]",
        '{"/": "m:app"}',
        "true",
        "0o660",
    ]
)


@FUZZ
@given(
    data=st.data(),
    keys=st.lists(st.sampled_from([*KEYS, "CONFIG", "SERVER_TYPE", "NOPE"]), min_size=1, max_size=3),
)
def test_any_environment_text_loads_or_names_the_variable(
    workdir: Path, data: st.DataObject, keys: list[str]
) -> None:
    env = {f"QACTUAR_{key}": data.draw(env_text) for key in keys}
    env.pop("QACTUAR_CONFIG", None)  # it names a file: its own test is the file tests above
    result = load(workdir, env=env)
    if isinstance(result, Config):
        check_types(result)
    else:
        assert re.search(r"QACTUAR_[A-Z_]+", result), result
        assert any(name in result for name in env), result


# --- the defects found here, pinned -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("toml", "request_timeout = 1" + "0" * 400),  # OverflowError in math.isfinite / float()
        ("json", '{"WS_PING_INTERVAL": 1' + "0" * 400 + "}"),
        ("json", '{"PORT": ' + "[" * 5000 + "]" * 5000 + "}"),  # RecursionError in json.loads
        ("toml", "port = " + "[" * 5000 + "]" * 5000),  # RecursionError in tomllib
        ("json", '{"APP_DIR": "~user\\u0000x"}'),  # ValueError (embedded null byte) in os.path.expanduser
        ("json", '{"STATE_DIR": "~\\u0000"}'),
    ],
    ids=[
        "toml-huge-int-seconds",
        "json-huge-int-seconds",
        "json-deep",
        "toml-deep",
        "nul-path",
        "nul-state-dir",
    ],
)
def test_found_defects_are_config_errors(workdir: Path, source: str, key: str) -> None:
    path = workdir / f"pinned.{source}"
    path.write_text(key, encoding="utf-8")
    result = load(workdir, config_file=str(path))
    assert isinstance(result, str) and str(path) in result, result


def test_deeply_nested_environment_json_is_a_config_error(workdir: Path) -> None:
    result = load(workdir, env={"QACTUAR_APPS": "[" * 5000 + "]" * 5000})
    assert isinstance(result, str) and "QACTUAR_APPS" in result, result
