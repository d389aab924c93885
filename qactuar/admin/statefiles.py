"""The admin socket's files on disk: the token, the recorded address, and the private directory they live in.

The server writes them and the CLI/TUI read them, so both sides share this module and agree on paths and
formats.  Everything is written atomically -- a temporary file in the same directory, then a rename (or a
link, where two servers racing must not overwrite each other) -- so a crash or a concurrent reader never sees
half a file.

- The token file (``config.admin_token_file()``, default ``<STATE_DIR>/admin.token``) holds one line: a
  ``secrets.token_urlsafe(32)`` token (256 bits).  Mode 0600.  Missing directories are created 0700; an
  existing directory is left as it is (it may be the user's own, like ``~``), since the file's own mode is
  what guards the token.
- The address file (``admin.addr`` beside the token file) holds ``host:port`` (``[v6]:port`` for IPv6).  It
  is written only when ``ADMIN_PORT = 0`` asked the kernel for a free port, which nobody could guess.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from qactuar.net import format_address

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 bits, 43 characters
MIN_TOKEN_LENGTH = 22  # 128 bits of urlsafe base64: a shorter token in the file is replaced
ADDR_FILE_NAME = "admin.addr"

server_log = logging.getLogger("qt_server")


def make_private_dir(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0700 (the umask cannot widen it)."""
    missing = [parent for parent in (path, *path.parents) if not parent.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
            os.chmod(directory, 0o700)


def _temp_file(path: Path, text: str) -> str:
    """Write ``text`` to a new 0600 file beside ``path`` (flushed to disk) and return its name."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        os.unlink(temp)
        raise
    return temp


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with a 0600 file holding ``text``, in one rename."""
    make_private_dir(path.parent)
    temp = _temp_file(path, text)
    try:
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def _create_atomic(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists (then False): two servers racing keep one token."""
    make_private_dir(path.parent)
    temp = _temp_file(path, text)
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(temp)
    return True


def read_token(path: Path) -> str:
    """The token in ``path``; OSError when it cannot be read, ValueError when it is too short to trust."""
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"admin token file {path} holds no token of at least {MIN_TOKEN_LENGTH} characters")
    return token


def ensure_token(path: Path) -> str:
    """The admin token from ``path``, creating the file with a new random token first if there is none.

    A file readable by others is narrowed to 0600 with a warning (its token may have been read: delete the
    file to get a new one); a file holding no usable token is replaced.  OSError when it cannot be done.
    """
    if _create_atomic(path, secrets.token_urlsafe(TOKEN_BYTES) + "\n"):
        server_log.info("Created the admin token file %s (mode 0600)", path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        server_log.warning(
            "Admin token file %s was readable by others (mode %04o); it is now 0600. "
            "Delete it and restart to get a new token if others may have read it",
            path,
            mode,
        )
    try:
        return read_token(path)
    except ValueError as exc:
        server_log.warning("%s; writing a new random token", exc)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        write_atomic(path, token + "\n")
        return token


def addr_file(token_file: Path) -> Path:
    """Where a server that picked a free admin port records it: beside the token file."""
    return token_file.parent / ADDR_FILE_NAME


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6 address]:port`` -> (host, port); ValueError says what is wrong."""
    host, colon, port_text = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not (colon and host and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(f"{text.strip()!r} is not HOST:PORT (for example localhost:1986 or [::1]:1986)")
    return host, int(port_text)


def write_addr(path: Path, host: str, port: int) -> None:
    write_atomic(path, format_address(host, port) + "\n")


def remove_addr(path: Path, host: str, port: int) -> None:
    """Remove the address file if it still records this address (another server may have replaced it)."""
    with contextlib.suppress(OSError, ValueError):
        if parse_address(path.read_text(encoding="utf-8")) == (host, port):
            path.unlink()
