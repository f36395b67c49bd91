"""Generate the hook reference (``docs/hooks.md``) from ``lossbench/hookspecs.py``, so the two cannot drift apart.

    python -m lossbench.authoring.hookdoc > docs/hooks.md          # regenerate
    python -m lossbench.authoring.hookdoc --check docs/hooks.md    # exit 1 when the file is stale (CI, tests)
    python -m lossbench.authoring.hookdoc --sync-examples README.md docs/writing-plugins.md   # the example's copies

The docstrings are written in reStructuredText conventions (````code````, ``::`` literal blocks); they are turned
into Markdown here.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType

from lossbench import hookspecs as default_module
from lossbench.api import PROJECT_NAME

COMMAND = "python -m lossbench.authoring.hookdoc > docs/hooks.md"


def hookspec_functions(module: ModuleType = default_module) -> dict[str, FunctionType]:
    """The functions of ``module`` marked with ``@hookspec``, in source order."""
    marker = f"{PROJECT_NAME}_spec"
    functions = [value for value in vars(module).values() if isinstance(value, FunctionType) and hasattr(value, marker)]
    return {f.__name__: f for f in sorted(functions, key=lambda f: f.__code__.co_firstlineno)}


def signature(function: FunctionType) -> str:
    """``name(param: annotation, ...) -> return`` with the annotations as written (they are strings here)."""
    sig = inspect.signature(function)

    def text(annotation: object) -> str:
        return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)

    params = ", ".join(
        p.name if p.annotation is inspect.Parameter.empty else f"{p.name}: {text(p.annotation)}"
        for p in sig.parameters.values()
    )
    returns = "" if sig.return_annotation is inspect.Signature.empty else f" -> {text(sig.return_annotation)}"
    return f"{function.__name__}({params}){returns}"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rst_to_markdown(text: str) -> str:
    """Double-backtick literals to single backticks, and ``::`` literal blocks to fenced code blocks."""
    lines = inspect.cleandoc(text).replace("``", "`").splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            out.append(line.rstrip())
            i += 1
            continue
        stripped = line.rstrip()[:-2].rstrip()
        if stripped:
            out.append(stripped + ":")
        base = _indent(line)
        i += 1
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            block.append(lines[i])
            i += 1
        code = textwrap.dedent("\n".join(block)).strip("\n")
        language = "toml" if code.lstrip().startswith("[") else "python"
        out.extend(["", f"```{language}", *code.splitlines(), "```", ""])
    text = "\n".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


def summary(function: FunctionType) -> str:
    """The docstring's first paragraph on one line."""
    paragraph = rst_to_markdown(function.__doc__ or "").split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


# -- the objects plugins read and set ---------------------------------------------------------------------------
OBJECTS = (  # (module, class): what a plugin subclasses, returns, or reads, in the order an author meets them
    ("lossbench.api", "AdversarialLoss"),
    ("lossbench.api", "VAELoss"),
    ("lossbench.api", "Recipe"),
    ("lossbench.api", "ModelFactory"),
    ("lossbench.api", "GAN"),
    ("lossbench.api", "VAE"),
    ("lossbench.api", "Dataset"),
    ("lossbench.api", "DataSpec"),
    ("lossbench.api", "Samples"),
    ("lossbench.api", "ModeAssignment"),
    ("lossbench.api", "FeatureNetwork"),
    ("lossbench.api", "FeatureSpace"),
    ("lossbench.api", "Metric"),
    ("lossbench.api", "MetricContext"),
    ("lossbench.plan.grid", "RunSpec"),
)
EXAMPLE = "lossbench/examples/softplus_hinge.py"  # the one plugin example: README, guide and this reference


@dataclass
class Member:
    """A public attribute or method of a plugin-facing class, as written in its source."""

    name: str
    kind: str  # "attribute" | "method"
    type: str = ""
    default: str = ""
    doc: str = ""


def members(cls: type) -> list[Member]:
    """The class's public attributes (annotated or assigned in its body, documented by the string literal after
    them) and public methods, in source order."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(tree, ast.ClassDef)
    found: list[Member] = []
    body = tree.body
    for index, node in enumerate(body):
        following = body[index + 1] if index + 1 < len(body) else None
        doc = (
            inspect.cleandoc(following.value.value)
            if isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
            else ""
        )
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotation = ast.unparse(node.annotation)
            if annotation.startswith("ClassVar["):
                annotation = annotation[len("ClassVar[") : -1]
            default = ast.unparse(node.value) if node.value is not None else ""
            if default.startswith("field("):
                default = ""
            found.append(Member(node.target.id, "attribute", annotation, default, doc))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found.append(Member(node.targets[0].id, "attribute", "", ast.unparse(node.value), doc))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = getattr(cls, node.name)
            function = function.fget if isinstance(function, property) else function
            found.append(Member(node.name, "method", "", "", inspect.getdoc(function) or ""))
    return [m for m in found if not m.name.startswith("_")]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _method_signature(cls: type, name: str) -> str:
    function = getattr(cls, name)
    if isinstance(inspect.getattr_static(cls, name), property):
        return f"{name} (property)"
    sig = inspect.signature(function)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    shown = (p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}" for p in params)
    return f"{name}({', '.join(shown)})"


def render_objects() -> str:
    """One section per plugin-facing class: its docstring, a table of its attributes and its methods."""
    parts = [
        "## Objects",
        "",
        "What a plugin subclasses, returns or reads. Attributes are set on the class (or in `__init__`);",
        "every one a plugin may read or set is listed with its type and default.",
        "",
    ]
    for module_name, class_name in OBJECTS:
        cls = getattr(importlib.import_module(module_name), class_name)
        found = members(cls)
        parts += [
            f"### {class_name}",
            "",
            f"`{module_name}.{class_name}`"
            if module_name != "lossbench.api"
            else f"`from lossbench import {class_name}`",
            "",
            rst_to_markdown(cls.__doc__ or "").strip(),
            "",
        ]
        attributes = [m for m in found if m.kind == "attribute"]
        if attributes:
            parts += ["| attribute | type | default | meaning |", "|---|---|---|---|"]
            parts += [
                f"| `{m.name}` | {'`' + _cell(m.type) + '`' if m.type else ''} | "
                f"{'`' + _cell(m.default) + '`' if m.default else ''} | {_cell(rst_to_markdown(m.doc).strip())} |"
                for m in attributes
            ]
            parts.append("")
        methods = [m for m in found if m.kind == "method"]
        for m in methods:
            text = rst_to_markdown(m.doc).strip() if m.doc else ""
            parts.append(f"- `{_method_signature(cls, m.name)}`" + (f": {' '.join(text.split())}" if text else ""))
        if methods:
            parts.append("")
    return "\n".join(parts)


def example_source() -> str:
    """The text of the one plugin example (``lossbench/examples/softplus_hinge.py``)."""
    import lossbench.examples.softplus_hinge as example

    return Path(example.__file__).read_text(encoding="utf-8")


EXAMPLE_BLOCK = re.compile(
    r"(<!-- example: (?P<path>[^ ]+) -->\n```python\n)(?P<code>.*?)(```\n<!-- /example -->)", re.S
)


def example_blocks(text: str) -> list[tuple[str, str]]:
    """(path, code) of every example block of a Markdown text (between ``<!-- example: PATH -->`` and
    ``<!-- /example -->``)."""
    return [(m["path"], m["code"]) for m in EXAMPLE_BLOCK.finditer(text)]


def sync_examples(text: str) -> str:
    """``text`` with every example block replaced by the example's current source."""
    return EXAMPLE_BLOCK.sub(lambda m: m[1] + example_source() + m[4], text)


def render(module: ModuleType = default_module) -> str:
    """The whole reference as Markdown: the module's overview, an index, then one section per hook."""
    functions = hookspec_functions(module)
    parts = [
        "# Hook reference",
        "",
        f"<!-- Generated from lossbench/hookspecs.py by `{COMMAND}`; edit the docstrings, not this file. -->",
        "",
        rst_to_markdown(module.__doc__ or ""),
        "## Hooks",
        "",
        *[f"- [`{name}`](#{name}): {summary(f)}" for name, f in functions.items()],
        "",
    ]
    for name, function in functions.items():
        parts += [
            f"## {name}",
            "",
            "```python",
            signature(function),
            "```",
            "",
            rst_to_markdown(function.__doc__ or ""),
        ]
    parts += [
        render_objects(),
        "",
        "## A plugin in one file",
        "",
        f"`{EXAMPLE}`, the example of the README and of docs/writing-plugins.md (save it as",
        "`plugins/softplus_hinge.py` where you run lossbench):",
        "",
        "```python",
        example_source().rstrip(),
        "```",
        "",
    ]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lossbench.authoring.hookdoc", description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE differs from the generated text")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument(
        "--sync-examples",
        type=Path,
        nargs="+",
        metavar="FILE",
        help=f"rewrite the example blocks of these Markdown files from {EXAMPLE}",
    )
    args = parser.parse_args(argv)
    if args.sync_examples:
        for path in args.sync_examples:
            path.write_text(sync_examples(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    text = render()
    if args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.is_file() else None
        if current != text:
            print(f"{args.check} is out of date with lossbench/hookspecs.py; regenerate it: {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
