"""``lossbench new-plugin``: write an installable third-party plugin package with a working example and tests.

The package uses the src layout and the ``lossbench`` entry point group, so ``pip install -e <folder>`` is all it
takes for lossbench to find it; its tests use ``lossbench.testing``. Nothing existing is ever overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from string import Template

from lossbench.authoring import scaffold_templates as templates
from lossbench.errors import LossbenchError
from lossbench.plugin.kinds import KINDS, kind_named
from lossbench.plugin.registry import SLUG

PLUGIN_KINDS = tuple(kind.singular for kind in KINDS if kind.templates)  # the kinds with a template to start from
REGISTRY_KINDS = {kind.singular: kind.name for kind in KINDS}  # "loss" -> "losses"


class ScaffoldError(LossbenchError):
    """The plugin cannot be scaffolded as asked (bad name, taken name, existing folder); the message says why."""


@dataclass(frozen=True)
class PluginNames:
    """The names derived from the registered name: ``mine`` -> distribution ``lossbench-mine``, package
    ``lossbench_mine``, class ``MineLoss``."""

    name: str
    kind: str
    template: str = ""  # default: the kind's first template

    @property
    def chosen_template(self) -> str:
        return self.template or templates.TEMPLATES[self.kind][0]

    @property
    def distribution(self) -> str:
        return f"lossbench-{self.name}"

    @property
    def package(self) -> str:
        return "lossbench_" + self.name.replace("-", "_")

    @property
    def class_name(self) -> str:
        stem = "".join(part.capitalize() for part in self.name.split("-"))
        return ("P" + stem if stem[0].isdigit() else stem) + "".join(word.capitalize() for word in self.kind.split())

    def substitutions(self) -> dict[str, str]:
        kind = kind_named(self.kind)
        values = {
            "name": self.name,
            "kind": self.kind,
            "distribution": self.distribution,
            "package": self.package,
            "class_name": self.class_name,
            "registry": kind.name,
            "description": templates.DESCRIPTIONS[self.chosen_template],
            "check": kind.check,
        }
        values["try_it"] = Template(kind.try_it).substitute(values)
        return values


def plugin_files(name: str, kind: str = "loss", template: str = "") -> dict[str, str]:
    """The package's files, relative path -> text, for registered name ``name``, plugin ``kind`` and ``template``
    (default: the kind's first)."""
    names = PluginNames(name, kind, template)
    values = names.substitutions()
    package = f"src/{names.package}"
    sources = {
        "pyproject.toml": templates.PYPROJECT,
        "README.md": templates.README,
        f"{package}/__init__.py": templates.INIT,
        f"{package}/plugin.py": templates.MODULES[names.chosen_template],
        f"tests/test_{names.package}.py": templates.TESTS[
            names.chosen_template
        ],  # unique basename: several plugins test together
    }
    return {path: Template(text).substitute(values) for path, text in sources.items()}


def validate(name: str, kind: str, taken: Iterable[str] = (), template: str = "") -> None:
    """Raise ``ScaffoldError`` unless ``name`` is a free lowercase slug, ``kind`` a plugin kind and ``template``
    (if given) one of that kind's templates."""
    if kind not in PLUGIN_KINDS:
        raise ScaffoldError(f"--kind {kind!r} is not a plugin kind; use one of {', '.join(PLUGIN_KINDS)}")
    if template and template not in templates.TEMPLATES[kind]:
        raise ScaffoldError(
            f"--template {template!r} is not a {kind} template; use one of {', '.join(templates.TEMPLATES[kind])}"
        )
    if not SLUG.match(name):
        raise ScaffoldError(f"plugin name {name!r} is not a lowercase slug like 'my-{kind}' (letters, digits, '-')")
    if name in set(taken):
        raise ScaffoldError(
            f"a {kind} called {name!r} is already registered (see `lossbench list "
            f"{REGISTRY_KINDS[kind]}`); choose another name"
        )


def create_plugin(
    name: str, kind: str = "loss", parent: Path | str = Path("."), taken: Iterable[str] = (), template: str = ""
) -> Path:
    """Write the package ``lossbench-<name>`` under ``parent`` and return its folder.

    ``taken`` are the names of this kind already registered (a clash would be rejected at load time). An existing
    folder, or file, of that name is an error: nothing is overwritten.
    """
    validate(name, kind, taken, template)
    folder = Path(parent) / PluginNames(name, kind).distribution
    if folder.exists():
        raise ScaffoldError(f"{folder} already exists; remove it or choose another name or --dir (nothing was written)")
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        raise ScaffoldError(f"{folder} already exists; remove it or choose another name or --dir") from None
    except OSError as exc:
        raise ScaffoldError(f"cannot create {folder}: {exc.strerror or exc}") from None
    for relative, text in plugin_files(name, kind, template).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder
