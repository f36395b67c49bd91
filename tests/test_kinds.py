"""The table of kinds is the one declaration of what a loss, model, dataset and metric are to the plugin system;
what is derived from it agrees with it, and the one rule for metric values gives the engine and ``check_metric``
the same answer."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import lossbench
import lossbench.testing
from lossbench import api, hookspecs
from lossbench.api import Metric, MetricContext
from lossbench.authoring import conformance, scaffold, scaffold_templates
from lossbench.plugin import kinds
from lossbench.plugin.kinds import KINDS, LOSSES, METRICS, kind_named
from lossbench.plugin.registry import Catalog, RegistrationError
from lossbench.scoring.evaluate import EvaluationContext, run_metrics
from lossbench.testing import ConformanceError, check_metric, make_context

PLUGIN = Path(kinds.__file__).parent


def test_each_kind_registers_through_its_own_hookspec_in_table_order() -> None:
    registering = [name for name in hookspecs.HOOK_NAMES if name.startswith("register_")]
    assert (
        [kind.hook for kind in KINDS]
        == registering
        == ["register_losses", "register_models", "register_datasets", "register_metrics", "register_feature_spaces"]
    )


def test_hook_names_are_read_off_the_hookspec_declarations() -> None:
    assert hookspecs.HOOK_NAMES[-2:] == ("run_finished", "run_logged")
    assert all(hasattr(getattr(hookspecs, name), "lossbench_spec") for name in hookspecs.HOOK_NAMES)


def test_each_kinds_bases_are_public_classes() -> None:
    for kind in KINDS:
        for base in kind.bases:
            assert isinstance(getattr(api, base), type) and base in lossbench.__all__, (kind.name, base)


def test_each_kinds_conformance_check_is_a_public_helper_and_conformance_derives_its_table() -> None:
    for kind in KINDS:
        assert kind.check in lossbench.testing.__all__
        assert conformance.CHECKS[kind.name] is getattr(lossbench.testing, kind.check)
    assert list(conformance.CHECKS) == [kind.name for kind in KINDS]


def test_the_scaffold_offers_exactly_the_kinds_with_templates() -> None:
    assert scaffold.PLUGIN_KINDS == ("loss", "model", "dataset", "metric", "feature space")
    assert scaffold_templates.TEMPLATES == {kind.singular: kind.templates for kind in KINDS}
    for kind in KINDS:
        assert "$name" in kind.try_it
        for template in kind.templates:
            assert {template} <= set(scaffold_templates.MODULES) & set(scaffold_templates.TESTS) & set(
                scaffold_templates.DESCRIPTIONS
            )
        files = scaffold.plugin_files("probe", kind.singular)
        plugin = next(text for path, text in files.items() if path.endswith("plugin.py"))
        tests = next(text for path, text in files.items() if path.startswith("tests/"))
        assert f"def {kind.hook}(register)" in plugin and kind.check in tests


def test_kind_named_takes_either_spelling() -> None:
    assert kind_named("losses") is kind_named("loss") is LOSSES
    with pytest.raises(KeyError):
        kind_named("lossez")


def test_the_catalog_has_one_typed_registry_per_kind() -> None:
    catalog = Catalog()
    assert list(catalog.registries) == [kind.name for kind in KINDS]
    assert catalog.losses is catalog[LOSSES] is catalog.registry("losses")
    assert catalog.metrics is catalog[METRICS]
    for kind in KINDS:  # a typed property is sugar a kind may have; catalog[kind] is always there
        if hasattr(Catalog, kind.name):
            assert getattr(catalog, kind.name) is catalog[kind]


def test_a_registry_validates_with_its_kinds_check() -> None:
    class Nameless:
        name = "nameless"

    with pytest.raises(RegistrationError, match="metric 'nameless' has no compute"):
        Catalog().metrics.add(Nameless(), "test")  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="dataset 'nameless' spec must be a lossbench.DataSpec"):
        Catalog().datasets.add(Nameless(), "test")  # type: ignore[arg-type]


def test_list_shows_each_kinds_facts(cli) -> None:
    import json

    listing = json.loads(cli("list", "--json").stdout)
    assert list(listing) == [kind.name for kind in KINDS]
    ring8 = next(row for row in listing["datasets"] if row["name"] == "ring8")
    assert ring8 == {
        "name": "ring8",
        "plugin": "lossbench.builtin.datasets",
        "description": ring8["description"],
        "kind": "points",
        "shape": [2],
        "modes": 8,
    }
    assert next(row for row in listing["losses"] if row["name"] == "vae")["family"] == "vae"
    assert set(next(row for row in listing["metrics"] if row["name"] == "fid")) == {"name", "plugin", "description"}


def _module_level_imports(path: Path) -> set[str]:
    """Modules imported at import time (not under ``if TYPE_CHECKING`` nor inside functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    return found


def test_the_kinds_table_imports_nothing_heavy() -> None:
    """The CLI builds its choices from the table before any command runs: no torch, numpy or api at import."""
    light = {"__future__", "collections.abc", "dataclasses", "typing", "numbers", "lossbench.plugin.registration"}
    for module in ("kinds.py", "registration.py", "metric_values.py"):
        assert _module_level_imports(PLUGIN / module) <= light, module


# -- one rule for metric values ---------------------------------------------------------------------------------


class Probe(Metric):
    """Returns one value chosen by the test."""

    name = "probe"

    def __init__(self, value: object) -> None:
        self.value = value

    def compute(self, ctx: MetricContext) -> dict[str, object]:
        return {"probe": self.value}


ACCEPTED = [1.5, 2, np.float32(0.25), np.float64(-3.0), np.int64(7), math.nan, math.inf]
REJECTED = [
    (True, "value of 'probe' is bool; expected a float (or a str fact) (write float(flag) for a rate"),
    (
        np.bool_(False),
        f"value of 'probe' is {type(np.bool_(False)).__name__}; expected a float (or a str fact) (write float(flag)",
    ),
    (torch.tensor(1.0), "value of 'probe' is Tensor; expected a float (or a str fact) (return value.item()"),
    (torch.tensor([1.0, 2.0]), "value of 'probe' is Tensor; expected a float"),
    (np.array(1.0), "value of 'probe' is ndarray; expected a float (or a str fact) (return value.item()"),
    (None, "value of 'probe' is NoneType; expected a float (or a str fact)"),
    ([1.0], "value of 'probe' is list; expected a float (or a str fact)"),
]


@pytest.fixture(scope="module")
def ctx() -> EvaluationContext:
    return make_context(n=64)


@pytest.mark.parametrize("value", ACCEPTED, ids=repr)
def test_numbers_are_stored_as_floats_by_the_engine_and_pass_the_check(ctx, value: object) -> None:
    outcome = run_metrics([Probe(value)], ctx)
    assert not outcome.errors and outcome.texts == {}
    stored = outcome.values["probe"]
    assert type(stored) is float and (stored == float(value) or (math.isnan(stored) and math.isnan(value)))
    assert check_metric(Probe(value), n=64) == {"probe": value} or math.isnan(value)


def test_a_str_is_a_text_fact_on_both_paths(ctx) -> None:
    outcome = run_metrics([Probe("pixels")], ctx)
    assert outcome.texts == {"probe": "pixels"} and outcome.values == {} and not outcome.errors
    assert check_metric(Probe("pixels"), n=64) == {"probe": "pixels"}


@pytest.mark.parametrize("value, message", REJECTED, ids=lambda v: type(v).__name__)
def test_bools_tensors_and_the_rest_are_rejected_with_the_same_words_on_both_paths(ctx, value, message) -> None:
    outcome = run_metrics([Probe(value)], ctx)
    assert outcome.values == {} and outcome.texts == {}
    assert outcome.errors["probe"].startswith(message)
    with pytest.raises(ConformanceError) as failure:
        check_metric(Probe(value), n=64)
    assert str(failure.value) == f"metric 'probe': {outcome.errors['probe']}"


def test_a_metric_that_breaks_the_rule_contributes_nothing_and_the_others_still_count(ctx) -> None:
    class Mixed(Metric):
        name = "mixed"

        def compute(self, ctx: MetricContext) -> dict[str, object]:
            return {"mixed_ok": 1.0, "mixed_flag": True}

    outcome = run_metrics([Mixed(), Probe(0.5)], ctx)
    assert outcome.values == {"probe": 0.5}
    assert outcome.errors == {
        "mixed": "value of 'mixed_flag' is bool; expected a float (or a str fact) (write "
        "float(flag) for a rate, or return a str fact)"
    }


FLAG_PLUGIN = """
import lossbench


class Flag(lossbench.Metric):
    name = "flag"

    def compute(self, ctx):
        return {"flag": True, "flag_rate": 0.5}


@lossbench.hookimpl
def register_metrics(register):
    register(Flag())
"""


def test_a_run_names_the_metric_its_plugin_and_the_key_that_broke_the_rule(tmp_path: Path) -> None:
    from conftest import make_spec

    from lossbench.plugin.loader import PluginConfig, load_environment
    from lossbench.training.train import run_safely

    (tmp_path / "flags.py").write_text(FLAG_PLUGIN)
    env = load_environment(PluginConfig(plugins_dir=tmp_path, entry_points=False))
    result = run_safely(make_spec(steps=2), env.catalog)
    assert result.status == "ok" and "fid" in result.metrics and "flag_rate" not in result.metrics
    assert result.reason == (
        "metric 'flag' (plugin 'flags') failed: value of 'flag' is bool; expected a float (or a "
        "str fact) (write float(flag) for a rate, or return a str fact)"
    )


# -- the context a metric reads -----------------------------------------------------------------------------------


def _protocol_members(protocol: type) -> set[str]:
    names = set(protocol.__annotations__)
    names |= {name for name, value in vars(protocol).items() if inspect.isfunction(value) and not name.startswith("_")}
    return names


def test_the_harness_context_is_exactly_the_public_protocol(ctx) -> None:
    fields = {f.name for f in dataclasses.fields(EvaluationContext) if not f.name.startswith("_")}
    methods = {
        name
        for name, value in vars(EvaluationContext).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    assert _protocol_members(MetricContext) == fields | methods
    assert isinstance(ctx, MetricContext)
    assert lossbench.EvaluationContext is EvaluationContext and lossbench.MetricContext is MetricContext
