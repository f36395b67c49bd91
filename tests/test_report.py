"""The HTML report, built by ``lossbench run --grid`` from real smoke-preset runs: it names every run, every
figure it references is a real image, its numbers are those of summary.csv, and failed and diverged runs (made
real by plugin losses that raise or turn NaN) are shown and flagged."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import run_cli
from faulty_plugins import faulty_losses
from PIL import Image

from lossbench.cli import main
from lossbench.results.files import MARKER
from lossbench.results.store import Store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

FAULTY_LOSSES = faulty_losses(nan_call=13)  # nan-later diverges at step 13


# -- a small DOM from the standard library's parser ----------------------------------------------------------
class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Element] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts + [c.text for c in self.children]).split())

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag)
            and (cls is None or cls in e.classes)
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.parts.append(data)


def parse(path: Path) -> Element:
    builder = TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    return builder.root


def run_sections(reports: Path) -> dict[str, Element]:
    """Each run's section, from its own page ``runs/<run_id>.html``, after checking that the index's table of
    runs links exactly those pages."""
    index = parse(reports / "index.html")
    assert index.find_all("article", cls="run") == []  # run sections live on their own pages
    linked = {}
    for row in index.find_all("tr", cls="run-row"):
        links = [a.attrs["href"] for a in row.find_all("a")]
        assert links == [f"runs/{row.attrs['data-run-id']}.html"], links
        linked[row.attrs["data-run-id"]] = reports / links[0]
    sections = {}
    for run_id, page in linked.items():
        found = parse(page).find_all("article", cls="run")
        assert [a.attrs["data-run-id"] for a in found] == [run_id]
        sections[run_id] = found[0]
    assert sorted(p.name for p in (reports / "runs").glob("*.html")) == sorted(f"{r}.html" for r in linked)
    return sections


def number(text: str) -> float:
    return math.nan if text == "" else float(text)


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A narrowed smoke grid (2 losses x 2 seeds on ring8) run through the CLI, which builds the report."""
    root = tmp_path_factory.mktemp("report-smoke")
    empty_plugins = root / "no-plugins"
    empty_plugins.mkdir()
    code, output = run_cli(
        "run",
        "--grid",
        "--preset",
        "smoke",
        "--steps",
        "20",
        "-l",
        "nonsaturating",
        "-l",
        "wgan-gp",
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--seeds",
        "0,1",
        "--device",
        "cpu",
        "--results",
        str(root / "results"),
        "--reports",
        str(root / "reports"),
        "--plugins-dir",
        str(empty_plugins),
    )
    assert code == 0, output
    return {"root": root, "results": root / "results", "reports": root / "reports", "output": output}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A store with a failed run (a loss that raises) and a diverged one (a loss that turns NaN at step 13)."""
    root = tmp_path_factory.mktemp("report-faulty")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "faulty_losses.py").write_text(FAULTY_LOSSES)
    code, output = run_cli(
        "run",
        "--grid",
        "--preset",
        "smoke",
        "--steps",
        "30",
        "-l",
        "boom",
        "-l",
        "nan-later",
        "-l",
        "nonsaturating",
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--seeds",
        "0",
        "--device",
        "cpu",
        "--results",
        str(root / "results"),
        "--reports",
        str(root / "reports"),
        "--plugins-dir",
        str(plugins),
    )
    assert code == 1, output  # a failed run makes the grid exit non-zero, after building the report
    return {"root": root, "results": root / "results", "reports": root / "reports", "output": output}


# -- tests ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_grid_builds_the_report_and_prints_its_path(smoke: dict) -> None:
    index = smoke["reports"] / "index.html"
    assert index.is_file()
    assert f"report: {index.resolve()}" in smoke["output"]


@pytest.mark.slow
def test_report_names_every_run_and_every_figure_is_a_valid_image(smoke: dict) -> None:
    index = smoke["reports"] / "index.html"
    dom = parse(index)
    with Store.open(smoke["results"], create=False) as store:
        runs = store.runs()
    assert len(runs) == 4
    sections = run_sections(smoke["reports"])
    assert set(sections) == set(runs["run_id"])
    html = index.read_text(encoding="utf-8")
    for run_id in runs["run_id"]:
        assert run_id in sections[run_id].text
    images = [(index.parent, image) for image in dom.find_all("img")]
    images += [(index.parent / "runs", image) for section in sections.values() for image in section.find_all("img")]
    assert len(images) >= 4 + 2 * len(runs)  # per dataset x model figures and each run's curves and samples
    for folder, image in images:
        src = image.attrs["src"]
        assert not src.startswith(("http:", "https:", "//", "/")), f"{src}: the report must be self-contained"
        path = folder / src
        assert path.is_file(), src
        assert image.attrs.get("alt", "").strip(), f"{src} has no alt text"
        if path.suffix == ".svg":
            import xml.etree.ElementTree as ET

            assert ET.parse(path).getroot().tag.endswith("svg")
            continue
        assert path.read_bytes()[:8] == PNG_SIGNATURE, src
        with Image.open(path) as decoded:
            decoded.load()
            assert decoded.width > 50 and decoded.height > 50
            pixels = np.asarray(decoded.convert("L"))
            assert pixels.std() > 1, f"{src} is blank"
    for figure in dom.find_all("figure"):
        assert figure.find_all("figcaption")[0].text, "every figure has a caption"
    assert dom.find_all(cls="figure-error") == [], [e.text for e in dom.find_all(cls="figure-error")]
    # self-contained: inline script only (the runs table sorts and filters), nothing fetched from elsewhere
    assert "<script src" not in html.lower() and "cdn" not in html.lower()
    # every file in figures/ is referenced (stale figures are pruned), beside the list of the files lossbench wrote
    referenced = {
        (folder / image.attrs["src"]).resolve().relative_to(index.parent.resolve()).as_posix()
        for folder, image in images
    }
    drawn = {f"figures/{p.name}" for p in (index.parent / "figures").iterdir() if p.name != MARKER}
    assert drawn == referenced and (index.parent / "figures" / MARKER).is_file()


@pytest.mark.slow
def test_header_states_configuration_device_and_feature_spaces(smoke: dict) -> None:
    dom = parse(smoke["reports"] / "index.html")
    assert dom.find_all(id="config-preset")[0].text == "smoke"
    assert dom.find_all(id="config-steps")[0].text == "ring8: 20"
    assert dom.find_all(id="config-seeds")[0].text == "0, 1"
    assert dom.find_all(id="config-device")[0].text.startswith("cpu")
    counts = dom.find_all(id="run-counts")[0].attrs
    assert counts["data-runs"] == "4"
    with Store.open(smoke["results"], create=False) as store:
        wide = store.runs_wide()
    spaces = {
        (row.attrs["data-dataset"], row.attrs["data-metric"].lower(), row.attrs["data-space"])
        for row in dom.find_all("tr")
        if "data-space" in row.attrs
    }
    feature_columns = [c for c in wide.columns if c.endswith("_features")]
    assert "fid_features" in feature_columns
    for column in feature_columns:
        for dataset, space in wide[["dataset", column]].dropna().drop_duplicates().itertuples(index=False):
            assert (dataset, column.removesuffix("_features"), space) in spaces
    # the FID column names its space; nothing measured in coordinates is called an Inception FID
    headers = [th.text for th in dom.find_all("th") if th.attrs.get("data-metric") == "fid"]
    assert headers and all("[coordinates]" in h for h in headers)
    labels = [e.text for e in dom.find_all("th")] + [e.text for e in dom.find_all("figcaption")]
    labels += [e.attrs["alt"] for e in dom.find_all("img")]
    assert not any("inception" in label.lower() for label in labels)


@pytest.mark.slow
def test_summary_numbers_in_the_html_equal_summary_csv(smoke: dict) -> None:
    # read the CSV's text and convert it ourselves: float(repr(x)) == x, so equality is exact
    summary = pd.read_csv(smoke["results"] / "summary.csv", dtype=str, keep_default_na=False)
    dom = parse(smoke["reports"] / "index.html")
    rows = {
        (r.attrs["data-dataset"], r.attrs["data-model"], r.attrs["data-loss"], r.attrs["data-metric"]): r
        for r in dom.find_all("tr", cls="summary-row")
    }
    assert len(rows) == len(summary) > 0
    numeric = [c for c in summary.columns if c not in ("dataset", "model", "loss", "metric", "better")]
    checked = 0
    for record in summary.to_dict("records"):
        row = rows[(record["dataset"], record["model"], record["loss"], record["metric"])]
        assert row.attrs["data-better"] == record["better"]  # the direction, a word, carried as it is
        cells = {
            td.attrs["data-column"]: number(td.attrs["data-value"])
            for td in row.find_all("td")
            if "data-column" in td.attrs
        }
        assert set(cells) == set(numeric)
        for column in numeric:
            assert same(cells[column], number(record[column])), (record, column, cells[column])
            checked += 1
    assert checked == len(summary) * len(numeric)
    # the leaderboard's mean and CI cells carry the same numbers
    by_key = summary.set_index(["dataset", "model", "loss", "metric"])
    leaderboard_cells = 0
    for tr in dom.find_all("tr", cls="leaderboard-row"):
        for td in tr.find_all("td", cls="metric"):
            expected = by_key.loc[
                (tr.attrs["data-dataset"], tr.attrs["data-model"], tr.attrs["data-loss"], td.attrs["data-metric"])
            ]
            for attribute, column in (("data-mean", "mean"), ("data-ci-low", "ci_low"), ("data-ci-high", "ci_high")):
                assert same(number(td.attrs[attribute]), number(expected[column]))
            leaderboard_cells += 1
    assert leaderboard_cells > 0
    # one leaderboard row per loss x model x dataset
    combos = summary[["dataset", "model", "loss"]].drop_duplicates()
    assert len(dom.find_all("tr", cls="leaderboard-row")) == len(combos) == 2


@pytest.mark.slow
def test_report_shows_failed_and_diverged_runs_flagged(faulty: dict) -> None:
    with Store.open(faulty["results"], create=False) as store:
        runs = store.runs().set_index("loss")
    assert runs.at["boom", "status"] == "failed"
    assert runs.at["nan-later", "status"] == "diverged"
    assert runs.at["nan-later", "failed_step"] == 13
    assert runs.at["nonsaturating", "status"] == "ok"
    dom = parse(faulty["reports"] / "index.html")

    sections = run_sections(faulty["reports"])
    assert set(sections) == set(runs["run_id"])  # never dropped
    failed = sections[runs.at["boom", "run_id"]]
    assert "status-failed" in failed.classes and failed.attrs["data-status"] == "failed"
    assert [b.text for b in failed.find_all(cls="badge") if "status-failed" in b.classes][0].startswith("FAILED")
    assert "boom: this loss raises on purpose" in failed.text
    diverged = sections[runs.at["nan-later", "run_id"]]
    assert diverged.attrs["data-status"] == "diverged"
    assert "DIVERGED at step 13" in [b.text for b in diverged.find_all(cls="badge")]
    assert "non-finite discriminator loss at step 13" in diverged.text
    ok = sections[runs.at["nonsaturating", "run_id"]]
    assert [b.text for b in ok.find_all(cls="badge") if "status-ok" in b.classes] == ["ok"]

    flagged = {li.attrs["data-run-id"]: li.attrs["data-status"] for li in dom.find_all("li", cls="flagged-run")}
    assert flagged == {runs.at["boom", "run_id"]: "failed", runs.at["nan-later", "run_id"]: "diverged"}
    rows = {tr.attrs["data-loss"]: tr for tr in dom.find_all("tr", cls="leaderboard-row")}
    assert set(rows) == {"boom", "nan-later", "nonsaturating"}
    assert rows["boom"].attrs["data-n-failed"] == "1" and "has-failed" in rows["boom"].classes
    assert rows["nan-later"].attrs["data-n-diverged"] == "1" and "has-diverged" in rows["nan-later"].classes
    assert rows["nonsaturating"].attrs["data-n-ok"] == "1"
    assert rows["nonsaturating"].attrs["data-n-failed"] == rows["nonsaturating"].attrs["data-n-diverged"] == "0"
    # the diverged run keeps what was measured until it stopped: its curves figure is drawn
    assert any("curves" in img.attrs["src"] for img in diverged.find_all("img"))
    assert dom.find_all(cls="figure-error") == []


@pytest.mark.slow
def test_report_command_rebuilds_from_the_store_and_reuses_run_figures(smoke: dict, tmp_path: Path) -> None:
    reports = tmp_path / "rebuilt"
    code, output = run_cli(
        "report",
        "--results",
        str(smoke["results"]),
        "--reports",
        str(reports),
        "--plugins-dir",
        str(smoke["root"] / "no-plugins"),
    )
    assert code == 0, output
    assert f"report: {(reports / 'index.html').resolve()}" in output
    first = {p.name: p.stat().st_mtime_ns for p in (reports / "figures").iterdir()}
    code, output = run_cli(
        "report",
        "--results",
        str(smoke["results"]),
        "--reports",
        str(reports),
        "--plugins-dir",
        str(smoke["root"] / "no-plugins"),
    )
    assert code == 0, output
    second = {p.name: p.stat().st_mtime_ns for p in (reports / "figures").iterdir()}
    assert set(first) == set(second)
    run_figures = [name for name in first if name.startswith("run-")]
    assert len(run_figures) == 8 and all(first[n] == second[n] for n in run_figures)  # not redrawn
    fresh = parse(reports / "index.html")
    original = parse(smoke["reports"] / "index.html")

    def numbers(dom):
        return sorted(
            (td.attrs["data-column"], td.attrs["data-value"]) for td in dom.find_all("td") if "data-column" in td.attrs
        )

    assert numbers(fresh) == numbers(original)


def test_report_on_a_missing_store_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "report",
            "--results",
            str(tmp_path / "nothing"),
            "--reports",
            str(tmp_path / "r"),
            "--plugins-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code != 0
    assert "no results store" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_show_prints_the_leaderboard_and_json(smoke: dict) -> None:
    code, output = run_cli("show", "--results", str(smoke["results"]))
    assert code == 0, output
    assert "ring8 · mlp" in output and "FID [coordinates]" in output
    lines = [line.split() for line in output.splitlines()]
    losses = [words[1] for words in lines if len(words) > 1 and words[1] in ("nonsaturating", "wgan-gp")]
    summary = pd.read_csv(smoke["results"] / "summary.csv")
    # on a mixture the protocol's modes covered ranks (the coordinate FID stays in the table, after it)
    assert "ranked by modes covered" in output
    primary = summary[summary["metric"] == "modes_covered"].sort_values(["rank", "loss"])
    assert losses == list(primary["loss"])  # best first on the primary metric (ties by name)
    printed = [words[0] for words in lines if len(words) > 1 and words[1] in losses]
    assert printed == [f"{rank:g}" for rank in primary["rank"]]
    code, output = run_cli("show", "--results", str(smoke["results"]), "--json", "--metric", "fid")
    assert code == 0
    records = pd.read_json(__import__("io").StringIO(output))
    assert set(records["metric"]) == {"fid"} and len(records) == 2
    code, output = run_cli("show", "--results", str(smoke["results"]), "--metric", "fdi")
    assert code == 2 and "did you mean 'fid'" in output
