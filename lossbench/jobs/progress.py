"""Progress as one line per finished run, for a stderr that is not a terminal (nohup, CI, a cluster job's log),
where a redrawn progress bar shows nothing until the grid ends."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from lossbench.records import facts_from_texts, is_facts_column
from lossbench.results.facts import FEATURE_SUFFIX, key_spaces
from lossbench.results.headlines import leading_metrics

REASON_CHARS = 100  # a failed run's reason is cut here; the full one is in the store and the final summary


def clock_text(seconds: float) -> str:
    """``H:MM:SS`` (whole seconds)."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def headline(result: Any) -> str:
    """The run's status and its headline value (the metric a leaderboard ranks by), e.g. ``ok, fid 0.1234``."""
    if result.status == "failed":
        reason = result.reason if len(result.reason) <= REASON_CHARS else result.reason[: REASON_CHARS - 1] + "…"
        return f"failed: {reason}"
    finite = [k for k, v in result.metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)]
    spaces = {
        column.removesuffix(FEATURE_SUFFIX): [text]
        for column, text in result.texts.items()
        if column.endswith(FEATURE_SUFFIX)
    }
    names = [column.rsplit("_", 1)[0] for column in result.texts if is_facts_column(column)]
    key = leading_metrics(finite, facts_from_texts(result.texts), key_spaces(finite, spaces), names)[0]
    return f"{result.status}, {key} {result.metrics[key]:.4g}" if key else result.status


class RunLines:
    """Counts finished runs and writes ``[done/total] label status, metric value · elapsed H:MM:SS, ETA H:MM:SS``.

    The ETA assumes the runs left take as long on average as those done (the grid's runs are of one preset).
    """

    def __init__(self, total: int, emit: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.emit, self.clock = total, emit, clock
        self.started = clock()
        self.done = 0

    def finished(self, result: Any) -> str:
        self.done += 1
        elapsed = self.clock() - self.started
        left = max(self.total - self.done, 0)
        eta = clock_text(elapsed / self.done * left) if self.done else "?"
        line = (
            f"[{self.done}/{self.total}] {result.spec.label} {headline(result)} · elapsed {clock_text(elapsed)}, "
            f"ETA {eta}"
        )
        self.emit(line)
        return line
