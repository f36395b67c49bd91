"""Plugin discovery: built-ins, then entry points, then the plugins folder, each isolated from the others.

``load_plugins(config)`` returns a fresh ``pluggy.PluginManager`` (never a module-level global, so tests and
worker processes each get their own) together with the problems met while loading. ``build_catalog`` then calls
the ``register_*`` hooks one plugin at a time, so that a plugin that raises or registers something malformed is
reported by name while every other plugin's objects still load.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from lossbench import hookspecs
from lossbench.api import PROJECT_NAME
from lossbench.errors import PluginError
from lossbench.plugin.kinds import KINDS
from lossbench.plugin.live import hook_caller
from lossbench.plugin.registry import Catalog, RegistrationError

BUILTIN_MODULES = (
    "lossbench.builtin.losses",
    "lossbench.builtin.models",
    "lossbench.builtin.datasets",
    "lossbench.builtin.metrics",
    "lossbench.builtin.spaces",
    "lossbench.builtin.loggers",
)
PLUGINS_DIR_ENV = "LOSSBENCH_PLUGINS_DIR"
DISABLE_ENV = "LOSSBENCH_DISABLE_PLUGINS"
DEFAULT_PLUGINS_DIR = Path("plugins")


@dataclass(frozen=True)
class PluginConfig:
    """Where to look for plugins; picklable, so that worker processes rebuild the same catalog."""

    plugins_dir: Path | None = None  # None: $LOSSBENCH_PLUGINS_DIR, else ./plugins when it exists
    disabled: frozenset[str] = frozenset()  # plugin names to block, added to $LOSSBENCH_DISABLE_PLUGINS
    entry_points: bool = True
    strict: bool = False
    default_folders: bool = True  # False: no $LOSSBENCH_PLUGINS_DIR or ./plugins (an isolated test kit)

    def resolved_plugins_dir(self) -> Path | None:
        if self.plugins_dir is not None:
            return Path(self.plugins_dir)
        if not self.default_folders:
            return None
        env = os.environ.get(PLUGINS_DIR_ENV)
        if env:
            return Path(env)
        return DEFAULT_PLUGINS_DIR if DEFAULT_PLUGINS_DIR.is_dir() else None

    def blocked(self) -> set[str]:
        env = {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}
        return env | set(self.disabled)


@dataclass
class PluginProblem:
    """Something wrong with one plugin: its name and the reason, one line each."""

    plugin: str
    reason: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}: {self.reason}"


@dataclass
class PluginInfo:
    """Where a loaded plugin came from, for ``lossbench plugins``."""

    name: str
    source: str  # "builtin" | "entry point" | "plugins folder"
    location: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class LoadedPlugins:
    manager: pluggy.PluginManager
    infos: dict[str, PluginInfo]
    problems: list[PluginProblem]


def _describe_exception(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _unknown_hooks(manager: pluggy.PluginManager, module: object) -> list[str]:
    unknown = []
    for attr in dir(module):
        if manager.parse_hookimpl_opts(module, attr) is not None and attr not in hookspecs.HOOK_NAMES:
            close = difflib.get_close_matches(attr, hookspecs.HOOK_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            unknown.append(f"implements unknown hook {attr!r}{hint}; it is ignored")
    return unknown


def register_plugin(loaded: LoadedPlugins, name: str, module: object, info: PluginInfo) -> None:
    """Register one plugin object under ``name``, recording rejection and unknown hooks as problems."""
    manager = loaded.manager
    if manager.is_blocked(name):
        return
    try:
        manager.register(module, name=name)
    except Exception as exc:  # pluggy.PluginValidationError and friends: bad hook signatures
        loaded.problems.append(PluginProblem(name, f"rejected by the plugin manager: {exc}"))
        return
    loaded.problems.extend(PluginProblem(name, reason) for reason in _unknown_hooks(manager, module))
    info.hooks = sorted(
        caller.name for caller in (manager.get_hookcallers(module) or []) if caller.name in hookspecs.HOOK_NAMES
    )
    loaded.infos[name] = info


def _import_file(path: Path) -> ModuleType:
    module_name = f"lossbench_local_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_plugins(config: PluginConfig = PluginConfig()) -> LoadedPlugins:
    """A new plugin manager holding the built-ins, the entry points and the plugins folder, in that order."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    loaded = LoadedPlugins(manager, {}, [])
    for name in config.blocked():
        manager.set_blocked(name)

    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        register_plugin(loaded, module_name, module, PluginInfo(module_name, "builtin", module_name, PROJECT_NAME))

    if config.entry_points:
        for ep in metadata.entry_points(group=PROJECT_NAME):
            if manager.is_blocked(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                ep.name, "entry point", ep.value, dist.name if dist else None, dist.version if dist else None
            )
            try:
                module = ep.load()
            except Exception as exc:
                loaded.problems.append(
                    PluginProblem(ep.name, f"failed to import {ep.value}: {_describe_exception(exc)}")
                )
                continue
            register_plugin(loaded, ep.name, module, info)

    folder = config.resolved_plugins_dir()
    if folder is not None:
        if not folder.is_dir():
            loaded.problems.append(PluginProblem(str(folder), "plugins folder does not exist"))
        else:
            for path in sorted(folder.glob("*.py")):
                name = path.stem
                if name.startswith("_") or manager.is_blocked(name):
                    continue
                try:
                    module = _import_file(path)
                except Exception as exc:
                    loaded.problems.append(PluginProblem(name, f"failed to import {path}: {_describe_exception(exc)}"))
                    continue
                register_plugin(loaded, name, module, PluginInfo(name, "plugins folder", str(path)))
    return loaded


def _call_each(loaded: LoadedPlugins, hook_name: str, make_kwargs: Callable[[str], dict[str, Any]]) -> None:
    """Call one hook plugin by plugin, recording a raising plugin as a problem instead of stopping."""
    caller = getattr(loaded.manager.hook, hook_name)
    for impl in caller.get_hookimpls():  # registration order: built-ins first
        plugin_name = impl.plugin_name
        try:
            impl.function(**make_kwargs(plugin_name))
        except Exception as exc:
            loaded.problems.append(PluginProblem(plugin_name, f"raised in {hook_name}: {_describe_exception(exc)}"))


def build_catalog(loaded: LoadedPlugins) -> Catalog:
    """Call every ``register_*`` hook, one plugin at a time, into a new ``Catalog``."""
    catalog = Catalog()
    for kind in KINDS:
        registry = catalog[kind]

        def make_kwargs(plugin_name: str, registry=registry, kind=kind.name) -> dict[str, Any]:
            def register(obj: object) -> None:
                try:
                    registry.add(obj, plugin_name)
                except RegistrationError as exc:
                    loaded.problems.append(PluginProblem(plugin_name, str(exc)))
                    return
                info = loaded.infos.get(plugin_name)
                if info is not None:
                    info.registered.setdefault(kind, []).append(obj.name)  # type: ignore[attr-defined]

            return {"register": register}

        _call_each(loaded, kind.hook, make_kwargs)
    catalog.live = hook_caller(loaded.manager)
    return catalog


def notify_run_finished(loaded: LoadedPlugins, record: dict[str, Any]) -> None:
    """Tell every ``run_finished`` implementation about a committed run; failures become problems."""
    _call_each(loaded, "run_finished", lambda _name: {"record": record})


@dataclass
class Environment:
    """The loaded plugins and the catalog they filled: what a command or a worker needs."""

    plugins: LoadedPlugins
    catalog: Catalog

    @property
    def problems(self) -> list[PluginProblem]:
        return self.plugins.problems

    def raise_if_strict(self, strict: bool) -> None:
        if strict and self.problems:
            first = self.problems[0]
            more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
            raise PluginError(first.plugin, first.reason + more + "; --strict-plugins makes this fatal")


def load_environment(config: PluginConfig = PluginConfig()) -> Environment:
    """Load the plugins and build the catalog in one call."""
    loaded = load_plugins(config)
    return Environment(loaded, build_catalog(loaded))
