"""Registries of the four kinds of plugin object, with validated names.

A ``Catalog`` is what the hooks fill: one ``Registry`` per kind. Registration validates each object and records
the plugin that registered it, so that duplicates and malformed objects are reported with the plugin's name;
lookups of unknown names suggest the nearest registered ones.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from lossbench.api import FAMILIES, AdversarialLoss, DataSpec, Recipe, VAELoss, describe
from lossbench.errors import UnknownNameError

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
KINDS = ("losses", "models", "datasets", "metrics")
SINGULAR = {"losses": "loss", "models": "model", "datasets": "dataset", "metrics": "metric"}

T = TypeVar("T")


class RegistrationError(ValueError):
    """An object a plugin tried to register is malformed or a duplicate; the message says why."""


def _overrides(obj: object, base: type, method: str) -> bool:
    return callable(getattr(obj, method, None)) and getattr(type(obj), method, None) is not getattr(base, method)


def _check_loss(obj: Any) -> None:
    if isinstance(obj, AdversarialLoss):
        missing = [m for m in ("discriminator_loss", "generator_loss") if not _overrides(obj, AdversarialLoss, m)]
    elif isinstance(obj, VAELoss):
        missing = [] if _overrides(obj, VAELoss, "loss") else ["loss"]
    else:
        raise RegistrationError("a loss must be an instance of lossbench.AdversarialLoss or lossbench.VAELoss")
    if missing:
        raise RegistrationError(f"does not implement {', '.join(missing)}")
    if not isinstance(obj.recipe, Recipe):
        raise RegistrationError("recipe must be a lossbench.Recipe")


def _check_model(obj: Any) -> None:
    if getattr(obj, "family", None) not in FAMILIES:
        raise RegistrationError(f"family must be one of {', '.join(FAMILIES)}, not {getattr(obj, 'family', None)!r}")
    for method in ("supports", "build"):
        if not callable(getattr(obj, method, None)):
            raise RegistrationError(f"has no {method}() method")


def _check_dataset(obj: Any) -> None:
    spec = getattr(obj, "spec", None)
    if not isinstance(spec, DataSpec):
        raise RegistrationError("spec must be a lossbench.DataSpec")
    if spec.kind not in ("points", "image"):
        raise RegistrationError(f"spec.kind must be 'points' or 'image', not {spec.kind!r}")
    for method in ("load", "mode_of"):
        if not callable(getattr(obj, method, None)):
            raise RegistrationError(f"has no {method}() method")


def _check_metric(obj: Any) -> None:
    if not callable(getattr(obj, "compute", None)):
        raise RegistrationError("has no compute() method")


CHECKS: dict[str, Callable[[Any], None]] = {
    "losses": _check_loss,
    "models": _check_model,
    "datasets": _check_dataset,
    "metrics": _check_metric,
}


def _preview(obj: object) -> str:
    """A short repr of a registered object, for messages."""
    text = repr(obj)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Entry(Generic[T]):
    """A registered object and the plugin that registered it."""

    obj: T
    plugin: str

    @property
    def name(self) -> str:
        return self.obj.name  # type: ignore[attr-defined]

    @property
    def description(self) -> str:
        return describe(self.obj)


@dataclass
class Registry(Generic[T]):
    """Objects of one kind by name. Duplicates and malformed objects raise ``RegistrationError``."""

    kind: str
    entries: dict[str, Entry[T]] = field(default_factory=dict)

    def add(self, obj: T, plugin: str) -> None:
        name = getattr(obj, "name", None)
        what = SINGULAR[self.kind]
        if not isinstance(name, str) or not SLUG.match(name):
            try:  # something that is not a loss at all (e.g. register("str")) is told so, not that its name is bad
                CHECKS[self.kind](obj)
            except RegistrationError as exc:
                raise RegistrationError(f"register() got {_preview(obj)} (a {type(obj).__name__}), "
                                        f"which is not a {what}: {exc}") from None
            raise RegistrationError(
                f"{what} {type(obj).__name__} has name {name!r}; a name must be a lowercase slug like 'my-{what}'"
            )
        try:
            CHECKS[self.kind](obj)
        except RegistrationError as exc:
            raise RegistrationError(f"{what} {name!r} {exc}") from None
        if name in self.entries:
            raise RegistrationError(
                f"{what} {name!r} is already registered by plugin {self.entries[name].plugin!r}; "
                f"plugin {plugin!r} registers it again (rename one of them)"
            )
        self.entries[name] = Entry(obj, plugin)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[T]:
        return (entry.obj for entry in self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str) -> T:
        """The object called ``name``; an unknown name raises ``UnknownNameError`` with suggestions."""
        if name in self.entries:
            return self.entries[name].obj
        raise UnknownNameError(unknown_name_message(SINGULAR[self.kind], name, self.names()))

    def plugin_of(self, name: str) -> str:
        return self.entries[name].plugin


def unknown_name_message(what: str, name: str, known: list[str]) -> str:
    """'unknown loss 'x'; did you mean 'y'?' plus the list of known names."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listing = f" (known: {', '.join(sorted(known))})" if known else f" (no {what} is registered)"
    return f"unknown {what} {name!r}{hint}{listing}"


@dataclass
class Catalog:
    """Everything the plugins registered: one registry per kind."""

    losses: Registry = field(default_factory=lambda: Registry("losses"))
    models: Registry = field(default_factory=lambda: Registry("models"))
    datasets: Registry = field(default_factory=lambda: Registry("datasets"))
    metrics: Registry = field(default_factory=lambda: Registry("metrics"))
    # the plugins' ``run_logged`` hook as one callback (``live.hook_caller``); None when nothing listens
    live: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False, compare=False)

    def registry(self, kind: str) -> Registry:
        if kind not in KINDS:
            raise UnknownNameError(unknown_name_message("kind", kind, list(KINDS)))
        return getattr(self, kind)
