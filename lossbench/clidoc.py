"""Generate the CLI reference (``docs/cli.md``, and the README's table of commands) from the click commands
themselves, so that the documented options are the options: a test fails when the checked-in text is stale.

    python -m lossbench.clidoc --write                 # regenerate docs/cli.md and the README's block
    python -m lossbench.clidoc --check                 # exit 1 when either is stale (CI, tests)

Each option is shown as ``lossbench CMD --help`` shows it (click's own help record: flags, metavar, help text,
default and range), without the terminal's wrapping.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path

import click

PROG = "lossbench"
COMMAND = "python -m lossbench.clidoc --write"
REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path("docs/cli.md")
README = Path("README.md")
BLOCK = re.compile(r"(<!-- cli: commands -->\n)(?P<body>.*?)(<!-- /cli -->)", re.DOTALL)


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _context(command: click.Command, name: str, parent: click.Context | None = None) -> click.Context:
    """A context like the real invocation's (the group's settings, e.g. ``-h``), with no line wrapping."""
    settings = {**command.context_settings, "terminal_width": 10_000, "max_content_width": 10_000}
    return click.Context(command, info_name=name, parent=parent, **settings)


def _options(command: click.Command, ctx: click.Context) -> list[str]:
    records = [param.get_help_record(ctx) for param in command.get_params(ctx)]
    rows = [f"| `{_cell(flags)}` | {_cell(text)} |" for flags, text in (r for r in records if r is not None)]
    return ["| option | meaning |", "|---|---|", *rows] if rows else []


def _section(command: click.Command, ctx: click.Context, level: str) -> list[str]:
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    return [
        f"{level} `{ctx.command_path}`",
        "",
        "```",
        usage,
        "```",
        "",
        inspect.cleandoc(command.help or "").replace("\b\n", ""),
        "",
        *_options(command, ctx),
        "",
    ]


def commands(group: click.Group) -> dict[str, click.Command]:
    """The group's visible commands, in the order ``lossbench --help`` lists them."""
    ctx = _context(group, PROG)
    found = {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}
    return {name: command for name, command in found.items() if command is not None and not command.hidden}


def render_reference(group: click.Group) -> str:
    """``docs/cli.md``: the program's own options, then one section per command with every option."""
    root = _context(group, PROG)
    parts = [
        "# Command-line reference",
        "",
        f"<!-- Generated from the click commands by `{COMMAND}`; edit their help texts, not this file. -->",
        "",
        *_section(group, root, "##")[:-1],
        "",
        "## Commands",
        "",
    ]
    parts += [
        f"- [`{PROG} {name}`](#{PROG}-{name}): {command.get_short_help_str(10_000)}"
        for name, command in commands(group).items()
    ]
    parts.append("")
    for name, command in commands(group).items():
        parts += _section(command, _context(command, name, root), "##")
    return "\n".join(parts).rstrip() + "\n"


def render_summary(group: click.Group) -> str:
    """The README's block: one row per command, linking to its section of ``docs/cli.md``."""
    rows = [
        f"| [`{PROG} {name}`](docs/cli.md#{PROG}-{name}) | {_cell(command.get_short_help_str(10_000))} |"
        for name, command in commands(group).items()
    ]
    return "\n".join(["| command | what it does |", "|---|---|", *rows]) + "\n"


def with_summary(readme: str, summary: str) -> str:
    """``readme`` with its ``<!-- cli: commands -->`` block replaced by ``summary``; ValueError when it has none."""
    if not BLOCK.search(readme):
        raise ValueError("README.md has no <!-- cli: commands --> ... <!-- /cli --> block")
    return BLOCK.sub(lambda m: m[1] + summary + m[3], readme)


def expected(group: click.Group, root: Path = REPO) -> dict[Path, str]:
    """Each generated file's text: the reference, and the README with its block regenerated."""
    readme = (root / README).read_text(encoding="utf-8")
    return {REFERENCE: render_reference(group), README: with_summary(readme, render_summary(group))}


def stale(group: click.Group, root: Path = REPO) -> list[Path]:
    """The generated files whose checked-in text differs from what the commands say."""
    return [
        path
        for path, text in expected(group, root).items()
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    from lossbench.cli import main as group

    parser = argparse.ArgumentParser(prog="python -m lossbench.clidoc", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/cli.md and the README's block")
    parser.add_argument("--check", action="store_true", help="exit 1 if either is stale")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this checkout)")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale(group, args.root)
        for path in out_of_date:
            print(f"{path} is out of date with the click commands; regenerate it: {COMMAND}", file=sys.stderr)
        return 1 if out_of_date else 0
    if args.write:
        for path, text in expected(group, args.root).items():
            (args.root / path).write_text(text, encoding="utf-8")
        return 0
    sys.stdout.write(render_reference(group))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
