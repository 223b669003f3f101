"""Fixtures of the component tests; the harness itself is in components_harness.py."""

from __future__ import annotations

from typing import Any

import pytest
from components_harness import Harness


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, tuple[Harness, dict[str, Any]]]:
    """Both stacks' programs, run once per test session: (harness with the registrations, exports)."""
    runs = {}
    for stack in ("dev", "prod"):
        harness = Harness()
        runs[stack] = (harness, harness.run_program(stack))
    return runs
