"""Harness overhead: lossbench's training engine vs a bare hand-written PyTorch loop, same model, loss and steps.

Both train the `mlp` GAN on `ring8` with the non-saturating loss (batch 128, Adam 2e-4), in this process,
alternating, several rounds; the engine's time is its training time (``RunResult.train_seconds``, which excludes the
final evaluation; its periodic light evaluations are switched off by ``eval_every`` > steps, its history is logged on
the quick preset's schedule). Prints steps/s of each (median over rounds) and the ratio; target >= 0.95.

    python benchmarks/overhead.py [--steps 2000] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from lossbench.plan.grid import PRESETS, RunSpec
from lossbench.plugin.loader import load_environment
from lossbench.training.train import load_data, train_run


def bare_loop(catalog, steps: int, batch: int) -> float:
    """The loop a researcher would write by hand; returns steps/s."""
    dataset = catalog.datasets.get("ring8")
    x = load_data(dataset).x
    torch.manual_seed(0)
    model = catalog.models.get("mlp").build(dataset.spec)
    G, D = model.generator, model.discriminator
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    started = time.perf_counter()
    order, position = torch.randperm(len(x)), 0
    for _ in range(steps):
        if position + batch > len(x):
            order, position = torch.randperm(len(x)), 0
        real = x[order[position : position + batch]]
        position += batch
        z = torch.randn(batch, model.latent_dim)
        with torch.no_grad():
            fake = G(z)
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-D(G(torch.randn(batch, model.latent_dim)))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    return steps / (time.perf_counter() - started)


def engine(catalog, steps: int, batch: int) -> float:
    quick = PRESETS["quick"]
    spec = RunSpec(
        "nonsaturating",
        "mlp",
        "ring8",
        seed=0,
        steps=steps,
        batch_size=batch,
        log_every=quick.log_every,
        eval_every=steps + 1,
        eval_samples=quick.eval_samples,
        final_samples=500,
        device="cpu",
    )
    result = train_run(spec, catalog)
    assert result.status == "ok", result.reason
    return steps / result.train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    catalog = load_environment().catalog
    engine(catalog, 50, args.batch), bare_loop(catalog, 50, args.batch)  # warm-up (data, imports, allocators)
    bare, ours = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop(catalog, args.steps, args.batch))
        ours.append(engine(catalog, args.steps, args.batch))
    bare_rate, our_rate = statistics.median(bare), statistics.median(ours)
    print(f"bare PyTorch loop: {bare_rate:8.1f} steps/s  (rounds: {', '.join(f'{r:.0f}' for r in bare)})")
    print(f"lossbench engine:  {our_rate:8.1f} steps/s  (rounds: {', '.join(f'{r:.0f}' for r in ours)})")
    print(
        f"ratio lossbench / bare = {our_rate / bare_rate:.3f}  (target >= 0.95; {args.threads} thread(s), "
        f"{args.steps} steps, batch {args.batch})"
    )


if __name__ == "__main__":
    main()
