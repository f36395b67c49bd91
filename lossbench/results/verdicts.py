"""Trained enough, or it says so: per dataset x model, how many losses reached the dataset's training target.

Each run stores ``target_reached`` (1, 0; absent for a diverged or failed run, which did not reach it) and the
rule as the text ``target_rule`` (``builtin.metrics.TargetReached``), so the verdict is read from the store alone.
A loss reached the target when at least half of its seeds did. When no loss reached it, the budget decided the
ranking ("budget"); when most losses missed it, the grid is undertrained for most losses ("undertrained"); when
some missed it where others reached it, that is a finding about those losses ("finding").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

from lossbench.results.facts import Facts, facts_of, stored_facts

REACHED = "target_reached"
RULE = "target_rule"
NEXT_PRESET = {"smoke": "standard", "quick": "standard", "standard": "paper"}


def rerun_advice(preset: str | None) -> str:
    """What to run next: the next larger preset, or more steps once there is none."""
    following = NEXT_PRESET.get(preset or "")
    return f"rerun with `--preset {following}` or more `--steps`" if following else "rerun with more `--steps`"


_CONDITION = re.compile(
    r"(?P<key>[A-Za-z0-9_]+) (?P<op>>=|<=) (?P<bound>[0-9.eE+-]+)(?: x (?P<relative>[A-Za-z0-9_]+))?"
)


@dataclass
class Verdict:
    """The training verdict of one dataset x model."""

    dataset: str
    model: str
    kind: str  # "trained" | "finding" | "undertrained" | "budget"
    rule: str
    seeds_reached: dict[str, tuple[int, int]]  # loss -> (seeds that reached the target, seeds)
    preset: str | None = None  # the runs' preset (the most common one), for the advice
    best: list[str] = field(default_factory=list)  # "the best high-quality share is 1 % (nonsaturating)"

    @property
    def losses_reached(self) -> list[str]:
        return [loss for loss, (hit, n) in self.seeds_reached.items() if n and 2 * hit >= n]

    @property
    def losses_missed(self) -> list[str]:
        return [loss for loss in self.seeds_reached if loss not in self.losses_reached]

    @property
    def notice(self) -> bool:
        """Whether the page should open this dataset x model with a warning."""
        return self.kind in ("budget", "undertrained")

    def message(self) -> str:
        n, k = len(self.seeds_reached), len(self.losses_reached)
        best = "; ".join(self.best)
        best = f" {best[0].upper()}{best[1:]}." if best else ""
        advice = rerun_advice(self.preset)
        rerun = f" {advice[0].upper()}{advice[1:]}."
        if self.kind == "budget":
            return (
                f"Undertrained: no loss reached the training target ({self.rule}); this is a budget problem, "
                f"not a finding about the losses, and their ranking here is not a verdict.{best}{rerun}"
            )
        if self.kind == "undertrained":
            return (
                f"Undertrained: only {k} of {n} losses reached the training target ({self.rule}): "
                f"{', '.join(self.losses_reached)}. The others missing it where these succeed is a finding about "
                f"them, but with most losses short of it the budget may decide the ranking.{best}{rerun}"
            )
        if self.kind == "finding":
            return (
                f"{k} of {n} losses reached the training target ({self.rule}); "
                f"{', '.join(self.losses_missed)} missed it where the others succeed: a finding about "
                f"{'that loss' if len(self.losses_missed) == 1 else 'those losses'}, not the budget."
            )
        return f"Every loss reached the training target ({self.rule})."


def _conditions(rule: str) -> list[dict[str, str]]:
    return [match.groupdict() for match in _CONDITION.finditer(rule)]


def _format(key: str, value: float) -> str:
    if key.endswith(("high_quality", "_share")):
        return f"{100 * value:.3g} %"
    return f"{value:.3g}"


def best_values(group: pd.DataFrame, rule: str, facts: Facts | None = None) -> list[str]:
    """For each condition of the rule, the best mean over seeds of any loss, and which loss it is; keys named by
    their metric's labels (``facts``, default: those stored with the runs)."""
    facts = stored_facts(group) if facts is None else facts
    ok = group[group["status"] == "ok"]
    found = []
    for condition in _conditions(rule):
        key, relative = condition["key"], condition["relative"]
        if key not in ok.columns or (relative and relative not in ok.columns):
            continue
        values = pd.to_numeric(ok[key], errors="coerce")
        name = facts_of(key, facts).name(key)
        if relative:
            values = values / pd.to_numeric(ok[relative], errors="coerce")
            name = f"{name} / {facts_of(relative, facts).name(relative)}"
        means = values.groupby(ok["loss"]).mean().dropna()
        if means.empty:
            continue
        loss = means.idxmax() if condition["op"] == ">=" else means.idxmin()
        unit = f" x {relative}" if relative else ""
        found.append(
            f"the best {name} is {_format(key, means[loss])} ({loss}; target {condition['op']} "
            f"{_format(key, float(condition['bound']))}{unit})"
        )
    return found


def verdicts(wide: pd.DataFrame) -> dict[tuple[str, str], Verdict]:
    """The verdict of every dataset x model whose runs carry a training target (others have none)."""
    found: dict[tuple[str, str], Verdict] = {}
    if wide.empty or RULE not in wide.columns:
        return found
    for (dataset, model), group in wide.groupby(["dataset", "model"], sort=True):
        rules = group[RULE].dropna()
        if rules.empty:
            continue
        rule = str(rules.iloc[0])
        reached = pd.to_numeric(group.get(REACHED), errors="coerce").fillna(0) >= 0.5
        seeds = {loss: (int(reached[rows.index].sum()), len(rows)) for loss, rows in group.groupby("loss", sort=True)}
        n_hit = sum(1 for hit, n in seeds.values() if n and 2 * hit >= n)
        if n_hit == 0:
            kind = "budget"
        elif 2 * n_hit < len(seeds):
            kind = "undertrained"
        elif n_hit < len(seeds):
            kind = "finding"
        else:
            kind = "trained"
        presets = group["preset"].dropna() if "preset" in group.columns else pd.Series(dtype=object)
        preset = str(presets.mode().iloc[0]) if len(presets) else None
        verdict = Verdict(dataset, model, kind, rule, seeds, preset)
        if verdict.notice:
            verdict.best = best_values(group, rule)
        found[(dataset, model)] = verdict
    return found


def seeds_text(verdict: Verdict | None, loss: str) -> str:
    """'2/3' seeds of ``loss`` that reached the target, or '–' without a target."""
    if verdict is None or loss not in verdict.seeds_reached:
        return "–"
    hit, n = verdict.seeds_reached[loss]
    return f"{hit}/{n}"


def share(verdict: Verdict | None, loss: str) -> float:
    if verdict is None or loss not in verdict.seeds_reached:
        return math.nan
    hit, n = verdict.seeds_reached[loss]
    return hit / n if n else math.nan
