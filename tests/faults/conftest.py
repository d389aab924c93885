"""Fixtures of the fault-injection suite (the servers themselves come from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    """A folder where apps of testapps/faults.py note each request they start (``?mark=<folder>``)."""
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder
