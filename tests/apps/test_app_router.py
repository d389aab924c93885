from __future__ import annotations

import pytest

from qactuar.apps.router import Mount, RouteTable, root_path_for, validate_route
from qactuar.types import Receive, Scope, Send


async def noop(scope: Scope, receive: Receive, send: Send) -> None:
    pass


def table(*routes: str) -> RouteTable:
    return RouteTable(Mount(route, f"app{route}", noop) for route in routes)


def matched(routes: RouteTable, path: str) -> str | None:
    mount = routes.match(path)
    return None if mount is None else mount.route


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/", "/"),
        ("", "/"),
        ("/api", "/api"),
        ("/api/", "/api"),
        ("/api/x", "/api"),
        ("/api/v2", "/api/v2"),
        ("/api/v2/", "/api/v2"),
        ("/api/v2/users/7", "/api/v2"),
        ("/api/v22", "/api"),
        ("/apiary", "/"),
        ("/API", "/"),
        ("/blog/2024/01/post", "/blog"),
        ("/blogs", "/"),
        ("//api", "/"),
        ("*", "/"),
    ],
)
def test_longest_prefix_on_segment_boundaries(path: str, route: str) -> None:
    assert matched(table("/", "/api", "/api/v2", "/blog"), path) == route


def test_without_root_mount_unmatched_paths_have_no_mount() -> None:
    routes = table("/api")
    assert matched(routes, "/apiary") is None
    assert matched(routes, "/") is None
    assert matched(routes, "/api/x") == "/api"


def test_mounts_listing_keeps_order() -> None:
    assert [mount.route for mount in table("/b", "/", "/a").mounts] == ["/b", "/", "/a"]


def test_duplicate_routes_are_rejected() -> None:
    with pytest.raises(ValueError, match="mounted twice"):
        table("/api", "/api")


@pytest.mark.parametrize("route", ["/", "/api", "/api/v2", "/a-b_c.d~e", "/ünïcode", "/@user"])
def test_valid_routes(route: str) -> None:
    assert validate_route(route) == route


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ("", "must start with '/'"),
        ("api", "must start with '/'"),
        ("/api/", "must not end with '/'"),
        ("/a//b", "empty segments"),
        ("/a/./b", "'.' or '..' segments"),
        ("/..", "'.' or '..' segments"),
        ("/a b", "whitespace or control characters"),
        ("/a\tb", "whitespace or control characters"),
        ("/a\x00", "whitespace or control characters"),
        ("/a?b", "a query"),
        ("/a#b", "a fragment"),
        ("/a%20b", "percent-escape"),
    ],
)
def test_invalid_routes(route: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace(".", r"\.").replace("?", r"\?")):
        validate_route(route)


def test_route_table_rejects_invalid_routes() -> None:
    with pytest.raises(ValueError, match="must start with"):
        table("api")


@pytest.mark.parametrize(
    ("route", "global_root", "expected"),
    [
        ("/", "", ""),
        ("/api", "", "/api"),
        ("/", "/prefix", "/prefix"),
        ("/api", "/prefix", "/prefix/api"),
        ("/api", "/prefix/", "/prefix/api"),
        ("/", "/", ""),
    ],
)
def test_root_path_for(route: str, global_root: str, expected: str) -> None:
    assert root_path_for(Mount(route, "x", noop), global_root) == expected


def test_mount_failed_and_consistency() -> None:
    assert not Mount("/", "x", noop).failed
    assert Mount("/", "x", None, error="boom").failed
    with pytest.raises(ValueError, match="neither an app nor an error"):
        Mount("/", "x", None)
