"""A Tornado application served by Qactuar through ``qactuar.contrib.tornado`` (needs ``tornado``).

Mount it next to other apps, e.g. ``qactuar serve --mount /tornado=tornado_example:app`` with
``apps/`` as APP_DIR.  It is not in the default ``qactuar.toml`` because Tornado is an optional
extra (``pip install 'qactuar[compat]'``).

* ``GET /greet?name=Ada`` -- query, a request header, a cookie read and one set, a header added in
  ``prepare()``;
* ``POST /greet`` -- a form or JSON body echoed back;
* ``GET /teapot`` -- an error status raised as ``tornado.web.HTTPError``;
* ``GET /finished`` -- how many requests this process has finished (``on_finish()`` ran);
* ``hello`` -- the seed's form: one ``RequestHandler`` class wrapped with ``TornadoWrapper``.
"""

from __future__ import annotations

import json
from typing import Any

from tornado.web import Application, HTTPError, RequestHandler

from qactuar.util import TornadoWrapper


class _Counted(RequestHandler):
    def prepare(self) -> None:
        self.set_header("X-Prepared", "yes")

    def on_finish(self) -> None:
        self.settings["stats"]["finished"] += 1


class Greet(_Counted):
    def get(self) -> None:
        visits = int(self.get_cookie("visits", "0") or "0") + 1
        self.set_cookie("visits", str(visits))
        self.write(
            {
                "hello": self.get_query_argument("name", "world"),
                "agent": self.request.headers.get("User-Agent", ""),
                "visits": visits,
                "path": self.request.path,
                "client": self.request.remote_ip,
                "protocol": self.request.protocol,
            }
        )

    def post(self) -> None:
        if self.request.headers.get("Content-Type", "").startswith("application/json"):
            data: Any = json.loads(self.request.body)
        else:
            data = {name: self.get_body_argument(name) for name in self.request.body_arguments}
        self.set_status(201)
        self.write({"received": data, "query": self.get_query_argument("tag", "")})


class Teapot(_Counted):
    def get(self) -> None:
        raise HTTPError(418, reason="I'm a teapot")


class Finished(RequestHandler):
    def get(self) -> None:
        self.write({"finished": self.settings["stats"]["finished"]})


class HelloWorld(RequestHandler):
    def get(self) -> None:
        self.write("Hello, WORLD!")


app = TornadoWrapper(
    Application(
        [(r"/greet", Greet), (r"/teapot", Teapot), (r"/finished", Finished)],
        stats={"finished": 0},
    )
)
hello = TornadoWrapper(HelloWorld)
