"""Which code produced a run: the plugin behind its loss, model, dataset and metrics, and lossbench's version.

A run's id hashes its RunSpec (names, preset, seed, sizes), not the code that trained it, so an edited plugin
would otherwise silently reuse results of the old code. Each run is therefore stored with its provenance:

* built-ins: distribution ``lossbench`` and its version;
* entry-point plugins: their distribution and version (``importlib.metadata``), plus a hash of their source
  when the distribution is an editable install (its version does not change when its code does);
* plugins loaded from a file (the plugins folder, ``smoke_run(modules=...)``): a hash of the file.

``changes(old, new)`` says, in words, what differs between two provenances; the driver retrains runs whose
loss, model, dataset or lossbench version changed, and ``lossbench rescore`` re-scores runs whose metrics did.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from lossbench import __version__
from lossbench.api import PROJECT_NAME
from lossbench.plugin.kinds import KINDS

TRAINING_KINDS = tuple(kind.singular for kind in KINDS if kind.trains)  # a change in one: the run must be trained again
KIND_REGISTRIES = {"loss": "losses", "model": "models", "dataset": "datasets", "metric": "metrics"}
HASH_DIGITS = 16


def source_hash(paths: list[Path]) -> str:
    """sha256 over each file's path relative to their common folder, a NUL, its bytes and a NUL, in sorted
    order (16 hex digits): a renamed, added or edited file changes it."""
    digest = hashlib.sha256()
    root = Path(os.path.commonpath([Path(path).parent for path in paths]))
    for path in sorted(paths):
        digest.update(str(Path(path).relative_to(root)).encode() + b"\0")
        digest.update(Path(path).read_bytes() + b"\0")
    return digest.hexdigest()[:HASH_DIGITS]


def module_sources(module: ModuleType) -> list[Path]:
    """The source files behind a plugin module: its whole top-level package for a package or a package's member
    (a plugin's helper modules change its behaviour too), else the module's own file."""
    file = getattr(module, "__file__", None)
    if not file:
        return []
    top = sys.modules.get(module.__name__.split(".")[0])
    package_paths = list(getattr(top, "__path__", None) or [])
    if package_paths:
        package = Path(package_paths[0]).resolve()
        return sorted(path for path in package.rglob("*.py") if "__pycache__" not in path.parts)
    path = Path(file).resolve()
    return [path] if path.suffix == ".py" else []


def _editable(distribution: str) -> bool:
    """Whether an installed distribution is an editable install (its PEP 610 ``direct_url.json`` says so)."""
    try:
        text = metadata.distribution(distribution).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return False
    if not text:
        return False
    try:
        return bool(json.loads(text).get("dir_info", {}).get("editable"))
    except ValueError:
        return False


@dataclass
class Origin:
    """Where the code of one registered object comes from."""

    plugin: str
    distribution: str | None = None
    version: str | None = None
    source: str | None = None  # hash of the source files, for file plugins and editable installs

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value is not None}

    def describe(self) -> str:
        """``lossbench-mine 0.2.0, source 1a2b...`` or ``plugins/mine.py, source ...``."""
        parts = [f"{self.distribution} {self.version or ''}".strip() if self.distribution else self.plugin]
        if self.source:
            parts.append(f"source {self.source[:8]}")
        return ", ".join(parts)


@dataclass
class ProvenanceIndex:
    """Origins of every plugin of an environment, computed once (hashing reads files)."""

    env: Any  # lossbench.plugin.loader.Environment
    _origins: dict[str, Origin] = field(default_factory=dict)

    def origin_of_plugin(self, plugin: str) -> Origin:
        if plugin not in self._origins:
            self._origins[plugin] = _origin(self.env, plugin)
        return self._origins[plugin]

    def origin(self, kind: str, name: str) -> Origin:
        registry = self.env.catalog.registry(KIND_REGISTRIES[kind])
        registry.get(name)  # an unregistered name: UnknownNameError, one clear line
        return self.origin_of_plugin(registry.plugin_of(name))

    def of_run(self, spec: Any) -> dict[str, Any]:
        """The provenance stored with a run of ``spec`` (a RunSpec)."""
        return {
            "lossbench": __version__,
            "loss": {"name": spec.loss, **self.origin("loss", spec.loss).as_dict()},
            "model": {"name": spec.model, **self.origin("model", spec.model).as_dict()},
            "dataset": {"name": spec.dataset, **self.origin("dataset", spec.dataset).as_dict()},
            "metrics": {name: self.origin("metric", name).as_dict() for name in self.env.catalog.metrics.names()},
        }


def _hash_or_none(files: list[Path]) -> str | None:
    try:
        return source_hash(files) if files else None
    except OSError:  # removed or unreadable since it was imported: no hash rather than no grid
        return None


def _origin(env: Any, plugin: str) -> Origin:
    """Built-ins: lossbench and its version; entry points: distribution and version (plus a source hash when
    editable); plugin files and modules: a hash of their source."""
    info = env.plugins.infos.get(plugin)
    module = env.plugins.manager.get_plugin(plugin)
    if info is None or info.source == "builtin":
        return Origin(plugin, PROJECT_NAME, __version__)
    if info.source == "entry point":
        distribution, version = info.distribution, info.version
        if distribution and not version:
            try:
                version = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                version = None
        files = (
            module_sources(module)
            if isinstance(module, ModuleType) and distribution and _editable(distribution)
            else []
        )
        return Origin(plugin, distribution, version, _hash_or_none(files))
    files = module_sources(module) if isinstance(module, ModuleType) else []
    if info.source == "plugins folder":
        files = [Path(info.location).resolve()]
    return Origin(plugin, None, None, _hash_or_none(files))


def _component_change(kind: str, old: dict | None, new: dict) -> str | None:
    name = new.get("name")
    if old is None:
        return f"{kind} {name!r}: not recorded"
    if old.get("distribution") != new.get("distribution") or old.get("plugin") != new.get("plugin"):
        before = old.get("distribution") or old.get("plugin")
        after = new.get("distribution") or new.get("plugin")
        return f"{kind} {name!r}: now from {after}, was {before}"
    if old.get("version") != new.get("version"):
        return f"{kind} {name!r}: version {old.get('version')} -> {new.get('version')}"
    if old.get("source") != new.get("source"):
        return f"{kind} {name!r}: source changed"
    return None


def training_changes(old: dict | None, new: dict) -> list[str]:
    """What makes a stored run stale: a different lossbench version or a changed loss, model or dataset."""
    if not old:
        return ["no provenance recorded (stored by an older lossbench)"]
    reasons = []
    if old.get("lossbench") != new.get("lossbench"):
        reasons.append(f"lossbench {old.get('lossbench')} -> {new.get('lossbench')}")
    for kind in TRAINING_KINDS:
        change = _component_change(kind, old.get(kind), new[kind])
        if change:
            reasons.append(change)
    return reasons


def metric_changes(old: dict | None, new: dict) -> dict[str, str]:
    """Metrics whose stored values are missing or came from other code: name -> why."""
    stored = (old or {}).get("metrics", {})
    changed = {}
    for name, origin in new.get("metrics", {}).items():
        if name not in stored:
            changed[name] = "not computed"
        else:
            change = _component_change("metric", {**stored[name], "name": name}, {**origin, "name": name})
            if change:
                changed[name] = change.split(": ", 1)[1]
    return changed


def summarise_reasons(reasons: list[list[str]], limit: int = 3) -> str:
    """The distinct reasons of several runs, most common first, at most ``limit`` of them."""
    counts: dict[str, int] = {}
    for run_reasons in reasons:
        for reason in run_reasons:
            counts[reason] = counts.get(reason, 0) + 1
    ordered = sorted(counts, key=lambda r: (-counts[r], r))
    more = f"; and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return "; ".join(ordered[:limit]) + more


def describe(provenance: dict | None) -> str:
    """One line for ``show --runs`` and the report: lossbench's version and each component's origin."""
    if not provenance:
        return "not recorded"
    parts = [f"lossbench {provenance.get('lossbench')}"]
    for kind in TRAINING_KINDS:
        entry = provenance.get(kind) or {}
        origin = Origin(entry.get("plugin", "?"), entry.get("distribution"), entry.get("version"), entry.get("source"))
        parts.append(f"{kind} {entry.get('name')}: {origin.describe()}")
    metrics = provenance.get("metrics") or {}
    plugins = sorted(
        {
            Origin(m.get("plugin", "?"), m.get("distribution"), m.get("version"), m.get("source")).describe()
            for m in metrics.values()
        }
    )
    if metrics:
        parts.append(f"metrics ({len(metrics)}): {'; '.join(plugins)}")
    return " | ".join(parts)
