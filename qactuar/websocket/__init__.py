"""WebSocket (RFC 6455) over wsproto: the ASGI websocket cycle on an upgraded HTTP/1.1 connection.

Layered like ``qactuar.http``:

- ``driver``: the sans-I/O connection (handshake checks, frames, reassembly, limits, closing);
- ``deflate``: permessage-deflate with the inflated size bounded;
- ``scope`` and ``cycle``: the ASGI scope, ``receive`` and ``send`` (message validation, queue);
- ``session``: the only part that touches the transport (flow control, keepalive, shutdown, logs).
"""
