"""``lossbench rescore``: compute missing or changed metrics of stored runs from their checkpoints, without training.

Every finished run keeps its final generator (GAN) or decoder (VAE) weights in ``results/checkpoints/``. Loading
them into a freshly built model and scoring it through the engine's own evaluation path (``train.evaluate_model``:
the run's evaluation noise, real and reference sets, history and curves) gives exactly the values the run would
have had if the metric had been registered when it trained. Curves of a new ``curve = True`` metric cannot be
recovered (they need the weights at every evaluation step): only its final values are computed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd
import torch

from lossbench.plan import seeding
from lossbench.plugin import provenance
from lossbench.errors import LossbenchError, UsageError
from lossbench.plugin.loader import Environment
from lossbench.plugin.provenance import ProvenanceIndex
from lossbench.plugin.registry import unknown_name_message
from lossbench.results.store import Store
from lossbench.training.train import evaluate_model, evaluation_sets, load_data, resolve_device, sampling_network
from lossbench.records import HISTORY_COLUMNS, facts_texts


@dataclass
class RescoreOutcome:
    """What ``rescore`` did: runs scored (run_id -> metric names), runs skipped and why."""

    scored: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # "run_id metric" -> the metric's error


def _stored_names(keys: set[str], name: str) -> bool:
    return any(key == name or key.startswith(name + "_") for key in keys)


def metrics_to_rescore(env: Environment, recorded: dict | None, keys: set[str], current: dict,
                       requested: Sequence[str]) -> list[str]:
    """The metrics of one run to compute: those asked for, else those missing or from other code."""
    if requested:
        return list(requested)
    if recorded is None:  # stored before provenance: rescore the metrics of which no key is stored
        return [name for name in env.catalog.metrics.names() if not _stored_names(keys, name)]
    return list(provenance.metric_changes(recorded, current))


def _history(store: Store, run_id: str) -> pd.DataFrame:
    frame = store.history()
    frame = frame[frame["run_id"] == run_id].drop(columns="run_id").reset_index(drop=True)
    frame = frame[list(HISTORY_COLUMNS)].astype(float)
    frame["step"] = frame["step"].astype("int64")  # as the training loop logs it
    return frame


def _curves(store: Store, run_id: str) -> pd.DataFrame:
    frame = store.curves()
    frame = frame[frame["run_id"] == run_id][["step", "key", "value"]].reset_index(drop=True)
    return frame.astype({"step": "int64", "value": float})


def rescore(env: Environment, store: Store, metrics: Sequence[str] = (), device: str | None = None,
            progress: Callable[[str], None] | None = None) -> RescoreOutcome:
    """Score the stored runs again with ``metrics`` (default: the missing or changed ones) from their checkpoints."""
    for name in metrics:
        if name not in env.catalog.metrics:
            raise UsageError(unknown_name_message("metric", name, env.catalog.metrics.names()))
    origins = ProvenanceIndex(env)
    recorded = store.provenances()
    stored_metrics = store.metrics()
    keys_of = stored_metrics.groupby("run_id")["key"].apply(set).to_dict()
    outcome = RescoreOutcome()
    seeding.prepare_process()
    for run in store.runs().to_dict("records"):
        run_id = run["run_id"]
        spec = store.spec(run_id)
        try:
            current = origins.of_run(spec)
        except LossbenchError as exc:  # its loss, model or dataset is no longer registered
            outcome.skipped[run_id] = str(exc)
            continue
        names = metrics_to_rescore(env, recorded.get(run_id), keys_of.get(run_id, set()), current, metrics)
        if not names:
            continue
        if run["status"] == "failed":
            outcome.skipped[run_id] = "the run failed: it has no trained model"
            continue
        checkpoint = store.checkpoint_path(run_id)
        if checkpoint is None or not checkpoint.is_file():
            outcome.skipped[run_id] = ("no checkpoint stored (trained by an older lossbench): train it again with "
                                       "--no-resume" if checkpoint is None else f"checkpoint {checkpoint} is missing")
            continue
        if progress is not None:
            progress(f"{spec.label}: {', '.join(names)}")
        values, texts, errors = score_checkpoint(env, spec, checkpoint.read_bytes(), names, run, device,
                                                 _history(store, run_id), _curves(store, run_id))
        texts.update({f"{name}_error": message for name, message in errors.items()})
        texts.update(facts_texts(env.catalog.metrics.get(name) for name in names))  # replaced with the values
        outcome.errors.update({f"{run_id} {name}": message for name, message in errors.items()})
        merged = dict(recorded.get(run_id) or {}) or {key: value for key, value in current.items() if key != "metrics"}
        merged["metrics"] = {**merged.get("metrics", {}), **{name: current["metrics"][name] for name in names}}
        store.replace_metrics(run_id, names, values, texts, merged)
        outcome.scored[run_id] = names
    return outcome


def score_checkpoint(env: Environment, spec, checkpoint: bytes, names: Sequence[str], run: dict,
                     device: str | None, history: pd.DataFrame, curves: pd.DataFrame) -> tuple[dict, dict, dict]:
    """Load a run's sampling network from ``checkpoint`` and compute ``names`` as its final evaluation did."""
    catalog = env.catalog
    target = resolve_device(device or spec.device)
    seeding.enable_determinism(target)
    dataset = catalog.datasets.get(spec.dataset)
    model = catalog.models.get(spec.model).build(dataset.spec)
    _role, network = sampling_network(model)
    network.load_state_dict(torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=True))
    network.to(target)
    chosen = [catalog.metrics.get(name) for name in names]
    diverged_at = None
    if run["status"] == "diverged":  # as in training: a diverged run is scored from its history only
        chosen = [metric for metric in chosen if not getattr(metric, "needs_samples", True)]
        diverged_at = int(run["failed_step"]) if pd.notna(run["failed_step"]) else None
    real, reference = evaluation_sets(load_data(dataset), spec)
    with seeding.pinned_threads(seeding.run_threads()):
        outcome, _fake = evaluate_model(model, spec, dataset, chosen, real, reference, target, final=True,
                                        history=history, curves=curves, diverged_at=diverged_at)
    return outcome.values, outcome.texts, outcome.errors
