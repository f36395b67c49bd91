"""Meta-tests of the hook contract: every hook is documented, docs/hooks.md is what the generator writes, the plugin
guide covers every hook, and every hook is implemented by some test (so each one is exercised)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from lossbench import hookspecs
from lossbench.authoring import hookdoc

REPO = Path(__file__).resolve().parents[1]
HOOKS_MD = REPO / "docs" / "hooks.md"
GUIDE = REPO / "docs" / "writing-plugins.md"


def test_hook_names_are_exactly_the_hookspecs() -> None:
    assert list(hookdoc.hookspec_functions()) == list(hookspecs.HOOK_NAMES)


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_has_a_substantial_docstring_naming_its_parameters(name: str) -> None:
    function = getattr(hookspecs, name)
    doc = inspect.getdoc(function) or ""
    assert len(doc.split()) >= 30, f"{name}: docstring too short to be a contract ({len(doc.split())} words)"
    for parameter in inspect.signature(function).parameters:
        assert f"``{parameter}``" in doc or f"{parameter}(" in doc, f"{name}: docstring never mentions {parameter!r}"


def test_docs_hooks_md_is_up_to_date_with_the_generator() -> None:
    assert HOOKS_MD.read_text(encoding="utf-8") == hookdoc.render(), (
        f"docs/hooks.md is stale; regenerate it: {hookdoc.COMMAND}"
    )


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_has_a_section_with_its_signature_in_docs_hooks_md(name: str) -> None:
    text = HOOKS_MD.read_text(encoding="utf-8")
    assert f"\n## {name}\n" in text
    assert f"\n{hookdoc.signature(getattr(hookspecs, name))}\n" in text
    assert f"- [`{name}`](#{name})" in text


def test_generator_check_mode_detects_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh = tmp_path / "hooks.md"
    assert hookdoc.main(["--output", str(fresh)]) == 0
    assert hookdoc.main(["--check", str(fresh)]) == 0
    fresh.write_text(fresh.read_text().replace("register_metrics", "register_metric", 1))
    assert hookdoc.main(["--check", str(fresh)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert hookdoc.main(["--check", str(tmp_path / "missing.md")]) == 1


def test_rst_literal_blocks_become_fenced_markdown() -> None:
    text = hookdoc.rst_to_markdown("""Intro with ``code``::

        [project.entry-points.lossbench]
        mine = "pkg.plugin"

    Then python::

        def f():
            return 1

    End.""")
    assert text == (
        'Intro with `code`:\n\n```toml\n[project.entry-points.lossbench]\nmine = "pkg.plugin"\n```\n\n'
        "Then python:\n\n```python\ndef f():\n    return 1\n```\n\nEnd.\n"
    )


def test_the_writing_plugins_guide_links_the_reference_and_names_every_hook() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    assert "hooks.md" in guide
    for name in hookspecs.HOOK_NAMES:
        assert name in guide, f"docs/writing-plugins.md never mentions {name}"


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_is_implemented_by_some_test(name: str) -> None:
    """A test that defines an implementation of the hook (in a test module or a plugin source a test writes)."""
    pattern = re.compile(rf"@hookimpl\s+def {name}\(")
    implementing = [
        path.name
        for path in sorted((REPO / "tests").glob("*.py"))
        if path.name != Path(__file__).name and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert implementing, f"no test implements the hook {name!r}; add one that exercises it"
