"""``lossbench rescore``: compute missing or changed metrics of stored runs from their checkpoints, without training.

Every finished run keeps its final generator (GAN) or decoder (VAE) weights in ``results/checkpoints/``. Loading
them into a freshly built model and scoring it through the engine's own evaluation path (``train.evaluate_model``:
the run's evaluation noise, real and reference sets, history and curves) gives exactly the values the run would
have had if the metric had been registered when it trained. Curves of a new ``curve = True`` metric cannot be
recovered (they need the weights at every evaluation step): only its final values are computed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch

from lossbench.errors import LossbenchError, UsageError
from lossbench.plan import seeding
from lossbench.plugin import provenance
from lossbench.plugin.loader import Environment
from lossbench.plugin.provenance import ProvenanceIndex
from lossbench.plugin.registry import unknown_name_message
from lossbench.records import HISTORY_COLUMNS, facts_texts, space_key, space_of
from lossbench.results.store import Store
from lossbench.scoring.chosen import check_spaces
from lossbench.scoring.evaluate import run_metrics, score_in_spaces
from lossbench.scoring.spaces import catalog_spaces
from lossbench.training.train import evaluation_context, evaluation_sets, load_data, resolve_device, sampling_network


@dataclass
class RescoreOutcome:
    """What ``rescore`` did: runs scored (run_id -> metric names), runs skipped and why."""

    scored: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # "run_id metric" -> the metric's error


def _stored_names(keys: set[str], name: str) -> bool:
    return any(key == name or key.startswith(name + "_") for key in keys)


def metrics_to_rescore(
    env: Environment, recorded: dict | None, keys: set[str], current: dict, requested: Sequence[str]
) -> list[str]:
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


def rescore(
    env: Environment,
    store: Store,
    metrics: Sequence[str] = (),
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
    spaces: Sequence[str] = (),
) -> RescoreOutcome:
    """Score the stored runs again with ``metrics`` (default: the missing or changed ones) from their checkpoints;
    with ``spaces``, also compute the ``per_feature_space`` metrics in each space a run lacks."""
    for name in metrics:
        if name not in env.catalog.metrics:
            raise UsageError(unknown_name_message("metric", name, env.catalog.metrics.names()))
    registry = catalog_spaces(env.catalog)
    datasets = [
        env.catalog.datasets.get(name) for name in sorted(set(store.runs()["dataset"])) if name in env.catalog.datasets
    ]
    check_spaces(registry, tuple(spaces), datasets, named=False)
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
        lacking = spaces_lacking(keys_of.get(run_id, set()), spaces, registry, env.catalog, run)
        if not (names or lacking):
            continue
        if run["status"] == "failed":
            outcome.skipped[run_id] = "the run failed: it has no trained model"
            continue
        checkpoint = store.checkpoint_path(run_id)
        if checkpoint is None or not checkpoint.is_file():
            outcome.skipped[run_id] = (
                "no checkpoint stored (trained by an older lossbench): train it again with --no-resume"
                if checkpoint is None
                else f"checkpoint {checkpoint} is missing"
            )
            continue
        in_spaces = [space_key(m.name, m.name, space) for space in lacking for m in _per_space(env)]
        if progress is not None:
            progress(f"{spec.label}: {', '.join(names + in_spaces)}")
        values, texts, errors = score_checkpoint(
            env,
            spec,
            checkpoint.read_bytes(),
            names,
            run,
            device,
            _history(store, run_id),
            _curves(store, run_id),
            lacking,
        )
        texts.update({f"{name}_error": message for name, message in errors.items()})
        texts.update(facts_texts(env.catalog.metrics.get(name) for name in names))  # replaced with the values
        outcome.errors.update({f"{run_id} {name}": message for name, message in errors.items()})
        merged = dict(recorded.get(run_id) or {}) or {key: value for key, value in current.items() if key != "metrics"}
        merged["metrics"] = {**merged.get("metrics", {}), **{name: current["metrics"][name] for name in names}}
        store.replace_metrics(run_id, names + in_spaces, values, texts, merged)
        outcome.scored[run_id] = names + in_spaces
    return outcome


def score_checkpoint(
    env: Environment,
    spec,
    checkpoint: bytes,
    names: Sequence[str],
    run: dict,
    device: str | None,
    history: pd.DataFrame,
    curves: pd.DataFrame,
    spaces: Sequence[str] = (),
) -> tuple[dict, dict, dict]:
    """Load a run's sampling network from ``checkpoint`` and compute ``names`` as its final evaluation did, and
    the ``per_feature_space`` metrics in each of ``spaces``."""
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
        ctx = evaluation_context(
            model,
            spec,
            dataset,
            real,
            reference,
            target,
            final=True,
            history=history,
            curves=curves,
            diverged_at=diverged_at,
            spaces=catalog_spaces(catalog),
        )
        outcome = run_metrics(chosen, ctx)
        if spaces:
            score_in_spaces(_per_space(env), ctx, spaces, outcome)
    return outcome.values, outcome.texts, outcome.errors


def _per_space(env: Environment) -> list:
    return [m for m in env.catalog.metrics if getattr(m, "per_feature_space", False)]


def spaces_lacking(keys: set[str], spaces: Sequence[str], registry: dict, catalog, run: dict) -> list[str]:
    """The chosen spaces a stored run has no values in and could have: a finished run (not diverged or failed)
    of a dataset the space takes."""
    if not spaces or run["status"] != "ok" or run["dataset"] not in catalog.datasets:
        return []
    data = catalog.datasets.get(run["dataset"]).spec
    return [
        space
        for space in spaces
        if not registry[space].refuses(data) and not any(space_of(key) == space for key in keys)
    ]


def missing_space_notes(store: Store, specs: Sequence, spaces: Sequence[str], registry: dict, catalog) -> list[str]:
    """A line for ``run`` when stored runs it keeps lack a chosen feature space: rescoring adds it, no training."""
    if not spaces or not specs:
        return []
    keys_of = store.metrics().groupby("run_id")["key"].apply(set).to_dict()
    runs = store.runs().set_index("run_id")
    lacking = [
        spec
        for spec in specs
        if spaces_lacking(
            keys_of.get(spec.run_id, set()),
            spaces,
            registry,
            catalog,
            {**runs.loc[spec.run_id].to_dict(), "dataset": spec.dataset},
        )
    ]
    if not lacking:
        return []
    names = ",".join(spaces)
    runs_lack = "1 stored run lacks" if len(lacking) == 1 else f"{len(lacking)} stored runs lack"
    return [
        (
            f"{runs_lack} values in feature space(s) {names}: `lossbench rescore --feature-space {names}` adds "
            "them from the checkpoints without training"
        )
    ]
