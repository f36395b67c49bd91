"""The built-in TensorBoard logger (``lossbench run --log tensorboard``): an implementation of ``run_logged``.

Needs the ``tensorboard`` package (``pip install "lossbench[tensorboard]"``), imported only when chosen. One
folder per run under ``--log-dir`` (``live.run_folder``): ``train/<column>`` scalars from the history rows,
``eval/<key>`` from the light evaluations, ``final/<key>`` at the last step, and the spec and outcome as text.
"""

from __future__ import annotations

import json
from typing import Any

from lossbench.api import hookimpl
from lossbench.plugin import live

_WRITERS: dict[str, Any] = {}  # run_id -> its open SummaryWriter, in the process that trains the run


@hookimpl
def run_logged(batch: dict[str, Any]) -> None:
    if "tensorboard" not in live.chosen():
        return
    writer = _WRITERS.get(batch["run_id"])
    if writer is None:
        from torch.utils.tensorboard import SummaryWriter

        folder = live.log_dir() / live.run_folder(batch["label"], batch["run_id"])
        writer = _WRITERS[batch["run_id"]] = SummaryWriter(log_dir=str(folder))
        writer.add_text("spec", "    " + json.dumps(batch["spec"], indent=2, default=str).replace("\n", "\n    "))
    for row in batch["history"].to_dict("records"):
        step = int(row.pop("step"))
        for column, value in live.finite_items(row):
            writer.add_scalar(f"train/{column}", value, step)
    for step, key, value in batch["curves"].itertuples(index=False):
        for name, number in live.finite_items({key: value}):
            writer.add_scalar(f"eval/{name}", number, int(step))
    if not batch["final"]:
        writer.flush()
        return
    for key, value in live.finite_items(batch["metrics"]):
        writer.add_scalar(f"final/{key}", value, int(batch["step"]))
    writer.add_text("status", f"{batch['status']}: {batch['reason']}" if batch["reason"] else batch["status"])
    writer.close()
    del _WRITERS[batch["run_id"]]
