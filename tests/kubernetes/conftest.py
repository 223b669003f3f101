"""The Kubernetes side's tests import kube_support.py next to this file; `stack_plans` is shared by them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuscale.plan.engine import plan_in_subprocess
from gpuscale.plan.model import Plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stack_plans() -> dict[str, Plan]:
    """Both stacks planned once per session, each in a fresh interpreter (the real program, offline)."""
    return {stack: plan_in_subprocess(ROOT, stack) for stack in ("dev", "prod")}
