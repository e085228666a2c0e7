"""Parametrized tests whose cases cost seconds each: a few representative cases in the developer's fast loop
(``-m "not slow"``), the others marked ``slow``. CI's command runs them all."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest


def fast_and_slow(cases: Iterable[Any], fast: Iterable[str], id_of: Callable[[Any], str] = str) -> list:
    """``cases`` as ``pytest.param``s with ids ``id_of(case)``: those whose id is in ``fast`` unmarked, the others
    marked ``slow``. Every id in ``fast`` must be a case (a renamed setting must not drop out of the fast loop)."""
    cases, fast = list(cases), set(fast)
    ids = [id_of(case) for case in cases]
    missing = fast - set(ids)
    if missing:
        raise ValueError(f"fast cases {sorted(missing)} are not among the cases {ids}")
    return [
        pytest.param(
            *(case if isinstance(case, tuple) else (case,)),
            id=case_id,
            marks=() if case_id in fast else pytest.mark.slow,
        )
        for case, case_id in zip(cases, ids)
    ]
