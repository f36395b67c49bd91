"""The stacked engine against the sequential one: run-steps per second training the same runs, every core in use.

The set is every GAN loss x 3 seeds on ring8 · mlp and on digits · dcgan. Each round trains the whole set with the
sequential engine on ``--workers`` processes (one run per worker at a time: ``executors.local.run_processes``),
then stacked on as many processes (one group per worker at a time, groups cut so every worker has one:
``stacked_plan.plan_groups``), alternating so that load from other processes on a shared machine falls on both
sides. Two figures per side: wall-clock (everything: start-up, training, final scoring) and training time
(``RunResult.train_seconds`` summed, divided by the workers: evaluations are the same code on both sides). Both
sides use ``seeding.run_threads()`` threads per process. ``--workers 1`` trains in this process instead. The
largest stacked-vs-sequential metric gap is printed as a check that both sides trained the same runs. ``bound`` is
the most any stacked engine could give in training time on this machine: the largest group's networks trained as
one stack with no per-member work at all and no penalty, each run with its own critic schedule
(``arithmetic_bound``), against the sequential engine's training time.
Goals (2 CPU cores): >= 3x for ring8 · mlp, >= 1.5x for digits · dcgan.

``--per-loss`` prints, instead, where the time goes: each loss's seeds trained one after another and as one group
of their own, in this process on one thread, with the training-time ratio, the share of the sequential engine's
time the loss takes, and the critic steps per generator step its recipe runs.

    python benchmarks/vectorised.py [--steps 200] [--seeds 3] [--rounds 2] [--workers N] [--only ring8]
    python benchmarks/vectorised.py --per-loss --only ring8
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from lossbench.api import AdversarialLoss
from lossbench.executors.local import run_processes, run_serial
from lossbench.plan import seeding
from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import PluginConfig, load_environment
from lossbench.training.stacked_plan import plan_groups

SETS = {"ring8": ("mlp", 128), "digits": ("dcgan", 64)}


def specs_for(dataset: str, steps: int, seeds: int, catalog) -> list[RunSpec]:
    model, batch = SETS[dataset]
    losses = [n for n in catalog.losses.names() if isinstance(catalog.losses.get(n), AdversarialLoss)]
    return [
        RunSpec(
            loss=loss,
            model=model,
            dataset=dataset,
            seed=seed,
            steps=steps,
            batch_size=batch,
            log_every=25,
            eval_every=steps + 1,
            eval_samples=200,
            final_samples=200,
            device="cpu",
            preset="benchmark",
        )
        for loss in losses
        for seed in range(seeds)
    ]


def step_seconds(dataset: str, members: int, catalog, steps: int = 50) -> tuple[float, float]:
    """Seconds per member of one critic step and of one generator step of the stacked networks alone: ``members``
    of the set's model trained as one ``Stack`` with one batched non-saturating loss, no per-member Python, no
    penalty, on one thread. No stacked engine trains these networks faster on this machine."""
    import torch.nn.functional as F

    from lossbench.training.stacked_layers import Stack

    model_name, batch = SETS[dataset]
    spec = catalog.datasets.get(dataset).spec
    models = [catalog.models.get(model_name).build(spec) for _ in range(members)]
    g = Stack([m.generator for m in models], "adam", [2e-4] * members, [(0.5, 0.999)] * members, None)
    d = Stack([m.discriminator for m in models], "adam", [2e-4] * members, [(0.5, 0.999)] * members, None)
    real, latent = torch.randn(members, batch, *spec.shape), models[0].latent_dim
    critic = generator = 0.0
    with seeding.pinned_threads(1):
        for step in range(steps + 5):  # the first 5 warm up
            started = time.perf_counter()
            with torch.no_grad():
                fake = g(torch.randn(members, batch, latent))
            d.zero_grad()
            (F.softplus(-d(real)).mean(1) + F.softplus(d(fake)).mean(1)).sum().backward()
            d.optimizer.step()
            middle = time.perf_counter()
            g.zero_grad()
            F.softplus(-d.frozen(g(torch.randn(members, batch, latent)))).mean(1).sum().backward()
            g.optimizer.step()
            if step >= 5:
                critic, generator = critic + middle - started, generator + time.perf_counter() - middle
    return critic / steps / members, generator / steps / members


def arithmetic_bound(specs, groups, catalog, sequential_seconds: float) -> float:
    """The training-time ratio no stacked engine can pass here: the sequential engine's training seconds over the
    stacked networks' own (``step_seconds`` at the largest group's size, each run's critic schedule)."""
    critic, generator = step_seconds(specs[0].dataset, max(len(g) for g in groups), catalog)
    ideal = 0.0
    for spec in specs:
        recipe = catalog.losses.get(spec.loss).recipe
        ideal += sum(recipe.critic_steps(t) for t in range(1, spec.steps + 1)) * critic + spec.steps * generator
    return sequential_seconds / ideal


def train(specs, env, workers: int, groups) -> tuple[dict, float, float]:
    """(results by run id, wall seconds, training seconds per worker)."""
    started = time.perf_counter()
    if workers > 1:
        results = list(run_processes(specs, PluginConfig(), workers, groups=groups))
    else:
        results = list(run_serial(specs, env, groups=groups))
    wall = time.perf_counter() - started
    return {r.run_id: r for r in results}, wall, sum(r.train_seconds for r in results) / workers


def per_loss(dataset: str, steps: int, seeds: int, catalog) -> None:
    """Each loss's seeds, sequential then stacked as one group, on one thread (``--per-loss``)."""
    from lossbench.training.stacked import train_group
    from lossbench.training.train import run_safely

    specs = specs_for(dataset, steps, seeds, catalog)
    rows = []
    with seeding.pinned_threads(1):
        run_safely(specs[0], catalog)  # warm up both engines, untimed
        train_group(specs[:seeds], catalog)
        for loss in dict.fromkeys(spec.loss for spec in specs):
            mine = [spec for spec in specs if spec.loss == loss]
            sequential = sum(run_safely(spec, catalog).train_seconds for spec in mine)
            stacked = sum(r.train_seconds for r in train_group(mine, catalog))
            recipe = catalog.losses.get(loss).recipe
            critic = sum(recipe.critic_steps(t) for t in range(1, steps + 1)) / steps
            rows.append((loss, critic, sequential, stacked))
    total = sum(row[2] for row in rows)
    print(f"{dataset} · {SETS[dataset][0]}, {seeds} seeds x {steps} steps, one thread")
    print(f"{'loss':<16}{'critic/G step':>14}{'share of seq time':>19}{'seq s':>8}{'stacked s':>11}{'ratio':>7}")
    for loss, critic, sequential, stacked in sorted(rows, key=lambda row: -row[2]):
        print(
            f"{loss:<16}{critic:>14.1f}{sequential / total:>18.0%}{sequential:>8.1f}{stacked:>11.1f}"
            f"{sequential / stacked:>6.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--group-size", type=int, default=None)
    parser.add_argument("--only", choices=sorted(SETS), default=None)
    parser.add_argument("--per-loss", action="store_true", help="each loss's group alone, on one thread")
    args = parser.parse_args()
    env = load_environment()
    if args.per_loss:
        for dataset in [args.only] if args.only else list(SETS):
            per_loss(dataset, args.steps, args.seeds, env.catalog)
        return
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"{args.workers} workers x {seeding.run_threads()} thread(s) on both sides"
    )
    print(
        f"{'set':<16}{'runs':>5}{'groups':>7}{'seq run-steps/s':>17}{'stacked':>9}{'ratio':>7}"
        f"{'train-time ratio':>18}{'bound':>7}{'max |metric gap|':>18}"
    )
    for dataset in [args.only] if args.only else list(SETS):
        specs = specs_for(dataset, args.steps, args.seeds, env.catalog)
        groups = plan_groups(specs, env.catalog, args.group_size, args.workers)
        seq_wall = seq_train = stacked_wall = stacked_train = 0.0
        gap, worst = 0.0, "-"
        for _ in range(args.rounds):
            sequential, wall, trained = train(specs, env, args.workers, None)
            seq_wall, seq_train = seq_wall + wall, seq_train + trained
            stacked, wall, trained = train(specs, env, args.workers, groups)
            stacked_wall, stacked_train = stacked_wall + wall, stacked_train + trained
            for run_id, a in stacked.items():
                b = sequential[run_id]
                for key in a.metrics.keys() & b.metrics.keys():
                    difference = abs(a.metrics[key] - b.metrics[key])
                    if difference > gap:  # NaN (undefined on both sides) never counts
                        gap, worst = difference, f"{a.spec.loss} seed {a.spec.seed}: {key}"
        run_steps = len(specs) * args.steps * args.rounds
        bound = arithmetic_bound(specs, groups, env.catalog, seq_train * args.workers / args.rounds)
        label = f"{dataset} · {SETS[dataset][0]}"
        print(
            f"{label:<16}{len(specs):>5}{len(groups):>7}{run_steps / seq_wall:>17.0f}{run_steps / stacked_wall:>9.0f}"
            f"{seq_wall / stacked_wall:>6.2f}x{seq_train / stacked_train:>17.2f}x{bound:>6.2f}x{gap:>18.2g}  ({worst})",
            flush=True,
        )
        print(f"  groups: {sorted((len(g) for g in groups), reverse=True)}", file=sys.stderr)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"({time.perf_counter() - started:.0f} s)")
