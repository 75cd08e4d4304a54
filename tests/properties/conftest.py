"""Hypothesis profiles for the property-based adapter tests (issue 10, part B).

Two profiles, picked by the ``BRIDGE_HYPOTHESIS_PROFILE`` environment variable:

* ``ci`` (the default): derandomized, so every run tries the same examples and a
  failure is reproducible; few enough examples that the whole property layer runs in
  well under a minute on a 2-core machine.
* ``long``: randomized and many more examples, for an opt-in hunt::

      BRIDGE_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/properties -q -p no:cacheprovider

  (the per-test pytest timeout is raised to match; see ``PROFILE_TIMEOUT``).

Every example is bounded in time: a hang fails the example (``anyio.fail_after`` on
the ASGI side, a joined thread with a timeout on the WSGI side) instead of the run.
"""

from __future__ import annotations

import logging
import os
from typing import Iterator, TypedDict

import pytest
from hypothesis import HealthCheck, settings


class _CommonSettings(TypedDict):
    deadline: None
    suppress_health_check: list[HealthCheck]
    print_blob: bool


_COMMON: _CommonSettings = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}

# No example database in ci: a fresh clone and a developer's tree run the same examples
# (failures found by a long run are pinned with @example, not left in .hypothesis/).
settings.register_profile("ci", derandomize=True, database=None, max_examples=60, **_COMMON)
settings.register_profile("long", derandomize=False, max_examples=2000, **_COMMON)

PROFILE = os.environ.get("BRIDGE_HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

# Seconds one property test (all its examples, on one backend) may take before
# pytest-timeout stops it.
PROFILE_TIMEOUT = 600 if PROFILE == "ci" else 3 * 3600


@pytest.fixture(autouse=True)
def bridge_logs_not_captured() -> Iterator[None]:
    """pytest's log capture keeps every record, and a record of an app that raised
    (in close(), after its response was complete, ...) keeps that error and its
    traceback, the app's objects, for the whole run: a server's handlers format a
    record and drop it. (propagate = False is not enough: pytest still records it.)"""
    loggers = [logging.getLogger(name) for name in ("bridge.wsgi_to_asgi", "bridge.asgi_to_wsgi")]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger in loggers:
            logger.disabled = False
