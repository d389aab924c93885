"""Placeholder until the WebSocket session lands: refuse upgrades with 501 and close."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qactuar.http.driver import Rejected, RequestHead
from qactuar.types import ASGIApp, Scope

if TYPE_CHECKING:
    from qactuar.http.protocol import HTTPProtocol, UpgradedConnection


def start_websocket(
    conn: HTTPProtocol, head: RequestHead, scope: Scope, app: ASGIApp | None
) -> UpgradedConnection | None:
    conn._reject(Rejected(501, "WebSocket is not supported yet"))
    return None
