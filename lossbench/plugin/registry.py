"""Registries of plugin objects, one per kind (``plugin.kinds``), with validated names.

A ``Catalog`` is what the hooks fill: one ``Registry`` per kind. Registration validates each object and records
the plugin that registered it, so that duplicates and malformed objects are reported with the plugin's name;
lookups of unknown names suggest the nearest registered ones.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lossbench.api import describe
from lossbench.errors import UnknownNameError
from lossbench.plugin.kinds import (
    DATASETS,
    FEATURE_SPACES,
    KINDS,
    LOSSES,
    METRICS,
    MODELS,
    SINGULAR,
    Kind,
    kind_named,
)
from lossbench.plugin.registration import RegistrationError

if TYPE_CHECKING:  # pragma: no cover - type parameters only
    from lossbench.api import Dataset, FeatureSpace, Loss, Metric, ModelFactory

__all__ = ["SINGULAR", "SLUG", "Catalog", "Entry", "RegistrationError", "Registry", "unknown_name_message"]

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")

T = TypeVar("T")


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

    kind: str  # the kind's name, e.g. "losses"
    entries: dict[str, Entry[T]] = field(default_factory=dict)

    @property
    def of(self) -> Kind[T]:
        """The kind this registry holds."""
        return kind_named(self.kind)

    def add(self, obj: T, plugin: str) -> None:
        name = getattr(obj, "name", None)
        what = self.of.singular
        if not isinstance(name, str) or not SLUG.match(name):
            try:  # something that is not a loss at all (e.g. register("str")) is told so, not that its name is bad
                self.of.validate(obj)
            except RegistrationError as exc:
                raise RegistrationError(
                    f"register() got {_preview(obj)} (a {type(obj).__name__}), which is not a {what}: {exc}"
                ) from None
            raise RegistrationError(
                f"{what} {type(obj).__name__} has name {name!r}; a name must be a lowercase slug like "
                f"'my-{what.replace(' ', '-')}'"
            )
        try:
            self.of.validate(obj)
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
        raise UnknownNameError(unknown_name_message(self.of.singular, name, self.names()))

    def plugin_of(self, name: str) -> str:
        return self.entries[name].plugin


def unknown_name_message(what: str, name: str, known: list[str]) -> str:
    """'unknown loss 'x'; did you mean 'y'?' plus the list of known names."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listing = f" (known: {', '.join(sorted(known))})" if known else f" (no {what} is registered)"
    return f"unknown {what} {name!r}{hint}{listing}"


def _registries() -> dict[str, Registry[Any]]:
    return {kind.name: Registry(kind.name) for kind in KINDS}


@dataclass
class Catalog:
    """Everything the plugins registered: one registry per kind of ``plugin.kinds.KINDS``.

    ``catalog.losses`` and the other properties are typed (``Registry[AdversarialLoss | VAELoss]``, ...), so an
    editor completes ``catalog.losses.get("hinge").recipe``; ``catalog[kind]`` is typed for any ``Kind``, and
    ``catalog.registry("losses")`` looks a registry up by the name a user typed.
    """

    registries: dict[str, Registry[Any]] = field(default_factory=_registries)
    # the plugins' ``run_logged`` hook as one callback (``live.hook_caller``); None when nothing listens
    live: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False, compare=False)

    def __getitem__(self, kind: Kind[T]) -> Registry[T]:
        return self.registries[kind.name]

    def registry(self, kind: str) -> Registry[Any]:
        if kind not in self.registries:
            raise UnknownNameError(unknown_name_message("kind", kind, list(self.registries)))
        return self.registries[kind]

    @property
    def losses(self) -> Registry[Loss]:
        return self[LOSSES]

    @property
    def models(self) -> Registry[ModelFactory]:
        return self[MODELS]

    @property
    def datasets(self) -> Registry[Dataset]:
        return self[DATASETS]

    @property
    def metrics(self) -> Registry[Metric]:
        return self[METRICS]

    @property
    def feature_spaces(self) -> Registry[FeatureSpace]:
        return self[FEATURE_SPACES]
