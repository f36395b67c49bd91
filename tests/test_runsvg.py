"""A run's own SVG figures (``lossbench.report.runsvg``): well-formed SVG with the lines and points they claim."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd

from lossbench.report import runsvg

NS = "{http://www.w3.org/2000/svg}"


def test_curves_svg_draws_each_logged_series_and_marks_the_stop() -> None:
    history = pd.DataFrame(
        {
            "step": [1, 10, 20],
            "d_loss": [1.0, 0.5, np.inf],
            "g_loss": [-1.0, -2.0, -3.0],
            "d_real": [0.6, 0.7, 0.8],
            "d_fake": [0.4, 0.3, 0.2],
        }
    )
    curves = pd.DataFrame({"step": [10, 20], "key": ["fid", "fid"], "value": [3.0, 2.0]})
    root = ET.fromstring(runsvg.curves_svg(history, curves, "#0173b2", "fid", failed_step=20, label="FID"))
    assert root.tag == f"{NS}svg"
    lines = {line.find(f"{NS}title").text: line for line in root.iter(f"{NS}polyline")}
    assert set(lines) == {"D loss", "G loss", "real", "fake", "FID"}
    assert len(lines["D loss"].attrib["points"].split()) == 2  # the infinite value is left out
    assert len(lines["G loss"].attrib["points"].split()) == 3
    assert len(list(root.iter(f"{NS}line"))) == 3  # the stopped step in each panel


def test_points_svg_caps_the_points_and_draws_the_centres() -> None:
    points = np.random.default_rng(0).normal(size=(2500, 2))
    centres = np.array([[0.0, 0.0], [1.0, 1.0]])
    root = ET.fromstring(runsvg.points_svg(points, centres, "#de8f05"))
    assert len(list(root.iter(f"{NS}circle"))) == runsvg.MAX_POINTS
    assert len(list(root.iter(f"{NS}path"))) == 2
