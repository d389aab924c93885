"""permessage-deflate (RFC 7692), server side, with a hard bound on the inflated size of a message.

Why not wsproto's ``PerMessageDeflate``: it inflates every received chunk in full, so a few
kilobytes of compressed input can expand a thousandfold before any size check sees the
result (a decompression bomb).  Here every ``decompress`` call is given ``max_length`` =
what is left of the message budget plus one byte, so no more than ``max_size + 1`` bytes of
a message are ever produced; a message that would exceed it fails the connection with 1009.

Negotiation (RFC 7692 section 7), server side:

* the first acceptable offer in the client's list wins; later offers are ignored;
* an offer with an unknown or repeated parameter, or a window size outside 8..15, is declined;
  so is ``server_max_window_bits=8`` (zlib cannot produce raw deflate with a 256-byte window);
* ``server_no_context_takeover`` and ``client_no_context_takeover`` are confirmed when offered;
  ``server_max_window_bits=N`` is confirmed and honoured;
* ``client_max_window_bits`` is never answered: we inflate with the largest window (15), which
  reads a stream made with any smaller one.

A message may also end with a DEFLATE block that has BFINAL set instead of the empty sync block
(RFC 7692 7.2.3.4, what a compressor flushed with Z_FINISH writes).  That ends the deflate stream:
no tail is appended, bytes after the final block are an error (1007), and the next compressed
message starts a new stream (without this, zlib would swallow every later message as trailing
data and deliver it empty).

Outgoing messages are compressed with a 4 KiB window and memLevel 5 at most (about 32 KiB of
zlib state instead of 256 KiB per connection, as the websockets library does); a smaller window
than the one announced is always valid for the peer's decompressor.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

_SYNC_TAIL = b"\x00\x00\xff\xff"
_COMPRESS_WINDOW_BITS = 12
_COMPRESS_MEM_LEVEL = 5
_FLAG_PARAMS = frozenset({"server_no_context_takeover", "client_no_context_takeover"})
_BITS_PARAMS = frozenset({"server_max_window_bits", "client_max_window_bits"})


def _parse_offer(offer: str) -> dict[str, int | None] | None:
    """``permessage-deflate; a; b=10`` -> ``{"a": None, "b": 10}``; None for an offer we decline."""
    params: dict[str, int | None] = {}
    for part in offer.split(";")[1:]:
        name, sep, raw = part.partition("=")
        name = name.strip().lower()
        value = raw.strip().strip('"')
        if name in params or name not in _FLAG_PARAMS | _BITS_PARAMS:
            return None
        if name in _FLAG_PARAMS:
            if sep:
                return None
            params[name] = None
        elif sep:
            if not value.isdigit() or not 8 <= int(value) <= 15:
                return None
            params[name] = int(value)
        elif name == "client_max_window_bits":
            params[name] = None  # "you may tell me a window size"
        else:
            return None  # server_max_window_bits needs a value
    if params.get("server_max_window_bits") == 8:
        return None
    return params


class BoundedDeflate(Extension):
    """One connection's permessage-deflate state; ``max_size`` bounds each inflated message."""

    name = "permessage-deflate"

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._enabled = False
        self._compress_bits = _COMPRESS_WINDOW_BITS
        self._reset_compressor = False  # server_no_context_takeover
        self._reset_decompressor = False  # client_no_context_takeover
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self._frame_is_data = False
        self._inflating = False  # the current message is compressed
        self._inflated = 0  # bytes inflated so far for the current message

    def enabled(self) -> bool:
        return self._enabled

    def offer(self) -> bool:
        return False  # a server never offers; it answers the client's offers

    def accept(self, offer: str) -> str | None:
        if self._enabled:
            return None
        params = _parse_offer(offer)
        if params is None:
            return None
        answer: list[str] = []
        if "server_no_context_takeover" in params:
            self._reset_compressor = True
            answer.append("server_no_context_takeover")
        if "client_no_context_takeover" in params:
            self._reset_decompressor = True
            answer.append("client_no_context_takeover")
        bits = params.get("server_max_window_bits")
        if bits is not None:
            self._compress_bits = min(bits, _COMPRESS_WINDOW_BITS)
            answer.append(f"server_max_window_bits={bits}")
        self._enabled = True
        return "; ".join(answer)

    # -- inbound -----------------------------------------------------------------------------

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if rsv.rsv1 and (opcode.iscontrol() or opcode is Opcode.CONTINUATION):
            return CloseReason.PROTOCOL_ERROR
        self._frame_is_data = not opcode.iscontrol()
        if self._frame_is_data and opcode is not Opcode.CONTINUATION:
            self._inflating = rsv.rsv1
            self._inflated = 0
        return RsvBits(True, False, False)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not (self._frame_is_data and self._inflating):
            return data
        return self._inflate(data)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not (fin and self._frame_is_data and self._inflating):
            return None
        decompressor = self._decompressor
        ended = decompressor is not None and decompressor.eof  # the message ended with a final block
        tail = b"" if ended else self._inflate(_SYNC_TAIL)
        self._inflating = False
        if self._reset_decompressor or ended:
            self._decompressor = None
        return tail

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        budget = self.max_size - self._inflated
        try:
            out = decompressor.decompress(data, budget + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > budget:
            return CloseReason.MESSAGE_TOO_BIG
        if decompressor.eof and decompressor.unused_data:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA  # bytes after the final block of the message
        self._inflated += len(out)
        return out

    # -- outbound ----------------------------------------------------------------------------

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        if opcode.iscontrol():
            return rsv, data
        if opcode is not Opcode.CONTINUATION:
            rsv = RsvBits(True, rsv.rsv2, rsv.rsv3)
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self._compress_bits, _COMPRESS_MEM_LEVEL
            )
        out = compressor.compress(data)
        if fin:
            out += compressor.flush(zlib.Z_SYNC_FLUSH)
            if out.endswith(_SYNC_TAIL):
                out = out[:-4]
            if self._reset_compressor:
                self._compressor = None
        return rsv, out
