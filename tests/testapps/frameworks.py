"""Starlette and FastAPI apps for mount tests (root_path, url_for)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def _items(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "item": request.path_params["item_id"],
            "url": str(request.url_for("items", item_id="7")),
            "root_path": request.scope["root_path"],
        }
    )


starlette_app = Starlette(routes=[Route("/items/{item_id}", _items, name="items")])

fastapi_app = FastAPI()


@fastapi_app.get("/users/{user_id}", name="user")
async def user(user_id: int, request: Request) -> dict[str, object]:
    return {
        "user": user_id,
        "url": str(request.url_for("user", user_id=3)),
        "root_path": request.scope["root_path"],
    }
