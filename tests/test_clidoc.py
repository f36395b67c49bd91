"""The CLI reference (docs/cli.md and the README's table of commands) is what the click commands say."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click
import pytest

from lossbench import clidoc
from lossbench.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_docs_cli_md_and_the_readme_block_are_up_to_date() -> None:
    assert clidoc.stale(main) == [], f"regenerate them: {clidoc.COMMAND}"


def test_every_option_of_every_command_has_a_row_in_its_section() -> None:
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, command in clidoc.commands(main).items():
        section = text.split(f"\n## `lossbench {name}`\n", 1)[1].split("\n## ", 1)[0]
        documented = {
            flag
            for cell in re.findall(r"^\| `([^`]*)` \|", section, re.MULTILINE)
            for flag in re.split(r"[ ,/]+", cell)
        }
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                for flag in param.opts + param.secondary_opts:
                    assert flag in documented, f"lossbench {name}: {flag} is missing"
    assert "\n## `lossbench run`\n" in text and "`--retry-failed` |" in text


def test_a_hand_made_group_renders_to_the_known_text() -> None:
    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def tool() -> None:
        """A tool."""

    @tool.command()
    @click.option("-n", "--count", type=int, default=3, show_default=True, help="How many | at most.")
    @click.argument("name")
    def greet(count: int, name: str) -> None:
        """Greet NAME.

        Twice if asked.
        """

    assert clidoc.render_summary(tool) == (
        "| command | what it does |\n|---|---|\n| [`lossbench greet`](docs/cli.md#lossbench-greet) | Greet NAME. |\n"
    )
    reference = clidoc.render_reference(tool)
    assert reference.endswith(
        "## `lossbench greet`\n\n```\nlossbench greet [OPTIONS] NAME\n```\n\nGreet NAME.\n\nTwice if asked.\n\n"
        "| option | meaning |\n|---|---|\n| `-n, --count INTEGER` | How many \\| at most. [default: 3] |\n"
        "| `-h, --help` | Show this message and exit. |\n"
    )
    assert "- [`lossbench greet`](#lossbench-greet): Greet NAME.\n" in reference


def test_check_mode_names_the_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    for relative in ("README.md", "docs/cli.md"):
        shutil.copy(REPO / relative, tmp_path / relative)
    assert clidoc.main(["--check", "--root", str(tmp_path)]) == 0
    reference = tmp_path / "docs" / "cli.md"
    reference.write_text(reference.read_text().replace("`--retry-failed`", "`--retry`", 1))
    assert clidoc.main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/cli.md is out of date with the click commands" in capsys.readouterr().err
    assert clidoc.main(["--write", "--root", str(tmp_path)]) == 0
    assert clidoc.main(["--check", "--root", str(tmp_path)]) == 0


def test_a_readme_without_the_block_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="README.md has no <!-- cli: commands -->"):
        clidoc.with_summary("# lossbench\n", "table\n")
