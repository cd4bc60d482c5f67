"""Multi-objective early stopping, by simulation over recorded learning curves (issue #24): how
fast MO-ASHA finds the front of reconstruction error against latent size, against the simpler
alternatives, over many seeds.

    python bench/simulate_mo.py --seeds 30 --workers 4 \\
        --json bench/results/mo_latent_w4.json --figure docs/figures/mo_latent_w4.png

The curves are bench/record_curves.py's over the autoencoder's ``latent`` space
(``bench/curves/ae_latent_curves.parquet``: latent_dim in {2, ..., 64} searched with the
optimiser, lr and weight decay). Each method is the sweep's own searcher and scheduler, built
from its flags by bench/simulate.py's ``ours`` (one code path with the sweep), run by
bench/simulate.py's simulator with ``--workers`` workers until the sweep has spent
``--budget-trials`` x max-epochs trial-epochs. Every method proposes with the same
multi-objective TPE (``--objectives val_mse:min,latent_dim:min``); they differ in what stops
trials:

  mo-asha       --scheduler mo-asha: non-dominated sorting at each rung (our MO-ASHA)
  asha-first    --scheduler asha: ASHA on val_mse alone
  no-stopping   every trial runs all its epochs (--grace-period = max-epochs)
  mo-asha-grace3, mo-asha-rf2
                MO-ASHA with its first rung at epoch 3, or keeping half at each rung

The measure is the hypervolume of the front of the trials that ran all their epochs (as
best.json's front), in (val_mse, log2 latent_dim), both minimised, up to a reference point,
divided by the hypervolume of the front of every recorded configuration (1: the best front the
curves hold). Two reference points: val_mse the worst recorded final value (every trial
counts) or the median one (only what beats a typical configuration counts: the part of the front
a user looks at), latent log2 64 + 1. Its target is no-stopping's
median hypervolume at the end of the budget; per method: the trial-epochs it takes to reach it
(lower median over seeds, a seed that never reaches it counting as infinite; bootstrap 95%
interval; as a fraction of the budget), and the hypervolume
at equal trial-epochs (interquartile mean over seeds with a bootstrap interval).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import simulate as sim  # noqa: E402

CURVES = REPO / "bench" / "curves" / "ae_latent_curves.parquet"
SPACE = "latent"
OBJECTIVES = "--objectives=val_mse:min,latent_dim:min"
METHODS = {  # each: the sweep's flags beside the simulator's
    "mo-asha": (OBJECTIVES, "--scheduler=mo-asha"),
    "asha-first": (OBJECTIVES, "--scheduler=asha"),
    "no-stopping": (OBJECTIVES, "--scheduler=asha", "--grace-period={max_epochs}"),
    # MO-ASHA judging later: the first rung at epoch 3, or keeping half at each rung
    "mo-asha-grace3": (OBJECTIVES, "--scheduler=mo-asha", "--grace-period=3"),
    "mo-asha-rf2": (OBJECTIVES, "--scheduler=mo-asha", "--reduction-factor=2"),
}


def make(name: str, max_epochs: int):
    """The method ``name`` as bench/simulate.py's ``simulate`` builds one: the sweep's own
    searcher and scheduler from ``METHODS[name]``'s flags."""
    extra = tuple(f.format(max_epochs=max_epochs) for f in METHODS[name])
    return lambda *a: sim.ours(*a, extra=extra)


def run_one(
    name: str, curves, workers: int, seed: int, budget: int, args, search_time: bool = True
) -> sim.Run:
    """One simulated sweep of ``name`` until it has spent ``budget`` trial-epochs (the
    searcher's measured compute on the clock unless ``search_time`` is False: then a seed fixes
    the whole run)."""
    return sim.simulate(
        name,
        curves,
        SPACE,
        workers,
        seed,
        math.inf,
        args,
        search_time=search_time,
        epoch_budget=budget,
        make=make(name, curves.max_epochs),
    )


def load_curves(path: Path = CURVES) -> sim.Curves:
    from sweeps import ae_sweep

    table = pd.read_parquet(path)
    return sim.Curves(table[table["space"] == SPACE], ae_sweep.SPACES[SPACE])


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """The area that ``points`` (both coordinates minimised) dominate inside ``ref``."""
    inside = sorted((x, y) for x, y in points if x < ref[0] and y < ref[1])
    area, best_y = 0.0, ref[1]
    for x, y in inside:  # left to right: each point below the staircase adds a band
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def objective_point(val_mse: float, latent_dim: float) -> tuple[float, float]:
    return float(val_mse), math.log2(float(latent_dim))


def hv_curve(run: sim.Run, ref, whole: float, budget: int) -> np.ndarray:
    """The normalised hypervolume after each trial-epoch 1..``budget`` of ``run``: of the trials
    that had run all their epochs by then."""
    out = np.zeros(budget)
    points: list[tuple[float, float]] = []
    hv = 0.0
    for k, row in enumerate(run.rows[:budget]):
        if row["status"] == "TERMINATED" and not row["stopped_early"]:
            points.append(objective_point(row["val_mse"], row["config/latent_dim"]))
            hv = hypervolume(points, ref) / whole
        out[k] = hv
    out[len(run.rows[:budget]) :] = hv
    return out


def epochs_to(curve: np.ndarray, target: float) -> float:
    reached = np.nonzero(curve >= target - 1e-12)[0]
    return float(reached[0] + 1) if len(reached) else math.inf


def lower_median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The median, the lower middle value for an even count: defined when some are inf (a seed
    that never reached the target)."""
    return np.take(np.sort(x, axis=axis), (x.shape[axis] - 1) // 2, axis=axis)


def bootstrap_median(x: np.ndarray, reps: int = 2000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    medians = lower_median(rng.choice(x, size=(reps, len(x)), replace=True))
    return [float(np.quantile(medians, q, method="inverted_cdf")) for q in (0.025, 0.975)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="W: trials at once")
    parser.add_argument("--seeds", type=int, default=30, help="seeds per method")
    parser.add_argument(
        "--budget-trials", type=float, default=40, help="the budget: this many full trials"
    )
    parser.add_argument("--grace-period", type=int, default=1, help="minimum resource")
    parser.add_argument("--reduction-factor", type=float, default=3, help="ASHA's factor")
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="METHODS (all)"
    )
    parser.add_argument("--curves", type=Path, default=CURVES, help="the recorded curves")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--figure", type=Path, help="draw hypervolume against trial-epochs")
    args = parser.parse_args(argv)
    args.warm_start, args.costs = None, None

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = load_curves(args.curves)
    finals = [
        objective_point(v[-1], c["latent_dim"])
        for v, c in zip(curves.values, curves.configs, strict=True)
    ]
    worst_latent = math.log2(64) + 1
    references = {  # the reference point's val_mse: the worst recorded, or the median one
        "worst": (max(p[0] for p in finals), worst_latent),
        "median": (float(np.median([p[0] for p in finals])), worst_latent),
    }
    budget = int(args.budget_trials * curves.max_epochs)
    methods = list(dict.fromkeys(["no-stopping", *args.methods]))  # no-stopping: the target
    order = [(m, s) for s in range(args.seeds) for m in methods]
    np.random.default_rng(0).shuffle(order)  # methods interleaved in a random order
    runs: dict[str, list[sim.Run]] = {m: [] for m in methods}
    t0 = time.perf_counter()
    for name, seed in order:
        runs[name].append(run_one(name, curves, args.workers, seed, budget, args))
    summary: dict[str, Any] = {
        "space": SPACE,
        "workers": args.workers,
        "seeds": args.seeds,
        "budget_trial_epochs": budget,
        "max_epochs": curves.max_epochs,
        "configurations": len(curves.ids),
        "references": {
            name: score(runs, ref, hypervolume(finals, ref), budget)
            for name, ref in references.items()
        },
        "wall_s": round(time.perf_counter() - t0, 1),
        "command": "python bench/simulate_mo.py " + " ".join(argv or sys.argv[1:]),
    }
    for ref_name, scored in summary["references"].items():
        target = scored["target_hv"]
        print(f"reference point {ref_name}: {scored['reference_point']}")
        for name, m in scored["methods"].items():
            low, high = m["epochs_to_target_median_ci"]
            print(
                f"  {name:12s} epochs to no-stopping's final HV {target:.3f}: median "
                f"{m['epochs_to_target_median']:.0f} of {budget} "
                f"({m['fraction_of_budget_median']:.0%}; 95% CI {low:.0f}-{high:.0f}), reached "
                f"{m['reached_target']}/{args.seeds}; final HV median {m['hv_final_median']:.3f}"
            )
        for k, row in (scored.get("mo_asha_vs_asha_first") or {}).items():
            print(
                f"  at {k} trial-epochs: HV IQM mo-asha {row['mo_asha_iqm']:.3f}, asha-first "
                f"{row['asha_first_iqm']:.3f}; mo-asha ahead in {row['mo_asha_ahead_in_seeds']}/"
                f"{args.seeds} seeds"
            )
    if args.json:
        args.json.write_text(json.dumps(summary) + "\n")
    if args.figure:
        draw(summary, args.figure)
    return summary


def score(runs: dict[str, list[sim.Run]], ref, whole: float, budget: int) -> dict[str, Any]:
    """Every method's hypervolume curves up to ``ref`` (normalised by ``whole``): the target (no
    stopping's median at the end), the epochs each seed takes to reach it, the IQM curve, and
    MO-ASHA against ASHA on the first objective at a quarter, half and all of the budget."""
    curves_of = {
        m: np.array([hv_curve(r, ref, whole, budget) for r in rs]) for m, rs in runs.items()
    }
    target = float(np.median(curves_of["no-stopping"][:, -1]))
    scored: dict[str, Any] = {
        "reference_point": list(ref),
        "hv_of_every_recorded_configuration": whole,
        "target_hv": target,
        "methods": {},
    }
    for name, hv in curves_of.items():
        to_target = np.array([epochs_to(c, target) for c in hv])
        iqm, low, high = sim.bootstrap_iqm(hv)
        scored["methods"][name] = {
            "epochs_to_target": to_target.tolist(),
            "epochs_to_target_median": float(lower_median(to_target)),
            "epochs_to_target_median_ci": bootstrap_median(to_target),
            "fraction_of_budget_median": float(lower_median(to_target)) / budget,
            "reached_target": int(np.isfinite(to_target).sum()),
            "hv_final_median": float(np.median(hv[:, -1])),
            "hv_iqm": iqm.tolist(),
            "hv_iqm_low": low.tolist(),
            "hv_iqm_high": high.tolist(),
        }
    if "asha-first" in curves_of and "mo-asha" in curves_of:
        mo, first = curves_of["mo-asha"], curves_of["asha-first"]
        scored["mo_asha_vs_asha_first"] = {
            str(k): {
                "mo_asha_iqm": float(sim.iqm(mo[:, k - 1])),
                "asha_first_iqm": float(sim.iqm(first[:, k - 1])),
                "mo_asha_ahead_in_seeds": int((mo[:, k - 1] > first[:, k - 1]).sum()),
            }
            for k in (budget // 4, budget // 2, budget)
        }
    return scored


def draw(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = summary["references"]
    fig, axes = plt.subplots(1, len(refs), figsize=(7 * len(refs), 5), squeeze=False)
    x = np.arange(1, summary["budget_trial_epochs"] + 1)
    for ax, (ref_name, scored) in zip(axes[0], refs.items(), strict=True):
        for name, m in scored["methods"].items():
            (line,) = ax.plot(x, m["hv_iqm"], label=name)
            ax.fill_between(x, m["hv_iqm_low"], m["hv_iqm_high"], color=line.get_color(), alpha=0.2)
            if math.isfinite(m["epochs_to_target_median"]):
                ax.axvline(m["epochs_to_target_median"], color=line.get_color(), ls=":", lw=1)
        ax.axhline(
            scored["target_hv"], color="0.4", ls="--", lw=1, label="no-stopping's final median"
        )
        val, latent = scored["reference_point"]
        ax.set_title(
            f"reference: val_mse {val:.3f} (the {ref_name} recorded), log2 latent {latent:g}"
        )
        ax.set_xlabel("trial-epochs spent")
        ax.set_ylabel("hypervolume (1: the front of every recorded configuration)")
        ax.legend()
    fig.suptitle(
        f"Front of val_mse against latent_dim, autoencoder 'latent' space, W={summary['workers']}, "
        f"{summary['seeds']} seeds: IQM with 95% CI; dotted, median epochs to the dashed line"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
