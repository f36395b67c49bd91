"""Test helpers for plugin authors, and the pytest plugin that provides them as fixtures.

Installed with lossbench as a ``pytest11`` entry point, so that in a plugin package's tests::

    from lossbench.testing import check_loss, smoke_run

    def test_conforms():
        check_loss(MyLoss())                      # ConformanceError (an AssertionError) names any problem

    def test_trains(lossbench_smoke):             # fixture: smoke_run writing into the test's tmp_path
        result = lossbench_smoke(losses=["my-loss"], models=["mlp"], datasets=["ring8"], modules=[my_plugin])
        assert result.ok

A smoke run loads lossbench's built-ins plus exactly the plugins under test (``modules``, ``plugins_dir``,
``entry_points``), so it gives the same answer on every machine; ``environment=True`` adds what ``lossbench``
itself would load here, whose problems then never fail the test.

Helpers: ``check_loss``, ``check_model``, ``check_dataset``, ``check_metric``, ``check_feature_space``,
``make_context`` and
``ConformanceError`` (from ``lossbench.authoring.conformance``); ``smoke_run`` and ``SmokeResult`` (from
``lossbench.authoring.smoke``); ``check_stacked`` (from ``lossbench.authoring.stacked_check``: the loss trains
stacked, ``lossbench run --vectorise``, as alone).
Fixtures: ``lossbench_smoke`` and ``lossbench_environment``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time ``__getattr__`` below loads each helper
    from lossbench.authoring.conformance import (
        ConformanceError,
        check_dataset,
        check_feature_space,
        check_loss,
        check_metric,
        check_model,
        make_context,
    )
    from lossbench.authoring.smoke import SmokeResult, smoke_run
    from lossbench.authoring.stacked_check import check_stacked
    from lossbench.plugin.loader import Environment

try:
    import pytest
except ImportError:  # pragma: no cover - the helpers work without pytest; the fixtures need it
    pytest = None  # type: ignore[assignment]

# This module is a pytest plugin loaded into every pytest session where lossbench is installed, so it imports
# nothing heavy itself: the helpers (torch, scipy, pandas) load on first use (PEP 562). No ``__dir__``: pytest
# reads every name ``dir()`` lists when it registers the plugin, which would load them all.
_HOME = {
    **dict.fromkeys(
        (
            "ConformanceError",
            "check_dataset",
            "check_feature_space",
            "check_loss",
            "check_metric",
            "check_model",
            "make_context",
        ),
        "lossbench.authoring.conformance",
    ),
    "SmokeResult": "lossbench.authoring.smoke",
    "smoke_run": "lossbench.authoring.smoke",
    "check_stacked": "lossbench.authoring.stacked_check",
}


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any name (a typo) as Any

    def __getattr__(name: str) -> Any:
        """Load a helper from its module on first use, and keep it here for the next."""
        home = _HOME.get(name)
        if home is None:
            raise AttributeError(f"module 'lossbench.testing' has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value


__all__ = [
    "ConformanceError",
    "SmokeResult",
    "check_dataset",
    "check_feature_space",
    "check_loss",
    "check_metric",
    "check_model",
    "check_stacked",
    "make_context",
    "smoke_run",
    "lossbench_environment",
    "lossbench_smoke",
]


if pytest is not None:

    @pytest.fixture
    def lossbench_smoke(tmp_path: Path) -> Callable[..., SmokeResult]:
        """``smoke_run`` (built-ins plus the plugins under test) with its results under the test's ``tmp_path``."""

        from lossbench.authoring.smoke import smoke_run

        def run(**kwargs: Any) -> SmokeResult:
            kwargs.setdefault("results_dir", tmp_path / "lossbench-results")
            return smoke_run(**kwargs)

        return run

    @pytest.fixture(scope="session")
    def lossbench_environment() -> Environment:
        """The plugins and catalog that ``lossbench`` itself would load here (built-ins, entry points, ./plugins)."""
        from lossbench.plugin.loader import load_environment

        return load_environment()
