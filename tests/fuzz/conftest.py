"""Hypothesis settings for the fuzz tests: deterministic and bounded for CI, bigger on request.

Every fuzz test is decorated with ``settings.get_profile(PROFILE)``, so the profile applies to these
tests only, never to hypothesis tests elsewhere in the suite (nothing here calls ``load_profile``).
CI runs the default count (about 15 s for the folder on two busy cores); a hunt for defects runs
more, still derandomized (the same examples on every run with the same count):

    QACTUAR_FUZZ_EXAMPLES=20000 pytest tests/fuzz -q
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

PROFILE = "qactuar-fuzz"
DEFAULT_EXAMPLES = 100

settings.register_profile(
    PROFILE,
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("QACTUAR_FUZZ_EXAMPLES") or DEFAULT_EXAMPLES),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],  # no slow explain
)
