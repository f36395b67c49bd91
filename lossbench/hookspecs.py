"""The hook contracts every lossbench plugin implements: the one file a plugin author must read.

A plugin is any Python module or object with functions decorated by ``lossbench.hookimpl`` whose names match the
hooks below. lossbench finds plugins in three places, in this order:

1. its own built-ins (``lossbench/builtin/``), registered through these very hooks;
2. installed distributions that declare an entry point in the ``lossbench`` group, e.g. in ``pyproject.toml``::

       [project.entry-points.lossbench]
       mine = "lossbench_mine.plugin"

3. every ``*.py`` file in the plugins folder: ``./plugins`` when it exists, ``--plugins-dir DIR`` or
   ``$LOSSBENCH_PLUGINS_DIR``. The plugin's name is the file's stem.

A loss plugin is one file dropped into ``./plugins/``: the example ``lossbench/examples/softplus_hinge.py`` at
the end of this reference (*A plugin in one file*). The objects a plugin subclasses, returns and reads, with every
attribute it may read or set, are listed under *Objects*.

Rules that hold for every ``register_*`` hook:

* Call ``register(obj)`` once per object; the hook's return value is ignored.
* ``obj.name`` is a lowercase slug (``[a-z0-9][a-z0-9-]*``); it is how users select it (``-l softplus-hinge``).
* A name registered twice is an error naming both plugins; the first registration is kept, the second is
  rejected (built-ins register first, so a plugin cannot silently replace a built-in).
* ``obj.description`` (or the first line of the class docstring) is shown by ``lossbench list``.
* A malformed object (missing methods, wrong family, no name) is rejected with the plugin's name and the
  reason; the plugin's other objects and every other plugin still load. ``--strict-plugins`` makes any
  plugin problem fatal (non-zero exit).
* Hooks run in the driver process and again in each worker process, so they must be cheap and free of side
  effects: create objects, do not load data or train anything at registration time.

Hook implementations whose names are not listed here are reported as unknown hooks (a typo such as
``register_loss`` would otherwise be silently ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from lossbench.api import PROJECT_NAME, AdversarialLoss, Dataset, FeatureSpace, Metric, ModelFactory, VAELoss

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def register_losses(register: Callable[[AdversarialLoss | VAELoss], None]) -> None:
    """Register loss objects: instances of ``AdversarialLoss`` (family "gan") or ``VAELoss`` (family "vae").

    ``AdversarialLoss`` members (scores are the discriminator's raw outputs, shape ``[batch]``):

    * ``discriminator_loss(real_scores, fake_scores) -> Tensor``: scalar the discriminator minimises.
    * ``generator_loss(fake_scores, real_scores) -> Tensor``: scalar the generator minimises.
    * ``penalty(critic, real, fake) -> Tensor | None``: optional regulariser added to the discriminator's loss;
      ``critic`` is a callable ``x -> scores`` that may be differentiated with respect to its input.
    * ``after_discriminator_step(discriminator) -> None``: optional, e.g. weight clipping.
    * ``recipe: Recipe``: ``n_critic``, ``optimizer`` ("adam" | "rmsprop" | "sgd"), ``lr_g``, ``lr_d``,
      ``betas``: the training defaults of the loss's paper, which the harness follows.
    * ``scores_are_logits: bool`` (default True): False for critics (Wasserstein), so that sigmoid(D) and the
      equilibrium gap are not reported for them.

    ``VAELoss`` members: ``loss(x, reconstruction, mu, logvar) -> Tensor`` and ``recipe``.

    Both may define ``supports(spec) -> bool`` (default True) to restrict the datasets they apply to, and
    ``bind(dataset, device) -> loss`` to return a per-run copy that needs the dataset (for
    example a perceptual loss that uses the dataset's classifier). Every loss must return a finite scalar with
    gradients; a non-scalar output fails the run with the loss's name, a non-finite one ends it as diverged.
    Call ``register(loss)`` once per loss object.
    """


@hookspec
def register_models(register: Callable[[ModelFactory], None]) -> None:
    """Register model factories (``ModelFactory``): ``name``, ``family`` ("gan" | "vae"), ``supports(spec)``
    and ``build(spec) -> GAN | VAE``.

    The harness pairs a model only with losses of its family and datasets it ``supports``. ``build`` must return
    freshly initialised modules: the harness seeds torch before calling it, so that every loss starts from the
    same weights for a given seed, model and dataset. ``GAN.generator(z)`` with ``z`` of shape
    ``[B, latent_dim]`` returns ``[B, *spec.shape]``; ``GAN.discriminator(x)`` returns ``[B]``.
    ``VAE.encoder(x)`` returns ``(mu, logvar)``, each ``[B, latent_dim]``; ``VAE.decoder(z)`` returns samples.
    Images are in [-1, 1] (end the generator with ``tanh``). Call ``register(factory)`` once per factory.
    """


@hookspec
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register datasets (``Dataset``): ``name``, ``spec: DataSpec(shape, kind, n_modes)``,
    ``load(root) -> Samples`` and ``mode_of(x) -> ModeAssignment | None``.

    ``load`` must be deterministic (a fixed seed for generated data) and must never download: data that lives
    on the user's disk is read from ``root`` (``--data-root`` / ``$LOSSBENCH_DATA``), and when it is missing
    ``load`` raises ``lossbench.errors.DataUnavailable`` with a message that says which files to put where.
    ``availability(root)`` returns that message without loading (None when available), so that the default
    grid can skip the dataset. ``feature_network(device)`` may return a network whose features the scoring
    metrics use (image datasets: their classifier). Call ``register(dataset)`` once per dataset.
    """


@hookspec
def register_metrics(register: Callable[[Metric], None]) -> None:
    """Register metrics (``Metric``): ``name``, ``curve`` and ``compute(ctx) -> dict[str, float | str]``.

    ``ctx`` is a ``MetricContext`` (the harness passes an ``EvaluationContext``): ``real``, ``reference`` (a
    second real set, disjoint from ``real``, for real-vs-real floors), ``fake``, ``dataset``, ``spec`` (the
    RunSpec), ``history`` (a DataFrame of the run so far), ``curves`` (the light evaluations so far: step, key,
    value), ``diverged_at`` (step or None), ``final`` (False for the light evaluations during training) and
    ``features(which="default") -> (real, fake)`` numpy arrays, cached per evaluation so that several metrics
    share one feature extraction. Keys are ``<name>`` or ``<name>_<part>``; values are numbers (``float``,
    ``int`` or numpy scalars; a ``bool`` or a tensor is rejected: return ``float(flag)`` or ``t.item()``), NaN
    only where a value is undefined (raise on errors, never hide them as NaN). A ``str`` value records a
    fact about the others, such as the feature space. A metric that raises is recorded with the run, named.
    Metrics with ``curve = True`` also run every ``eval_every`` training steps on fewer samples. Metrics with
    ``needs_samples = False`` read only the history and are computed for diverged runs too. Metrics with
    ``per_feature_space = True`` (FID, KID, PRDC) are also computed, at the final evaluation, in each space chosen
    with ``--feature-space`` (see ``register_feature_spaces``), their keys stored as ``<name>@<space>...``. Call
    ``register(metric)`` once per metric.
    """


@hookspec
def register_feature_spaces(register: Callable[[FeatureSpace], None]) -> None:
    """Register feature spaces (``FeatureSpace``): networks that image metrics can be computed in, chosen with
    ``lossbench run --feature-space NAME`` (or ``lossbench rescore --feature-space NAME`` for stored runs).

    A space declares ``name``, the input it takes (``inputs`` "image" with ``channels`` and ``sizes``, or "vector"
    for any samples), its output ``width`` and ``weights``, the file its weights are read from (None: none).
    ``build(dataset, device)`` returns the extractor, a ``FeatureNetwork`` mapping ``(N, *shape)`` samples in
    [-1, 1] to ``(N, width)`` features; it is called only when a metric first needs the space, so registering
    loads nothing. ``refuses(spec)`` and ``unavailable()`` say in one line why a space cannot score a dataset
    or cannot be built here (default: from the declared input, and a missing ``weights`` file). The built-in
    spaces "inception" (pytorch-fid's FID Inception), "classifier" (the dataset's own network) and "raw"
    (coordinates or pixels) are registered through this hook. Call ``register(space)`` once per space.
    """


@hookspec
def run_finished(record: dict[str, Any]) -> None:
    """Called in the driver after each run has been committed to the store.

    ``record`` holds ``run_id``, ``loss``, ``model``, ``dataset``, ``seed``, ``spec`` (the RunSpec as a dict),
    ``status`` ("ok" | "diverged" | "failed"), ``reason``, ``failed_step``, ``metrics`` (dict of floats),
    ``texts`` (dict of str facts, e.g. the feature space), ``history`` (a pandas DataFrame), ``train_seconds``,
    ``eval_seconds`` and ``provenance`` (the code that produced the run: lossbench's version and, for the loss,
    model, dataset and each metric, its plugin, distribution, version and source hash, as ``lossbench show
    --runs --json`` prints it). Use it to log elsewhere (TensorBoard, W&B). An exception here is reported with the
    plugin's name; the grid goes on and the stored run is kept.
    """


@hookspec
def run_logged(batch: dict[str, Any]) -> None:
    """Called while a run trains, in the process that trains it (a worker, a Ray task), with what was logged
    since the previous call: for live loggers (TensorBoard, W&B) that must not wait for the run to finish.

    Batched on the run's own schedule, never per step: once at each light evaluation (every ``eval_every``
    steps) and once when the run ends. ``batch`` holds ``run_id``, ``label`` (``dataset/model/loss/seedN``),
    ``spec`` (the RunSpec as a dict), ``step`` (the last step trained), ``history`` (a pandas DataFrame of the
    history rows logged since the previous call, every ``log_every`` steps, the columns of the stored history),
    ``curves`` (a DataFrame ``step, key, value`` of the light evaluations since then) and ``final`` (True on the
    last call of the run). The last call also holds ``status`` ("ok" | "diverged" | "failed"), ``reason`` and
    ``metrics`` (the final metric values; empty for a failed run); earlier calls hold ``status`` "running".

    Keep it cheap: it runs inside the training loop's process and its time counts as evaluation time, not
    training time. An exception here is reported once per run on stderr with the plugin's name; the run goes on
    and its results do not depend on the logger. ``lossbench run --log tensorboard`` turns on the built-in
    TensorBoard logger, which is an implementation of this hook.
    """


HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, value in list(globals().items()) if callable(value) and hasattr(value, f"{PROJECT_NAME}_spec")
)
"""Every hook above, in source order: read off the ``@hookspec`` declarations, so a new hook is listed by being
declared. Each ``register_<kinds>`` hook is the hook of one entry of ``lossbench.plugin.kinds.KINDS``."""
