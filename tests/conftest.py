"""Shared test configuration.

Every test that covers a requirement names it: ``@pytest.mark.req("P-2.1")`` (several IDs may be
given). ``annulus trace`` reads these markers to write docs/traceability.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"


def pytest_collection_modifyitems(config, items):
    # Benchmarks and load runs are opt-in: `pytest -m slow` (make bench) runs them.
    if "slow" in (config.getoption("-m") or ""):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with `make bench` / `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None
