"""Request ids: unique within a process and across forked processes."""

from __future__ import annotations

import os
import re

from qactuar.http.request_ids import RequestIds, request_ids


def test_ids_are_unique_and_well_formed() -> None:
    ids = RequestIds()
    drawn = [ids.next() for _ in range(10_000)]
    assert len(set(drawn)) == len(drawn)
    assert all(re.fullmatch(rb"[0-9a-f]{16}-[0-9a-f]+", rid) for rid in drawn)


def test_a_forked_child_draws_its_own_prefix() -> None:
    parent_id = request_ids.next()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write_end, request_ids.next())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 100)
    os.close(read_end)
    assert os.waitpid(pid, 0)[1] == 0
    assert child_id.split(b"-")[0] != parent_id.split(b"-")[0]
    assert child_id.endswith(b"-1")  # the child's counter starts afresh with its prefix
