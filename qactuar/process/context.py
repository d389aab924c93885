"""What a generation hands to its process model: built once, before any fork."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from qactuar.apps.table import AppTable
from qactuar.config import Config
from qactuar.process.channel import ChannelWriter


@dataclass
class GenerationContext:
    number: int
    config: Config
    table: AppTable
    sockets: list[socket.socket]
    channel: ChannelWriter
    ssl_context: ssl.SSLContext | None
