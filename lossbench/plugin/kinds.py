"""The kinds of plugin object, declared once: everything that differs between a loss, a model, a dataset and a
metric, as far as the plugin system, ``lossbench list`` and the authoring kit are concerned.

Each ``Kind`` names its ``register_<name>`` hook (declared, with its contract, in ``lossbench.hookspecs``), the
public base class(es) of ``lossbench.api`` its objects are written against, the structural check
``register(obj)`` runs, the conformance check of ``lossbench.testing`` a plugin author runs on it, the
``lossbench new-plugin`` templates and the facts ``lossbench list`` shows. The registry, the plugin loader, the
CLI's choices, conformance and the scaffold are derived from ``KINDS``; adding a kind is one entry here plus its
hookspec (tests/test_kinds.py checks that the two agree).

This module imports nothing heavy (no torch): the CLI reads it to build its choices before any command runs.
Later stages (the authoring kit) are named, not imported: ``check`` is a function name in ``lossbench.testing``,
``templates`` are keys of ``lossbench.authoring.scaffold_templates``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lossbench.plugin.registration import (
    validate_dataset,
    validate_feature_space,
    validate_loss,
    validate_metric,
    validate_model,
)

if TYPE_CHECKING:  # pragma: no cover - type parameters only
    from lossbench.api import Dataset, FeatureSpace, Loss, Metric, ModelFactory

T = TypeVar("T")


def _no_facts(obj: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Kind(Generic[T]):
    """One kind of plugin object; ``T`` is the type its registry holds (``Registry[T]``)."""

    name: str
    """Plural, as users type it: the registry (``catalog.losses``), ``lossbench list losses``, the hook's suffix."""
    singular: str
    """In messages ("unknown loss 'x'") and ``lossbench new-plugin --kind loss``."""
    bases: tuple[str, ...]
    """The classes of ``lossbench.api`` its objects are written against (subclass one, or match its members)."""
    validate: Callable[[Any], None]
    """The structural check ``register(obj)`` runs; raises ``RegistrationError`` saying what is wrong."""
    check: str
    """The conformance check a plugin author runs in their tests: a function of ``lossbench.testing``."""
    templates: tuple[str, ...] = ()
    """``lossbench new-plugin`` templates, the default first (keys of ``scaffold_templates.MODULES``); none: the
    kind cannot be scaffolded."""
    try_it: str = ""
    """The command a scaffolded package's README suggests, with ``$name`` for the registered name."""
    trains: bool = False
    """True when a changed object of this kind makes a stored run stale (it shaped the training), not only its
    scores."""
    facts: Callable[[Any], dict[str, Any]] = field(default=_no_facts)
    """Columns ``lossbench list`` shows beside name, description and plugin."""

    @property
    def option(self) -> str:
        """As typed on the command line (``new-plugin --kind feature-space``): the singular, hyphenated."""
        return self.singular.replace(" ", "-")

    @property
    def hook(self) -> str:
        """The hook a plugin implements to register objects of this kind."""
        return f"register_{self.name}"


LOSSES: Kind[Loss] = Kind(
    "losses",
    "loss",
    ("AdversarialLoss", "VAELoss"),
    validate_loss,
    "check_loss",
    templates=("hinge", "nonsaturating", "wasserstein"),
    try_it="lossbench run --grid -l $name -d ring8 --preset smoke",
    trains=True,
    facts=lambda obj: {"family": obj.family},
)
MODELS: Kind[ModelFactory] = Kind(
    "models",
    "model",
    ("ModelFactory",),
    validate_model,
    "check_model",
    templates=("mlp",),
    try_it="lossbench run --grid -m $name -d ring8 --preset smoke",
    trains=True,
    facts=lambda obj: {"family": obj.family},
)
DATASETS: Kind[Dataset] = Kind(
    "datasets",
    "dataset",
    ("Dataset",),
    validate_dataset,
    "check_dataset",
    templates=("rings",),
    try_it="lossbench run --grid -l nonsaturating -d $name --preset smoke",
    trains=True,
    facts=lambda obj: {"kind": obj.spec.kind, "shape": list(obj.spec.shape), "modes": obj.spec.n_modes},
)
METRICS: Kind[Metric] = Kind(
    "metrics",
    "metric",
    ("Metric",),
    validate_metric,
    "check_metric",
    templates=("energy",),
    try_it="lossbench run --grid -l nonsaturating -d ring8 --preset smoke && lossbench show --metric $name",
)

FEATURE_SPACES: Kind[FeatureSpace] = Kind(
    "feature_spaces",
    "feature space",
    ("FeatureSpace",),
    validate_feature_space,
    "check_feature_space",
    templates=("projection",),
    try_it="lossbench run --grid -l nonsaturating -d digits --preset smoke --feature-space $name",
    facts=lambda obj: {
        "inputs": obj.inputs,
        "width": obj.width,
        "weights": None if obj.weights is None else str(obj.weights),
    },
)

KINDS: tuple[Kind[Any], ...] = (LOSSES, MODELS, DATASETS, METRICS, FEATURE_SPACES)
"""Every kind, in registration order (the loader calls the hooks in this order)."""
KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
SINGULAR: dict[str, str] = {kind.name: kind.singular for kind in KINDS}


def kind_named(name: str) -> Kind[Any]:
    """The kind called ``name``: plural ("losses"), singular ("loss") or as an option ("feature-space");
    ``KeyError`` when there is none."""
    for kind in KINDS:
        if name in (kind.name, kind.singular, kind.option):
            return kind
    raise KeyError(name)
