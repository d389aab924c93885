"""The seed's programmatic example: a Tonberry app (``pip install tonberry``) served by Qactuar.

Tonberry is the ASGI framework Qactuar began as a companion to.  ``seed.py`` is the example from the
seed's page, unchanged but for ruff's blank lines: ``python apps/tonberry_example/seed.py`` serves
it with ``qactuar.run(app=app)``.  ``tonberry_example:app`` is the same app for a config's ``[apps]``.

Tonberry 0.2.1 (2020) predates two ASGI details, so mount it at ``/`` over TCP: it routes on the
full ``path`` without taking ``root_path`` off (a mount at ``/tb`` answers 404 for ``/tb/``), and its
logger fails when ``client`` is None (requests over a Unix socket).
"""

from __future__ import annotations

from tonberry import create_app

from tonberry_example.seed import Root

app = create_app(Root)
