"""Figures of a whole sweep: Optuna's own plots of the study (optimization history, parallel
coordinates, parameter importances), every trial's learning curve with the epoch where ASHA
stopped it, and a run's training and validation curves.

Each function takes what it draws (a study, a results frame, a metric history) and returns a
matplotlib Figure; an input too thin to draw raises ``MissingInput`` with what would fix it.
"""

from __future__ import annotations

import warnings

import matplotlib
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from analysis.experiment import MissingInput
from analysis.plotting import Figure, plt

# The curves of one run, by model: (y-axis label, metric names) per panel.
PANELS = {
    "autoencoder": [("per-pixel MSE", ("train_mse", "val_mse"))],
    "classifier": [("NLL loss", ("train_loss", "val_loss")), ("accuracy", ("val_acc",))],
    "gan": [("BCE loss", ("d_loss", "g_loss")), ("FID-FM (lower is better)", ("fid",))],
}


# ---------------------------------------------------------------------------------------------
# Optuna's plots of the study


def _completed(study, at_least: int, figure: str):
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < at_least:
        raise MissingInput(
            f"the study has {len(done)} COMPLETE trial(s), {figure} needs {at_least}; "
            "run more trials (or let the sweep finish)"
        )
    return done


def _optuna_figure(plot, study, size: tuple[float, float], **kwargs) -> Figure:
    """Call one of ``optuna.visualization.matplotlib``'s plots without letting its style sheet
    (ggplot) leak into the other figures, and resize its figure."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", ExperimentalWarning)
        ax = plot(study, **kwargs)
        fig = ax.figure
        fig.set_size_inches(*size)
        fig.tight_layout()
    return fig


def optimization_history(study, metric: str) -> Figure:
    from optuna.visualization.matplotlib import plot_optimization_history

    n = len(_completed(study, 1, "the optimization history"))
    fig = _optuna_figure(plot_optimization_history, study, (9, 5.5), target_name=metric)
    ax = fig.axes[0]
    ax.set_title(f"Optimization history of {study.study_name} ({n} completed trials)")
    ax.set_xlabel("trial number")
    ax.set_ylabel(metric)
    return fig


def parallel_coordinate(study, metric: str) -> Figure:
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    done = _completed(study, 1, "the parallel-coordinate plot")
    if not any(t.params for t in done):
        raise MissingInput("the study's trials have no parameters; the sweep searched nothing")
    fig = _optuna_figure(plot_parallel_coordinate, study, (12, 6), target_name=metric)
    fig.axes[0].set_title(f"Parallel coordinates of {study.study_name}: {metric} per trial")
    return fig


def param_importances(study, metric: str) -> Figure:
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    done = _completed(study, 2, "parameter importances")
    n_params = len({name for t in done for name in t.params})
    try:
        fig = _optuna_figure(
            plot_param_importances,
            study,
            (9, max(4.0, 1.5 + 0.5 * n_params)),
            evaluator=FanovaImportanceEvaluator(seed=0),  # a fixed forest: the same bars each run
            target_name=metric,
        )
    except (ValueError, RuntimeError) as e:
        raise MissingInput(
            f"Optuna cannot rank the parameters ({e}); run more trials with varied parameters"
        ) from None
    ax = fig.axes[0]
    ax.set_title("", loc="left")  # Optuna's own title, which ours replaces
    ax.set_title(f"Hyperparameter importance for {metric} (fANOVA, {len(done)} trials)")
    ax.set_xlabel(f"importance for {metric}")
    ax.set_ylabel("hyperparameter")
    return fig


# ---------------------------------------------------------------------------------------------
# Learning curves from results.parquet

# How each trial's last reported epoch is marked.
END_MARKERS = {
    "stopped": dict(marker="x", color="tab:red", markersize=8, mew=2),
    "finished": dict(marker="o", color="0.3", markersize=4),
    "failed": dict(marker="s", color="tab:purple", markersize=6),
}
END_LABELS = {
    "stopped": "stopped early by ASHA",
    "finished": "ran all its epochs",
    "failed": "failed (error)",
}


def _x_column(frame: pd.DataFrame) -> str:
    return "epoch" if "epoch" in frame else "training_iteration"


def learning_curves(results: pd.DataFrame, metric: str, best_trial_id=None) -> Figure:
    """``metric`` per epoch of every trial; a red cross where ASHA stopped a trial early."""
    if metric not in results:
        raise MissingInput(f"results.parquet has no {metric!r} column; no trial reported it")
    x = _x_column(results)
    rows = results.dropna(subset=[x, metric])
    if rows.empty:
        raise MissingInput(f"results.parquet has no finite {metric}; no trial finished an epoch")
    fig, ax = plt.subplots(figsize=(10, 6))
    n_trials = n_stopped = n_failed = 0
    best_label = None
    for trial_id, trial in rows.groupby("trial_id", sort=False):
        trial = trial.sort_values(x)
        n_trials += 1
        stopped = bool(trial["stopped_early"].iloc[-1]) if "stopped_early" in trial else False
        failed = "status" in trial and trial["status"].iloc[-1] in ("ERROR", "DIVERGED")
        n_stopped += stopped
        n_failed += failed
        is_best = best_trial_id is not None and str(trial_id) == str(best_trial_id)
        ax.plot(
            trial[x],
            trial[metric],
            color="tab:orange" if is_best else "tab:blue",
            lw=2.5 if is_best else 1.0,
            alpha=1.0 if is_best else 0.5,
            zorder=3 if is_best else 2,
        )
        end = END_MARKERS["stopped" if stopped else "failed" if failed else "finished"]
        ax.plot(trial[x].iloc[-1], trial[metric].iloc[-1], ls="none", zorder=4, **end)
        if is_best:
            best_label = f"best trial ({trial_id})"
    values = rows[metric]
    if (values > 0).all() and values.max() / values.min() > 20:
        ax.set_yscale("log")
    handles = [Line2D([], [], color="tab:blue", alpha=0.5, label="a trial")]
    if best_label:
        handles.append(Line2D([], [], color="tab:orange", lw=2.5, label=best_label))
    handles += [
        Line2D([], [], ls="none", label=END_LABELS[name], **style)
        for name, style in END_MARKERS.items()
        if name != "failed" or n_failed
    ]
    ax.legend(handles=handles, loc="best")
    ax.set_xlabel(x.replace("_", " "))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    failed_note = f", {n_failed} failed" if n_failed else ""
    ax.set_title(
        f"{metric} per epoch of {n_trials} trials ({n_stopped} stopped early by ASHA{failed_note})"
    )
    ax.grid(alpha=0.3)
    return fig


def training_curves(history: pd.DataFrame, model: str, title: str) -> Figure:
    """Train and validation curves of one run (a trial's rows, or a checkpoint's history)."""
    x = _x_column(history)
    panels = [
        (label, [m for m in names if m in history and history[m].notna().any()])
        for label, names in PANELS.get(model, [])
    ]
    panels = [(label, names) for label, names in panels if names]
    if not panels:
        raise MissingInput(f"no {model} metrics in the run's history; it finished no epoch")
    history = history.sort_values(x)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False)
    for ax, (label, names) in zip(axes[0], panels, strict=True):
        for name in names:
            rows = history.dropna(subset=[name])
            ax.plot(rows[x], rows[name], marker="o", markersize=3, label=name)
        ax.set_xlabel(x.replace("_", " "))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig
