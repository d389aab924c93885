"""Frameworks mounted below "/" route and build URLs correctly with the scope the server builds.

The scope follows router.py: ``path`` is the full path (ROOT_PATH included, nothing stripped) and
``root_path`` = ROOT_PATH + the mount route.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qactuar.apps.router import Mount, root_path_for
from qactuar.apps.table import AppTable
from qactuar.types import ASGIApp, Receive, Scope, Send


def starlette_app() -> Starlette:
    async def item(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "id": request.path_params["item_id"],
                "url": str(request.url_for("item", item_id=7)),
                "path": request.url.path,
            }
        )

    return Starlette(routes=[Route("/items/{item_id}", item, name="item")])


def fastapi_app() -> FastAPI:
    api = FastAPI()

    @api.get("/items/{item_id}", name="item")
    async def item(item_id: str, request: Request) -> dict[str, str]:
        return {"id": item_id, "url": str(request.url_for("item", item_id=7)), "path": request.url.path}

    return api


async def root(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": scope["root_path"].encode()})


async def request(table: AppTable, path: str, global_root: str, http_scope: Any, call_app: Any) -> Any:
    """Serve ``path`` (as received, before ROOT_PATH) the way the server does."""
    mount = table.match(path)
    assert mount is not None and mount.app is not None
    scope = http_scope(global_root.rstrip("/") + path, root_path=root_path_for(mount, global_root))
    return await call_app(mount.app, scope)


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
@pytest.mark.parametrize("global_root", ["", "/prefix"])
async def test_framework_mounted_at_api(
    make_app: Any, global_root: str, http_scope: Any, call_app: Any
) -> None:
    app: ASGIApp = make_app()
    table = AppTable([Mount("/", "root", root), Mount("/api", "framework", app)])

    response = await request(table, "/api/items/3", global_root, http_scope, call_app)
    assert response.status == 200
    assert json.loads(response.body) == {
        "id": "3",
        "url": f"http://testserver{global_root}/api/items/7",
        "path": f"{global_root}/api/items/3",
    }

    missing = await request(table, "/api/nothing", global_root, http_scope, call_app)
    assert missing.status == 404

    outside = await request(table, "/apiary/items/3", global_root, http_scope, call_app)
    assert (outside.status, outside.body) == (299, global_root.encode())
