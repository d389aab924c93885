"""ProcessSampler against this process and one that has exited."""

from __future__ import annotations

import os
import subprocess
import sys

from qactuar.stats.procstats import ProcessSampler


def test_first_sample_has_no_cpu_then_it_does() -> None:
    sampler = ProcessSampler()
    me = os.getpid()
    cpu, rss = sampler.sample([me])[me]
    assert cpu is None
    assert rss is not None and rss > 1_000_000
    cpu, _ = sampler.sample([me])[me]
    assert isinstance(cpu, float) and cpu >= 0.0


def test_vanished_pids_are_left_out() -> None:
    child = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert child.returncode == 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    sampler = ProcessSampler()
    assert set(sampler.sample([os.getpid(), gone.pid])) == {os.getpid()}


def test_pids_not_asked_for_are_forgotten() -> None:
    sampler = ProcessSampler()
    me = os.getpid()
    sampler.sample([me])
    assert sampler.sample([]) == {}
    assert sampler.sample([me])[me][0] is None  # history dropped with the pid
