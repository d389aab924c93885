"""What the request-side code raises for a request the server will not serve, and RFC 9110's token."""

from __future__ import annotations

# RFC 9110 5.6.2 token (field names, methods, chunk-extension names), as a bytes pattern to build on.
TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"


class RequestError(Exception):
    """The request (its head, target or body) cannot be served: answer ``status`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
