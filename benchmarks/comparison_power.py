"""Which comparison families can reach alpha = 0.05 with each preset's seeds: a table, computed, not measured.

With n paired seeds the exact signed-rank test's smallest two-sided p is 2 / 2^n; Holm multiplies the smallest
p by the family size m, so a difference can be significant only when m * 2 / 2^n < alpha (``tables.min_seeds``).

    python benchmarks/comparison_power.py
"""

from __future__ import annotations

from lossbench.plan.grid import PRESETS
from lossbench.results.tables import ALPHA, family_size, min_seeds


def main() -> None:
    presets = {name: preset.n_seeds for name, preset in PRESETS.items()}
    header = f"{'losses':>6}  {'family':<10} {'tests':>5} {'min seeds':>9}  " + "  ".join(
        f"{name}({n})" for name, n in presets.items()
    )
    print(f"smallest number of paired seeds at which a difference can reach alpha = {ALPHA}")
    print(header)
    for k in (3, 8, 10, 11, 12):
        for comparisons in ("reference", "all"):
            m = family_size(k, comparisons)
            needed = min_seeds(m)
            reach = "  ".join(
                f"{'yes' if n >= needed else 'no':>{len(name) + len(str(n)) + 2}}" for name, n in presets.items()
            )
            print(f"{k:>6}  {comparisons:<10} {m:>5} {needed:>9}  {reach}")


if __name__ == "__main__":
    main()
