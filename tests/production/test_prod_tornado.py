"""qactuar.contrib.tornado: Tornado handlers and applications served as ASGI apps."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx
import pytest
from production_support import EXAMPLE_APPS

tornado_web = pytest.importorskip("tornado.web")

from qactuar.contrib.tornado import TornadoWrapper  # noqa: E402 - after the importorskip


@pytest.mark.parametrize("mode", ["async", "prefork"])
def test_tornado_application_end_to_end(start_server, mode: str) -> None:
    server = start_server(
        {"/tornado": "tornado_example:app", "/hello": "tornado_example:hello"},
        mode=mode,
        settings={"app_dir": str(EXAMPLE_APPS)},
    )
    with httpx.Client(base_url=server.url) as client:  # one keep-alive connection: one worker
        reply = client.get(
            "/tornado/greet",
            params={"name": "Ada Lovelace"},
            headers={"User-Agent": "qactuar-test", "X-Forwarded-Proto": "https", "Cookie": "visits=4"},
        )
        assert reply.status_code == 200
        assert reply.json() == {
            "hello": "Ada Lovelace",
            "agent": "qactuar-test",
            "visits": 5,
            "path": "/greet",  # below the mount
            "client": "127.0.0.1",
            "protocol": "https",  # from the trusted proxy header, through the scope
        }
        assert reply.headers["x-prepared"] == "yes"
        assert reply.headers["set-cookie"] == "visits=5; Path=/"
        form = client.post("/tornado/greet", params={"tag": "t1"}, data={"a": "1", "b": "two"})
        assert (form.status_code, form.json()) == (201, {"received": {"a": "1", "b": "two"}, "query": "t1"})
        posted = client.post("/tornado/greet", json={"list": [1, 2]})
        assert (posted.status_code, posted.json()["received"]) == (201, {"list": [1, 2]})
        teapot = client.get("/tornado/teapot")
        assert teapot.status_code == 418
        assert "<title>418: I" in teapot.text  # Tornado's own error page
        assert client.get("/tornado/nowhere").status_code == 404
        assert client.get("/tornado/finished").json() == {"finished": 4}  # on_finish ran for each
        assert client.get("/hello/any/path").text == "Hello, WORLD!"  # the seed's TornadoWrapper(Handler)
        head = client.head("/hello/")  # HelloWorld has no head(): Tornado's 405, without a body
        assert (head.status_code, head.content) == (405, b"")


class _Streaming(tornado_web.RequestHandler):
    closed: list[str]

    async def get(self) -> None:
        self.write("first,")
        await self.flush()
        self.write("second")

    async def post(self) -> None:
        await asyncio.sleep(10)

    def on_connection_close(self) -> None:
        type(self).closed.append(self.request.path)


async def _call(app: TornadoWrapper, method: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "method": method,
        "path": "/x",
        "raw_path": b"/x",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "scheme": "http",
        "http_version": "1.1",
    }
    inbox = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop(0)
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), 5)
    return sent


async def test_flush_streams_and_a_disconnect_reaches_on_connection_close() -> None:
    _Streaming.closed = []
    app = TornadoWrapper(_Streaming)
    sent = await _call(app, "GET", [{"type": "http.request", "body": b""}])
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 3
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"first,second"
    assert sent[-1]["more_body"] is False
    # POST never answers; the client leaves: the handler hears it and the ASGI call returns.
    sent = await _call(app, "POST", [{"type": "http.request", "body": b"x"}])
    assert sent == []
    assert _Streaming.closed == ["/x"]


async def test_lifespan_acknowledged_and_bad_targets_refused() -> None:
    app = TornadoWrapper(_Streaming)
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(TypeError):
        TornadoWrapper(object)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        TornadoWrapper(tornado_web.Application(), settings={"debug": True})


def test_qactuar_util_imports_without_tornado() -> None:
    """``from qactuar.util import TornadoWrapper`` (the seed's spelling) works; it needs no Tornado."""
    code = (
        "import sys; import qactuar.util; assert 'tornado' not in sys.modules; "
        "from qactuar.util import TornadoWrapper; assert 'tornado' in sys.modules; "
        "from qactuar.contrib.tornado import TornadoWrapper as T; assert TornadoWrapper is T"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
