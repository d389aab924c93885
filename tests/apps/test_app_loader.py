from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import pytest

from qactuar.apps.asgi2 import ASGI2Adapter
from qactuar.apps.loader import AppImportError, add_app_dir, import_app

ASGI3_APP = """
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


@pytest.mark.parametrize(
    "spec",
    ["nocolon", ":app", "mod:", "mod:a..b", "mod:app(1)", ".relative:app", "mod:1abc", "mod..sub:app"],
)
def test_bad_format(spec: str) -> None:
    with pytest.raises(AppImportError) as info:
        import_app(spec)
    assert str(info.value) == (
        f'Import string "{spec}" must be in format "<module>:<attribute>" or "<module>:<factory>()".'
    )


def test_module_not_found(write_module: Any) -> None:
    with pytest.raises(AppImportError) as info:
        import_app("qt_no_such_module:app")
    assert str(info.value).startswith('Could not import module "qt_no_such_module": no module named')


def test_submodule_not_found_names_the_missing_part(write_module: Any) -> None:
    write_module("qt_pkg.present", ASGI3_APP)
    with pytest.raises(AppImportError) as info:
        import_app("qt_pkg.absent:app")
    assert 'Could not import module "qt_pkg.absent": no module named "qt_pkg.absent"' in str(info.value)


def test_missing_dependency_is_blamed_on_the_app(write_module: Any) -> None:
    path = write_module("qt_needs_dep", "import qt_not_installed_dep\n" + ASGI3_APP)
    with pytest.raises(AppImportError) as info:
        import_app("qt_needs_dep:app")
    message = str(info.value)
    assert message.startswith(
        'Could not import module "qt_needs_dep": it imports "qt_not_installed_dep", which was not found.'
    )
    assert str(path) in message  # the traceback shows where the app imports it


def test_exception_while_importing_shows_the_apps_traceback(write_module: Any) -> None:
    path = write_module("qt_raises", "def helper():\n    raise ValueError('boom')\n\nhelper()\n")
    with pytest.raises(AppImportError) as info:
        import_app("qt_raises:app")
    message = str(info.value)
    assert message.startswith('Importing module "qt_raises" raised ValueError: boom')
    assert "Traceback (most recent call last):" in message
    assert str(path) in message and "in helper" in message
    assert "importlib" not in message and "loader.py" not in message


def test_syntax_error(write_module: Any) -> None:
    write_module("qt_syntax", "def broken(:\n")
    with pytest.raises(AppImportError, match=r'Importing module "qt_syntax" raised SyntaxError'):
        import_app("qt_syntax:app")


def test_sys_exit_at_import_is_an_import_error(write_module: Any) -> None:
    write_module("qt_exits", "import sys\nsys.exit(3)\n")
    with pytest.raises(AppImportError, match=r'Importing module "qt_exits" raised SystemExit: 3'):
        import_app("qt_exits:app")


def test_attribute_not_found(write_module: Any) -> None:
    write_module("qt_attrs", ASGI3_APP + "class Holder:\n    pass\n")
    with pytest.raises(AppImportError) as info:
        import_app("qt_attrs:nope")
    assert str(info.value) == 'Attribute "nope" not found in module "qt_attrs".'
    with pytest.raises(AppImportError) as info:
        import_app("qt_attrs:Holder.app")
    assert str(info.value) == 'Attribute "Holder.app" not found in module "qt_attrs".'


def test_dotted_attribute_and_module(write_module: Any) -> None:
    write_module("qt_dotted.inner", ASGI3_APP + "class Holder:\n    app = staticmethod(app)\n")
    app = import_app("qt_dotted.inner:Holder.app")
    assert app is importlib.import_module("qt_dotted.inner").app


def test_asgi3_app_is_returned_unchanged(write_module: Any) -> None:
    write_module(
        "qt_asgi3",
        ASGI3_APP + "class App:\n    async def __call__(self, scope, receive, send):\n        pass\n"
        "instance = App()\n",
    )
    module = importlib.import_module("qt_asgi3")
    assert import_app("qt_asgi3:app") is module.app
    assert import_app("qt_asgi3:instance") is module.instance


@pytest.mark.parametrize("spec", ["qt_factory:create_app()", "qt_factory:create_app"])
def test_factory_with_or_without_parentheses(write_module: Any, spec: str) -> None:
    write_module(
        "qt_factory", ASGI3_APP + "calls = []\ndef create_app():\n    calls.append(1)\n    return app\n"
    )
    app = import_app(spec, factory=not spec.endswith("()"))
    module = importlib.import_module("qt_factory")
    assert app is module.app
    assert module.calls == [1]


def test_factory_raising(write_module: Any) -> None:
    path = write_module("qt_factory_raises", "def create_app():\n    raise RuntimeError('no database')\n")
    with pytest.raises(AppImportError) as info:
        import_app("qt_factory_raises:create_app()")
    message = str(info.value)
    assert message.startswith('Factory "qt_factory_raises:create_app" raised RuntimeError: no database')
    assert str(path) in message


def test_factory_not_callable(write_module: Any) -> None:
    write_module("qt_factory_value", "create_app = 42\n")
    with pytest.raises(AppImportError) as info:
        import_app("qt_factory_value:create_app", factory=True)
    assert str(info.value) == (
        'Factory "qt_factory_value:create_app" is not callable (it is int), so it cannot make an app.'
    )


def test_factory_result_not_callable(write_module: Any) -> None:
    write_module("qt_factory_int", "def create_app():\n    return 42\n")
    with pytest.raises(AppImportError) as info:
        import_app("qt_factory_int:create_app()")
    assert str(info.value) == (
        'Factory "qt_factory_int:create_app" returned int, which is not an ASGI app: it is not callable.'
    )


def test_attribute_not_callable(write_module: Any) -> None:
    write_module("qt_value", "app = 'hello'\n")
    with pytest.raises(AppImportError) as info:
        import_app("qt_value:app")
    assert str(info.value) == 'Attribute "qt_value:app" (str) is not an ASGI app: it is not callable.'


def test_factory_used_as_app_gets_a_hint(write_module: Any) -> None:
    write_module("qt_hint", ASGI3_APP + "def create_app():\n    return app\n")
    with pytest.raises(AppImportError) as info:
        import_app("qt_hint:create_app")
    assert "accepts neither (scope, receive, send) nor (scope)" in str(info.value)
    assert str(info.value).endswith('If it is an app factory, write "qt_hint:create_app()".')


ASGI2_SOURCES = {
    "class": """
class App:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        await send({"type": "seen", "path": self.scope["path"]})
""",
    "function": """
def App(scope):
    async def instance(receive, send):
        await send({"type": "seen", "path": scope["path"]})
    return instance
""",
}


@pytest.mark.parametrize("kind", sorted(ASGI2_SOURCES))
async def test_asgi2_apps_are_wrapped(write_module: Any, kind: str) -> None:
    write_module(f"qt_asgi2_{kind}", ASGI2_SOURCES[kind])
    app = import_app(f"qt_asgi2_{kind}:App")
    assert isinstance(app, ASGI2Adapter)
    sent: list[Any] = []

    async def receive() -> Any:
        raise AssertionError("not used")

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "http", "path": "/x"}, receive, send)
    assert sent == [{"type": "seen", "path": "/x"}]


def test_add_app_dir_is_idempotent(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "apps").mkdir()
    add_app_dir("apps")
    add_app_dir("apps")
    add_app_dir(str(tmp_path / "apps"))
    absolute = os.path.join(str(tmp_path), "apps")
    assert sys.path[0] == absolute
    assert sys.path.count(absolute) == 1
