"""The docs a plugin author reads: one example source everywhere (and it runs), and every attribute a plugin may
read or set in the generated reference."""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import pytest
import torch

from lossbench.authoring import hookdoc
from lossbench.examples import softplus_hinge
from lossbench.testing import check_loss, smoke_run

REPO = Path(__file__).resolve().parents[1]
HOOKS_MD = REPO / "docs" / "hooks.md"


@pytest.mark.parametrize("document", ["README.md", "docs/writing-plugins.md"])
def test_the_example_in_the_docs_is_the_example_source(document: str) -> None:
    blocks = hookdoc.example_blocks((REPO / document).read_text(encoding="utf-8"))
    assert blocks == [(hookdoc.EXAMPLE, hookdoc.example_source())], (
        f"{document}: the example block differs from {hookdoc.EXAMPLE}; run "
        f"python -m lossbench.authoring.hookdoc --sync-examples {document}"
    )


def test_the_reference_shows_the_example_and_no_other_recipe() -> None:
    text = HOOKS_MD.read_text(encoding="utf-8")
    assert f"```python\n{hookdoc.example_source()}```" in text
    assert text.count("class SoftplusHinge(") == 1  # the module docstring no longer carries its own variant


def test_sync_examples_rewrites_a_stale_copy() -> None:
    stale = f"intro\n<!-- example: {hookdoc.EXAMPLE} -->\n```python\nold code\n```\n<!-- /example -->\nend\n"
    assert hookdoc.sync_examples(stale) == (
        f"intro\n<!-- example: {hookdoc.EXAMPLE} -->\n```python\n"
        f"{hookdoc.example_source()}```\n<!-- /example -->\nend\n"
    )


def test_the_example_keeps_the_contract_has_its_formula_and_trains(tmp_path: Path) -> None:
    loss = softplus_hinge.SoftplusHinge()
    check_loss(loss)
    zeros = torch.zeros(4)
    assert loss.discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log1p(math.e))  # 2 softplus(1)
    assert loss.generator_loss(torch.full((4,), 3.0), zeros).item() == -3.0
    result = smoke_run(
        losses=["softplus-hinge"], models=["mlp"], datasets=["ring8"], modules=[softplus_hinge], results_dir=tmp_path
    )
    assert result.statuses == {"ok": 1}


@pytest.mark.parametrize("module_name, class_name", hookdoc.OBJECTS)
def test_every_public_member_of_a_plugin_facing_class_is_documented(module_name: str, class_name: str) -> None:
    cls = getattr(importlib.import_module(module_name), class_name)
    members = hookdoc.members(cls)
    public = {name for name in vars(cls) if not name.startswith("_")} | {
        name for name in getattr(cls, "__annotations__", {}) if not name.startswith("_")
    }
    assert {m.name for m in members} >= public
    text = HOOKS_MD.read_text(encoding="utf-8")
    section = text.split(f"\n### {class_name}\n", 1)[1].split("\n### ", 1)[0]
    for member in members:
        assert member.doc, f"{class_name}.{member.name} has no docstring"
        marker = f"| `{member.name}` |" if member.kind == "attribute" else f"- `{member.name}"
        assert marker in section, f"{class_name}.{member.name} is not in docs/hooks.md"


@pytest.mark.parametrize(
    "row",
    [
        '| `better` | `dict[str, str]` | `{}` | Key -> "higher", "lower" or "none" (not ranked)',
        "| `centres` | `Tensor \\| None` | `None` | `(n_modes, *shape)` mode centres",
        "| `mode` | `Tensor` |  | `(N,)` int64: the mode each sample belongs to",
        "| `high_quality` | `Tensor` |  | `(N,)` bool",
        "the harness seeds it once per run, after building the model, from the seed, loss, model and dataset",
    ],
)
def test_the_reference_answers_what_authors_asked(row: str) -> None:
    assert row in HOOKS_MD.read_text(encoding="utf-8")


def test_the_guides_recipe_for_testing_a_plugins_file_works(workdir: Path) -> None:
    """The guide's snippet that imports a ./plugins file in a test, run as written on the example plugin."""
    guide = (REPO / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    blocks = [block for block in re.findall(r"```python\n(.*?)```", guide, re.S) if "spec_from_file_location" in block]
    assert len(blocks) == 1
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "softplus_hinge.py").write_text(hookdoc.example_source(), encoding="utf-8")
    namespace: dict = {}
    exec(compile(blocks[0], "writing-plugins.md", "exec"), namespace)
    namespace["test_trains"](workdir / "results")
    assert (workdir / "results" / "lossbench.db").is_file()
