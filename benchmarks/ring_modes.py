"""Mode collapse on the VEEGAN/PacGAN mixtures: every GAN loss on ring8 and grid25, quick preset, 3 seeds.

Prints modes covered and the high-quality share per loss (mean ± std over seeds, and each seed), to compare with
the literature: VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018) report a plain GAN at 1 to 6.3 of 8
ring modes and 3.3 to 17.3 of 25 grid modes (after far longer training than the quick preset).

Runs go through the ordinary driver into ``--results`` (resumable: a store that already holds these runs, such as
the default grid's, is reused without training).

    python benchmarks/ring_modes.py [--results results] [--preset quick] [--workers auto]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lossbench.executors.common import resolve_workers
from lossbench.jobs.driver import GridOptions, run_grid
from lossbench.plugin.loader import PluginConfig, load_environment
from lossbench.results.store import Store

DATASETS = ("ring8", "grid25")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--workers", default="auto")
    args = parser.parse_args()

    config = PluginConfig()
    env = load_environment(config)
    gan_losses = [name for name in env.catalog.losses.names() if env.catalog.losses.get(name).family == "gan"]
    options = GridOptions(
        losses=gan_losses,
        models=("mlp",),
        datasets=DATASETS,
        preset=args.preset,
        device="cpu",
        workers=resolve_workers(args.workers, "cpu"),
        results=args.results,
    )
    outcome = run_grid(env, config, options)
    wanted = {spec.run_id for spec in outcome.plan.specs}
    with Store.open(args.results) as store:
        runs = store.runs_wide()
    runs = runs[runs["run_id"].isin(wanted)]
    print(
        f"{len(runs)} runs ({len(outcome.trained)} trained now, {outcome.resumed} from the store), "
        f"preset {args.preset}, losses: {', '.join(gan_losses)}"
    )
    for dataset in DATASETS:
        n_modes = env.catalog.datasets.get(dataset).spec.n_modes
        print(f"\n{dataset} ({n_modes} modes)   modes covered: mean ± std [per seed]   high-quality share")
        table = runs[runs["dataset"] == dataset].sort_values(["loss", "seed"])
        for loss, group in table.groupby("loss"):
            covered, share = group["modes_covered"], group["modes_high_quality"]
            statuses = "" if (group["status"] == "ok").all() else f"  statuses: {', '.join(group['status'])}"
            print(
                f"  {loss:<14} {covered.mean():5.2f} ± {covered.std(ddof=1):4.2f} "
                f"[{', '.join(f'{v:g}' for v in covered)}]   {share.mean():.3f}{statuses}"
            )


if __name__ == "__main__":
    main()
