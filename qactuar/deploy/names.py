"""App names: the directory a deployed app lives in, so they are validated like paths an attacker chose.

A name becomes ``APP_DIR/<name>/``, is shown in the TUI and written to the records, so only a small ASCII
alphabet is accepted: ``^[a-z][a-z0-9_-]{0,62}$`` (it starts with a letter, so ``.``, ``..``, dot-only
names, ``-rf`` and hidden names are impossible, and no separator or control character can occur).  On top
of the pattern, the resolved path must stay directly inside APP_DIR, which also catches an APP_DIR entry
that is a symlink pointing elsewhere.

Without ``--name`` the name is derived from the last segment of the URL (``.../blog.git`` -> ``blog``),
and the derived name must pass the same check -- it is never used as a path before that.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from qactuar.deploy.errors import DeployError

NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
NAME_RULE = "a name is 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter"


def check_name(name: str) -> str:
    """``name`` if it may name a deployed app, else DeployError saying why."""
    if not NAME_RE.fullmatch(name):
        raise DeployError(f"app name {name!r:.80} is not allowed: {NAME_RULE}")
    return name


def app_path(app_dir: Path, name: str) -> Path:
    """``APP_DIR/<name>`` for a checked name, refusing one whose resolved path leaves APP_DIR."""
    root = app_dir.resolve()
    path = root / check_name(name)
    if path.resolve().parent != root:
        raise DeployError(f"app name {name!r}: {path} resolves outside {root}; remove that link first")
    return path


def name_from_url(url: str) -> str:
    """The app name a URL suggests (its last path segment without ``.git``, lower case), checked."""
    try:
        path = urlsplit(url).path
    except ValueError:
        path = url
    last = path.rstrip("/").rpartition("/")[2].removesuffix(".git").lower()
    suggested = re.sub(r"[^a-z0-9_-]+", "-", last).strip("-_")
    if not NAME_RE.fullmatch(suggested):
        raise DeployError(f"cannot derive an app name from the URL; give one with --name ({NAME_RULE})")
    return suggested
