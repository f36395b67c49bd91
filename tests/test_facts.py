"""Metric facts (``lossbench.records``, ``lossbench.results.facts``, ``lossbench.results.headlines``) on hand-made
declarations: what a metric declares is what the store keeps and what the readers see, whatever the metric."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lossbench.records import KeyFacts, facts_from_texts, facts_texts, metric_facts
from lossbench.results import headlines
from lossbench.results.facts import key_spaces, label, stored_facts


class Declared:
    """Any object with the attributes counts: facts are read by attribute, as from a ``Metric`` subclass."""

    name = "mine"
    better = {"mine": "higher", "mine_floor": "none"}
    labels = {"mine": "my score"}
    units = {"mine": "%"}
    headline = {"mine": 2}


def test_a_metrics_declarations_become_key_facts_with_defaults() -> None:
    facts = metric_facts(Declared())
    assert facts == {"mine": KeyFacts("higher", "my score", "%", 2), "mine_floor": KeyFacts(better="none")}
    assert facts["mine_floor"].name("mine_floor") == "mine floor"  # unlabelled: the key with spaces
    assert metric_facts(object()) == {}  # a metric that declares nothing stores nothing

    class Misranked(Declared):
        headline = {"mine": "first"}

    with pytest.raises(ValueError, match=r"metric 'mine': headline\['mine'\] is 'first'; expected an int rank"):
        metric_facts(Misranked())


def test_stored_texts_round_trip_and_override_an_older_stores_directions() -> None:
    texts = facts_texts([Declared()])
    assert list(texts) == ["mine_facts"]
    assert json.loads(texts["mine_facts"])["mine"] == {
        "better": "higher",
        "label": "my score",
        "unit": "%",
        "headline": 2,
    }
    assert facts_from_texts(texts) == metric_facts(Declared())
    legacy = {"mine_directions": json.dumps({"mine": "lower", "old_key": "higher"})}
    assert facts_from_texts(legacy) == {"mine": KeyFacts("lower"), "old_key": KeyFacts("higher")}
    both = facts_from_texts({**texts, **legacy})  # the full declaration wins, whatever the column order
    assert both["mine"] == KeyFacts("higher", "my score", "%", 2) and both["old_key"] == KeyFacts("higher")
    wide = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "mine": [1.0, 2.0],
            "mine_facts": [texts["mine_facts"], None],
            "fid_facts": [None, "not json"],
        }
    )
    assert stored_facts(wide) == metric_facts(Declared())  # unreadable texts are skipped


def test_labels_carry_the_unit_and_the_feature_space() -> None:
    facts = metric_facts(Declared())
    assert label("mine", facts) == "my score (%)"
    assert label("mine", facts, "inception-v3-pool3") == "my score (%) [Inception-v3]"
    assert label("other_key", facts, "pixels") == "other key [pixels]"


def test_headline_ranks_order_the_leaderboard_and_raw_spaces_hand_the_lead_to_space_free_measures() -> None:
    facts = {
        "a": KeyFacts(headline=1),
        "b_x": KeyFacts("higher", headline=2),
        "b_y": KeyFacts(headline=4),
        "c": KeyFacts("higher", headline=3),
        "d": KeyFacts(),
        "e_floor": KeyFacts("none"),
    }
    present = ["e_floor", "d", "c", "b_y", "b_x", "a"]
    assert headlines.headline_metrics(present, facts) == ["a", "b_x", "c", "b_y"]
    assert headlines.headline_metrics(present, facts, limit=2) == ["a", "b_x"]
    assert headlines.primary_metric(present, facts) == "a"
    assert headlines.primary_metric(["e_floor", "d"], facts) == "d"  # no headline: a ranked key, never a "none"
    learned = key_spaces(present, {"a": ["inception-v3-pool3"], "c": ["inception-v3-pool3"]})
    assert headlines.leading_metrics(present, facts, learned, ["b", "c"]) == (
        "a",
        ["a", "b_x", "c", "b_y"],
        ["a", "b_x", "c", "b_y"],
    )
    raw = key_spaces(present, {"a": ["coordinates"], "c": ["coordinates"]})
    # "a" was measured in raw coordinates: metric b's keys (no feature space) lead, in their rank order
    assert headlines.leading_metrics(present, facts, raw, ["b", "c"]) == (
        "b_x",
        ["b_x", "b_y", "a", "c"],
        ["b_x", "b_y", "a", "c"],
    )
