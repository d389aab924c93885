"""WebSocket (RFC 6455) over wsproto: the ASGI websocket cycle on an upgraded connection."""
