"""Generate the hook reference (``docs/hooks.md``) from ``lossbench/hookspecs.py``, so the two cannot drift apart.

    python -m lossbench.hookdoc > docs/hooks.md          # regenerate
    python -m lossbench.hookdoc --check docs/hooks.md    # exit 1 when the file is stale (CI, tests)

The docstrings are written in reStructuredText conventions (````code````, ``::`` literal blocks); they are turned
into Markdown here.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import textwrap
from pathlib import Path
from types import FunctionType, ModuleType

from lossbench import hookspecs as default_module
from lossbench.api import PROJECT_NAME

COMMAND = "python -m lossbench.hookdoc > docs/hooks.md"


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
        parts += [f"## {name}", "", "```python", signature(function), "```", "", rst_to_markdown(function.__doc__ or "")]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lossbench.hookdoc", description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE differs from the generated text")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    args = parser.parse_args(argv)
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
