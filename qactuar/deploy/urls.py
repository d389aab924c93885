"""What a deploy may ask git to fetch: the URL, the ref and the entry point, checked before git runs.

The policy follows git's own history of clone-time command execution (CVE-2015-7545, CVE-2017-1000117,
CVE-2018-17456, CVE-2020-5260) and GitPython's (CVE-2022-24439 and its follow-ups): a blocklist inside a
wrapper is not a boundary, so the URL must match an allowlist here, and nothing the user typed ever
reaches git as an option (the argv is fixed in ``git.py``; the URL comes after ``--``).

Refused, each with its own reason:

- remote-helper transports (``ext::sh -c ...``, ``fd::3``, any ``<transport>::<address>``) and ``::``
  anywhere outside a bracketed IPv6 host;
- anything that starts with ``-`` (it would be an option), whitespace, control characters (raw or
  percent-encoded: ``%0a`` once smuggled lines into credential helpers) and non-ASCII text;
- SCP-style ``host:path`` and plain paths: a URL names its scheme;
- schemes not in ``DEPLOY_ALLOWED_SCHEMES`` (default ``https``), hosts not in ``DEPLOY_ALLOWED_HOSTS``
  when that list is set;
- embedded credentials (``user:password@``, ``token@``); ``ssh://`` may name the login user (``git@``),
  never a password;
- a host that starts with ``-`` (``ssh://-oProxyCommand=...``), a malformed port, a query or a fragment.

A ref is a branch, tag or commit name: ``git check-ref-format``'s rules, made stricter (ASCII letters,
digits, ``._/-``, no leading ``-`` or ``.``).  An entry point is ``module:attr`` as in APPS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from qactuar.config import is_app_string
from qactuar.deploy.errors import DeployError

MAX_URL = 2048
MAX_REF = 255
_TRANSPORT = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.\-]*::")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_NETLOC = re.compile(
    r"(?:[A-Za-z0-9._~\-]+@)?(?:[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/\-]*")
COMMIT_RE = re.compile(r"[0-9a-f]{7,64}")


def _refuse(url: str, why: str) -> DeployError:
    return DeployError(f"URL {url!r:.120} refused: {why}")


def check_url(url: str, *, schemes: Sequence[str], hosts: Sequence[str]) -> str:
    """``url`` if git may clone it under this policy, else DeployError with the reason."""
    if not url:
        raise DeployError("the repository URL is empty")
    if len(url) > MAX_URL:
        raise _refuse(url, f"longer than {MAX_URL} characters")
    if url.startswith("-"):
        raise _refuse(url, "it starts with '-', so git would read it as an option")
    if _TRANSPORT.match(url):
        raise _refuse(url, "'<transport>::<address>' runs a git remote helper (ext::, fd::, ...)")
    if any(char.isspace() or not char.isprintable() for char in url):
        raise _refuse(url, "it contains whitespace or control characters")
    if not url.isascii():
        raise _refuse(url, "it contains non-ASCII characters (write an IDN host in its xn-- form)")
    if _ENCODED_CONTROL.search(url):
        raise _refuse(url, "it contains a percent-encoded control character")
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        raise _refuse(url, "it is not a URL of the form scheme://host/path (SCP-style and paths are not)")
    scheme = scheme_match.group(1).lower()
    if scheme not in schemes:
        allowed = ", ".join(schemes) or "none"
        raise _refuse(url, f"scheme {scheme!r} is not allowed (DEPLOY_ALLOWED_SCHEMES: {allowed})")
    if "::" in _IPV6.sub("", url):
        raise _refuse(url, "'::' outside an IPv6 address looks like a git remote-helper transport")
    if "?" in url or "#" in url:
        raise _refuse(url, "a repository URL has no query or fragment")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        has_password = parts.password is not None
        has_user = parts.username is not None
        port = parts.port  # ValueError for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise _refuse(url, f"it does not parse: {exc}") from None
    if has_password or (has_user and scheme != "ssh"):
        raise _refuse(url, "it embeds credentials; configure access outside the URL")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise _refuse(url, "a file URL is file:///absolute/path")
        return url
    if not host or not _NETLOC.fullmatch(parts.netloc):
        raise _refuse(url, "the host is missing or is not a plain host name or address")
    if port == 0:
        raise _refuse(url, "port 0 is not a port to connect to")
    if hosts and host.lower() not in {allowed.lower() for allowed in hosts}:
        raise _refuse(url, f"host {host!r} is not in DEPLOY_ALLOWED_HOSTS ({', '.join(hosts)})")
    if not parts.path.strip("/"):
        raise _refuse(url, "it names no repository path")
    return url


def check_ref(ref: str) -> str:
    """``ref`` if it is a plausible branch, tag or commit name (never an option), else DeployError."""
    problem = None
    if not ref or len(ref) > MAX_REF:
        problem = f"a ref is 1-{MAX_REF} characters"
    elif not _REF.fullmatch(ref):
        problem = "a ref is ASCII letters, digits and '._/-', and starts with a letter, digit or '_'"
    elif ".." in ref or "//" in ref or "/." in ref or ref.endswith(("/", ".", ".lock")) or "@{" in ref:
        problem = "git does not allow '..', '//', '/.', '@{' or a trailing '/', '.' or '.lock' in a ref"
    if problem:
        raise DeployError(f"ref {ref!r:.80} refused: {problem}")
    return ref


def check_entry(entry: str) -> str:
    """``entry`` if it is ``module:attr`` (or ``module:factory()``), else DeployError."""
    if not is_app_string(entry):
        raise DeployError(
            f"entry point {entry!r:.80} refused: expected 'module:attr' or 'module:factory()' "
            "(dotted Python identifiers)"
        )
    return entry
