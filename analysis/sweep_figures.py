"""Figures of a whole sweep: the study over all its trials, pruned ones included (optimization
history, parallel coordinates, the metric at each ASHA rung, parameter importances at a common
rung), every trial's learning curve with the epoch where ASHA stopped it, and a run's training
and validation curves.

Each function takes what it draws (a study, a results frame, a metric history) and returns a
matplotlib Figure; an input too thin to draw raises ``MissingInput`` with what would fix it.

Over ``MANY_TRIALS`` trials a line or a marker per trial is a smear, so the figures of every
trial change what they draw (docs/analysis.md, "Large sweeps"): the parallel coordinates and the
learning curves draw the best decile in colour over the rest in light grey, the rungs a density
(violin) per rung with small translucent points, the history smaller translucent markers, and
the importances are computed on a seeded sample of ``IMPORTANCE_SAMPLE`` trials.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from analysis.plotting import Figure, plt
from analysis.sweep_folder import MissingInput
from sweeps.folder import outcome
from sweeps.folder.outcome import FAILED
from trainables.kinds import kinds

# ---------------------------------------------------------------------------------------------
# The study, over all its trials
#
# With ASHA most trials end PRUNED, and Optuna's own plots draw only COMPLETE ones: a sweep of 20
# trials showed 4. These figures draw every trial that reported an epoch, each at the last epoch
# it reached (pruned ones marked), from ``analysis.sweep_folder.trial_table``; importances compare all trials at one
# epoch every trial reached (the first ASHA rung), as ASHA itself compares them.

# Above this many trials, figures draw the best ``BEST_FRACTION`` in colour over the rest in grey
# (or a density) instead of every trial alike.
MANY_TRIALS = 500
BEST_FRACTION = 0.1
# Optuna's fANOVA walks each of its 64 trees once per split value, in Python: its time grows
# as the square of the trials (on 2 cores: 2.8 s for 250 trials, 6.6 s for 500, about 25 s for
# 1,000; 10,000 did not finish in 4 minutes). Over this many, importances use a seeded sample of
# this many.
IMPORTANCE_SAMPLE = 500

STATE_STYLE = {
    "COMPLETE": dict(marker="o", s=36, label="ran all its epochs"),
    "PRUNED": dict(marker="x", s=36, label="stopped early by ASHA (at its last epoch)"),
}


def _params(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("param/")]


def _norm(low: float, high: float) -> matplotlib.colors.Normalize:
    """A colour scale from ``low`` to ``high``; equal bounds (one trial, or all alike) are widened,
    or matplotlib's colour bar warns about identical low and high limits."""
    low, high = float(low), float(high)
    if high <= low:
        pad = abs(low) * 1e-3 or 0.5
        low, high = low - pad, high + pad
    return matplotlib.colors.Normalize(low, high)


def _cmap(mode: str):
    """viridis with the best trial dark (never white), whichever way the metric points."""
    return plt.get_cmap("viridis" if mode == "min" else "viridis_r")


def many_trials(n: int) -> bool:
    """Whether ``n`` trials get the large-sweep figures (best decile over grey, densities)."""
    return n > MANY_TRIALS


def best_mask(values: pd.Series, mode: str, fraction: float = BEST_FRACTION) -> np.ndarray:
    """True for the best ``fraction`` of ``values`` (at least one), whichever way ``mode``
    points; ties broken by position."""
    count = max(1, int(np.ceil(fraction * len(values))))
    ranks = values.rank(method="first", ascending=mode == "min").to_numpy()
    return ranks <= count


def _state_counts(table: pd.DataFrame) -> str:
    n_complete = int((table["state"] == "COMPLETE").sum())
    n_pruned = int((table["state"] == "PRUNED").sum())
    return f"{len(table)} trials: {n_complete} ran all epochs, {n_pruned} stopped early"


def optimization_history(table: pd.DataFrame, metric: str, mode: str, name: str) -> Figure:
    """Each trial's metric at its last epoch, by trial number, pruned trials marked, and the best
    so far among the trials that ran all their epochs."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    norm = _norm(table["epoch"].min(), table["epoch"].max())
    many = many_trials(len(table))
    for state, style in STATE_STYLE.items():
        rows = table[table["state"] == state]
        if many:  # thousands of points: small and translucent, so density shows
            style = {**style, "s": 7, "alpha": 0.5, "linewidths": 0.7}
        if not rows.empty:
            ax.scatter(
                rows["number"],
                rows["value"],
                c=rows["epoch"],
                cmap="plasma",
                norm=norm,
                zorder=3,
                **style,
            )
    complete = table[table["state"] == "COMPLETE"]
    if not complete.empty:
        best = complete["value"].cummin() if mode == "min" else complete["value"].cummax()
        ax.step(complete["number"], best, where="post", color="tab:red", label="best so far")
    fig.colorbar(ax.collections[0], ax=ax, label="last epoch reached")
    ax.set_title(f"Optimization history of {name} ({_state_counts(table)})")
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"{metric} at the trial's last epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)  # below: hides no trial
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _axis_values(column: pd.Series) -> tuple[pd.Series, list[float], list[str]]:
    """A hyperparameter's values on a 0..1 axis (categories evenly spaced; a positive range over a
    decade or more on a log scale), with tick positions and labels."""
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        categories = sorted(column.astype(str).unique())
        position = {c: i / max(len(categories) - 1, 1) for i, c in enumerate(categories)}
        return column.astype(str).map(position), list(position.values()), categories
    values = column.astype(float)
    log = (values > 0).all() and values.max() / values.min() >= 10
    scaled = np.log10(values) if log else values
    low, high = float(scaled.min()), float(scaled.max())
    span = high - low or 1.0  # one value only: a flat axis, not a zero range
    ticks = np.linspace(low, high, 3) if high > low else np.array([low])
    labels = [f"{10**t:.2g}" if log else f"{t:.3g}" for t in ticks]
    return (scaled - low) / span, list((ticks - low) / span), labels


def _few_values(column: pd.Series) -> bool:
    """A categorical axis, or a numeric one with few values (a choice of batch sizes)."""
    categorical = not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    return categorical or column.nunique() <= 10


def parallel_coordinate(table: pd.DataFrame, metric: str, mode: str, name: str) -> Figure:
    """Every trial as a line through its hyperparameters and its metric at its last epoch,
    coloured by that metric (best dark); pruned trials dashed. Over ``MANY_TRIALS`` trials:
    the best decile coloured over the rest in light grey (``_parallel_many``)."""
    params = _params(table)
    if not params:
        raise MissingInput("the study's trials have no parameters; the sweep searched nothing")
    axes = [*params, "value"]
    fig, ax = plt.subplots(figsize=(12, 6))
    columns = {}
    for i, column in enumerate(axes):
        y, ticks, labels = _axis_values(table[column])
        columns[column] = y
        for tick, label in zip(ticks, labels, strict=True):
            ax.text(i, tick, f" {label}", fontsize=8, va="center")
    if many_trials(len(table)):
        norm, cmap, title = _parallel_many(ax, table, axes, columns, metric, mode)
        bar_label = f"{metric} (the best decile)"
    else:
        norm, cmap, title = _parallel_few(ax, table, axes, columns, mode)
        bar_label = metric
    for i in range(len(axes)):
        ax.axvline(i, color="0.4", lw=0.8)
    ax.set_xticks(range(len(axes)))
    ax.set_xticklabels([c.removeprefix("param/") for c in params] + [metric])
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=bar_label)
    ax.set_title(f"Parallel coordinates of {name}: {metric} per trial{title}")
    fig.tight_layout()
    return fig


def _parallel_few(ax, table, axes, columns, mode):
    """A line per trial, coloured by its metric, the best on top; pruned trials dashed."""
    norm = _norm(table["value"].min(), table["value"].max())
    cmap = _cmap(mode)
    order = table["value"].argsort()[:: -1 if mode == "min" else 1]  # best drawn last, on top
    for row in order:
        pruned = table["state"].iloc[row] == "PRUNED"
        ax.plot(
            range(len(axes)),
            [columns[c].iloc[row] for c in axes],
            color=cmap(norm(table["value"].iloc[row])),
            ls="--" if pruned else "-",
            lw=1.0 if pruned else 1.8,
            alpha=0.8,
        )
    ax.legend(
        handles=[
            Line2D([], [], color="0.3", lw=1.8, label="ran all its epochs"),
            Line2D([], [], color="0.3", lw=1.0, ls="--", label="stopped early (its last epoch)"),
        ],
        loc="upper left",
        bbox_to_anchor=(0, -0.08),
        ncol=2,
    )
    return norm, cmap, f" ({_state_counts(table)})"


def _parallel_many(ax, table, axes, columns, metric, mode):
    """Thousands of trials: the rest as faint grey lines (their density shows where the sweep
    searched), the best decile by the metric over them, coloured by it (the best dark, on top).
    Axes with few values (choices) are spread a little, seeded, so their lines fan out."""
    rng = np.random.default_rng(0)
    ys = np.column_stack([columns[c].to_numpy(dtype=float) for c in axes])
    for j, column in enumerate(axes[:-1]):
        if _few_values(table[column]):
            ys[:, j] += rng.uniform(-0.025, 0.025, len(ys))
    xs = np.broadcast_to(np.arange(len(axes), dtype=float), ys.shape)
    lines = np.stack([xs, ys], axis=-1)  # (trials, axes, 2): one polyline per trial
    best = best_mask(table["value"], mode)
    ax.add_collection(LineCollection(lines[~best], colors="0.6", linewidths=0.4, alpha=0.12))
    values = table["value"].to_numpy(dtype=float)[best]
    order = np.argsort(values)[:: -1 if mode == "min" else 1]  # the best drawn last, on top
    norm = _norm(values.min(), values.max())
    cmap = _cmap(mode)
    ax.add_collection(
        LineCollection(
            lines[best][order], colors=cmap(norm(values[order])), linewidths=0.9, alpha=0.7
        )
    )
    n_best, n_rest = int(best.sum()), int((~best).sum())
    ax.legend(
        handles=[
            Line2D([], [], color=cmap(0.5), lw=1.5, label=f"the best {n_best} by {metric}"),
            Line2D([], [], color="0.6", lw=1.5, label=f"the other {n_rest} trials"),
        ],
        loc="upper left",
        bbox_to_anchor=(0, -0.08),
        ncol=2,
    )
    return norm, cmap, f", the best decile in colour ({_state_counts(table)})"


def at_epoch(table: pd.DataFrame, epoch: int) -> pd.DataFrame:
    """The trials that reached ``epoch``, with ``value`` their metric there."""
    rows = table[table["curve"].map(lambda c: epoch in c)].copy()
    rows["value"] = rows["curve"].map(lambda c: float(c[epoch]))
    return rows


def rungs(grace_period: int, reduction_factor: float, max_epochs: int) -> list[int]:
    """ASHA's rungs over epochs (grace * rf^k below max_epochs), then max_epochs."""
    out, k = [], 0
    while (epoch := int(round(grace_period * reduction_factor**k))) < max_epochs:
        out.append(epoch)
        k += 1
    return [*out, max_epochs]


def rung_view(table: pd.DataFrame, metric: str, mode: str, milestones: list[int]) -> Figure:
    """At each ASHA rung, the metric of every trial that reached it (the comparison ASHA makes):
    filled if the trial went on past the rung (or ran all its epochs), open if it stopped there.
    Over ``MANY_TRIALS`` trials: side by side, a violin of those that went on and of those that
    stopped, under small translucent points, with their counts (``_rung_many``)."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    many = many_trials(len(table))
    labels, shown = [], 0
    for i, epoch in enumerate(milestones):
        rows = at_epoch(table, epoch)
        labels.append(f"epoch {epoch}")
        if rows.empty:
            continue
        shown += 1
        went_on = (rows["epoch"] > epoch) | (epoch == milestones[-1])  # the last: all passed
        if many:
            last = epoch == milestones[-1]
            labels[-1] += _rung_many(ax, i, rows["value"], went_on.to_numpy(), last)
            continue
        jitter = np.linspace(-0.15, 0.15, len(rows)) if len(rows) > 1 else np.zeros(1)
        ax.scatter(i + jitter[went_on.to_numpy()], rows["value"][went_on], color="tab:blue", s=30)
        ax.scatter(
            i + jitter[~went_on.to_numpy()],
            rows["value"][~went_on],
            facecolors="none",
            edgecolors="tab:red",
            s=30,
        )
    if not shown:
        raise MissingInput("no trial reached the first ASHA rung; let the sweep run longer")
    ax.set_xticks(range(len(milestones)))
    ax.set_xticklabels(labels)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} at each ASHA rung, every trial that reached it")
    ax.legend(
        handles=[
            Line2D([], [], ls="none", marker="o", color="tab:blue", label="went on (or finished)"),
            Line2D([], [], ls="none", marker="o", mfc="none", mec="tab:red", label="stopped there")
            if not many
            else Line2D([], [], ls="none", marker="o", color="tab:red", label="stopped there"),
        ],
        loc="upper right" if many else "best",  # "best" would weigh thousands of points
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _rung_many(ax, i: int, values: pd.Series, went_on: np.ndarray, last: bool) -> str:
    """One rung of thousands of trials at x=``i``: a violin (the density) and small seeded
    jittered points of the trials that went on (blue, left) and that stopped there (red, right);
    returns the counts for the rung's tick label."""
    rng = np.random.default_rng(i)
    groups = [(went_on, "tab:blue"), (~went_on, "tab:red")]
    groups = [(values.to_numpy(dtype=float)[mask], colour) for mask, colour in groups if mask.any()]
    offsets = [0.0] if len(groups) == 1 else [-0.2, 0.2]
    for offset, (group, colour) in zip(offsets, groups, strict=True):
        if len(group) > 1 and group.max() > group.min():
            parts = ax.violinplot(group, positions=[i + offset], widths=0.36, showextrema=False)
            for body in parts["bodies"]:
                body.set(facecolor=colour, edgecolor=colour, alpha=0.3)
        jitter = rng.uniform(-0.1, 0.1, len(group))
        ax.scatter(i + offset + jitter, group, color=colour, s=3, alpha=0.3, linewidths=0)
    n_on, n_stopped = int(went_on.sum()), int((~went_on).sum())
    return f"\n{n_on} {'finished' if last else 'went on'}" + (
        f"\n{n_stopped} stopped" if n_stopped else ""
    )


def param_importances(study, table: pd.DataFrame, metric: str, epoch: int) -> Figure:
    """fANOVA importance (fixed seed) of each hyperparameter for ``metric`` at ``epoch``, over
    every trial that reached that epoch (with ASHA: the first rung, which all trials reach), or
    a seeded sample of ``IMPORTANCE_SAMPLE`` of them when there are more."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    rows = at_epoch(table, epoch)
    if len(rows) < 2:
        raise MissingInput(
            f"{len(rows)} trial(s) reached epoch {epoch}; importances need 2 or more"
        )
    reached = len(rows)
    if reached > IMPORTANCE_SAMPLE:
        rows = rows.sample(IMPORTANCE_SAMPLE, random_state=0).sort_values("number")
    distributions = table.attrs.get("distributions")
    if distributions is None:
        distributions = {}
        for t in study.get_trials(deepcopy=False):
            distributions.update(t.distributions)
    at_rung = optuna.create_study(direction=study.directions[0])  # --objectives: the first
    names = _params(table)
    trials = []
    for row in rows[[*names, "value"]].to_dict("records"):
        params = {c.removeprefix("param/"): row[c] for c in names if pd.notna(row[c])}
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: distributions[k] for k in params},
                value=row["value"],
            )
        )
    at_rung.add_trials(trials)
    try:
        importances = get_param_importances(at_rung, evaluator=FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError) as e:
        raise MissingInput(
            f"Optuna cannot rank the parameters ({e}); run more trials with varied parameters"
        ) from None
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(9, max(4.0, 1.5 + 0.5 * len(names))))
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    for i, n in enumerate(names):
        ax.text(importances[n], i, f" {importances[n]:.2f}", va="center")
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(f"importance for {metric} at epoch {epoch}")
    ax.set_ylabel("hyperparameter")
    over = f"{len(rows)} trials"
    if len(rows) < reached:
        over = f"a seeded sample of {len(rows)} of the {reached} trials"
    ax.set_title(f"Hyperparameter importance (fANOVA) at epoch {epoch}, {over}")
    fig.tight_layout()
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


def learning_curves(
    results: pd.DataFrame, metric: str, best_trial_id=None, mode: str = "min"
) -> Figure:
    """``metric`` per epoch of every trial; a red cross where ASHA stopped a trial early. Over
    ``MANY_TRIALS`` trials: the best decile over the rest in grey, and how many trials ended at
    each epoch below (``_learning_curves_many``)."""
    if metric not in results:
        raise MissingInput(f"results.parquet has no {metric!r} column; no trial reported it")
    x = _x_column(results)
    rows = results.dropna(subset=[x, metric])
    if rows.empty:
        raise MissingInput(f"results.parquet has no finite {metric}; no trial finished an epoch")
    if many_trials(rows["trial_id"].nunique()):
        return _learning_curves_many(rows, x, metric, best_trial_id, mode)
    fig, ax = plt.subplots(figsize=(10, 6))
    n_trials = n_stopped = n_failed = 0
    best_label = None
    for trial_id, trial in rows.groupby("trial_id", sort=False):
        trial = trial.sort_values(x)
        n_trials += 1
        stopped = bool(trial["stopped_early"].iloc[-1]) if "stopped_early" in trial else False
        failed = "status" in trial and trial["status"].iloc[-1] in FAILED
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


def _learning_curves_many(
    rows: pd.DataFrame, x: str, metric: str, best_trial_id, mode: str
) -> Figure:
    """Thousands of trials: above, every trial's curve as a faint grey line with a grey dot
    where it ended, the best decile by ``metric`` at its last epoch over them in blue with the
    usual end markers, the best trial in orange; below, how many trials ended at each epoch,
    stopped early, run to the end or failed."""
    rows = rows.sort_values(["trial_id", x], kind="stable")
    ids = rows["trial_id"].astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)] - 1
    points = np.column_stack([rows[x].to_numpy(dtype=float), rows[metric].to_numpy(dtype=float)])
    curves = np.split(points, starts[1:])
    last = rows.iloc[ends]
    stopped = (
        last["stopped_early"].fillna(False).astype(bool).to_numpy()
        if "stopped_early" in last
        else np.zeros(len(last), dtype=bool)
    )
    failed = (
        last["status"].isin(list(FAILED)).to_numpy()
        if "status" in last
        else np.zeros(len(last), bool)
    )
    ending = np.where(stopped, "stopped", np.where(failed, "failed", "finished"))
    best = best_mask(last[metric].reset_index(drop=True), mode)
    is_best_trial = ids[ends] == str(best_trial_id)  # none when best_trial_id is None

    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    rest = ~best
    ax.add_collection(
        LineCollection(
            [c for c, r in zip(curves, rest, strict=True) if r],
            colors="0.5",
            linewidths=0.5,
            alpha=0.12,
        )
    )
    ax.scatter(last[x][rest], last[metric][rest], color="0.55", s=3, alpha=0.15, linewidths=0)
    ax.add_collection(
        LineCollection(
            [c for c, b in zip(curves, best, strict=True) if b],
            colors="tab:blue",
            linewidths=0.5,
            alpha=0.15,
        )
    )
    for name, style in END_MARKERS.items():
        mask = best & (ending == name)
        if mask.any():
            style = {**style, "markersize": style["markersize"] * 0.6, "alpha": 0.5}
            ax.plot(last[x][mask], last[metric][mask], ls="none", zorder=4, **style)
    handles = [
        Line2D(
            [], [], color="tab:blue", label=f"the best {int(best.sum())} by {metric} at their end"
        ),
        Line2D([], [], color="0.6", label=f"the other {int(rest.sum())} (a dot: their end)"),
    ]
    if is_best_trial.any():
        (k,) = np.flatnonzero(is_best_trial)[:1]
        ax.plot(*curves[k].T, color="tab:orange", lw=2.5, zorder=5)
        handles.append(
            Line2D([], [], color="tab:orange", lw=2.5, label=f"best trial ({ids[ends[k]]})")
        )
    handles += [
        Line2D([], [], ls="none", label=END_LABELS[name], **style)
        for name, style in END_MARKERS.items()
        if name != "failed" or failed.any()
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=9)  # "best" would weigh every point
    ax.autoscale_view()
    values = rows[metric]
    if (values > 0).all() and values.max() / values.min() > 20:
        ax.set_yscale("log")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    n_failed = int(failed.sum())
    failed_note = f", {n_failed} failed" if n_failed else ""
    ax.set_title(
        f"{metric} per epoch of {len(curves)} trials ({int(stopped.sum())} stopped early by "
        f"ASHA{failed_note}): the best decile in colour"
    )

    epochs = np.sort(last[x].unique())
    bottom = np.zeros(len(epochs))
    for name, colour in (("stopped", "tab:red"), ("finished", "0.3"), ("failed", "tab:purple")):
        n = pd.Series(last[x][ending == name]).value_counts().reindex(epochs, fill_value=0)
        if n.any():
            counts.bar(epochs, n, bottom=bottom, color=colour, width=0.6, label=END_LABELS[name])
            bottom += n.to_numpy()
    for epoch, total in zip(epochs, bottom, strict=True):
        counts.text(epoch, total, f"{int(total)}", ha="center", va="bottom", fontsize=8)
    counts.set_ylim(0, bottom.max() * 1.2)
    counts.set_ylabel("trials ending here")
    counts.set_xlabel(x.replace("_", " "))
    counts.xaxis.set_major_locator(MaxNLocator(integer=True))
    counts.legend(loc="upper right", fontsize=8)
    counts.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, model: str, title: str) -> Figure:
    """Train and validation curves of one run (a trial's rows, or a checkpoint's history)."""
    x = _x_column(history)
    panels = [
        (label, [m for m in names if m in history and history[m].notna().any()])
        for label, names in (kinds().get(model).curves if model in kinds() else ())
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


# ---------------------------------------------------------------------------------------------
# Population Based Training: the hyperparameters in force, epoch by epoch, and the exploits


def _segments(trial: pd.DataFrame) -> list[pd.DataFrame]:
    """A trial's rows (by epoch) cut where its lineage changes: each run between two exploits."""
    donor = trial["cloned_from"].astype(object).where(trial["cloned_from"].notna(), "")
    epoch = trial["cloned_epoch"].astype(float).fillna(-1)
    key = donor.astype(str) + "@" + epoch.astype(str)
    run = (key != key.shift()).cumsum()
    return [rows for _, rows in trial.groupby(run, sort=True)]


def pbt_hyperparameters(results: pd.DataFrame, perturbed: list[str], metric: str) -> Figure:
    """Each perturbed hyperparameter in force at every epoch of every trial (one colour per
    trial), and the metric below. An exploit, where a trial restarted from another trial's
    epoch-k checkpoint with a perturbed config, is a dotted jump from the donor's value at epoch
    k to the trial's new value at k + 1, with a triangle."""
    columns = [f"config/{k}" for k in perturbed if f"config/{k}" in results]
    if not columns or "cloned_from" not in results:
        raise MissingInput(
            "results.parquet has no PBT lineage (cloned_from) or perturbed hyperparameters; "
            "run the sweep with --scheduler pbt"
        )
    rows = results.dropna(subset=["epoch"]).sort_values(["trial_id", "epoch"])
    panels = [*columns, metric] if metric in rows else columns
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, 2.6 * len(panels) + 0.8), sharex=True, squeeze=False
    )
    colours = plt.get_cmap("tab10")
    by_trial = {t: g for t, g in rows.groupby("trial_id", sort=True)}
    exploits = 0
    for i, (trial_id, trial) in enumerate(by_trial.items()):
        colour = colours(i % 10)
        segments = _segments(trial)
        exploits += sum(pd.notna(s["cloned_from"].iloc[0]) for s in segments)
        for ax, column in zip(axes[:, 0], panels, strict=True):
            for segment in segments:
                ax.plot(segment["epoch"], segment[column], color=colour, marker="o", ms=3, lw=1.5)
                donor_id, k = segment["cloned_from"].iloc[0], segment["cloned_epoch"].iloc[0]
                if pd.isna(donor_id):
                    continue
                first = segment.iloc[0]
                donor = by_trial.get(donor_id)
                at_k = donor[donor["epoch"] == k] if donor is not None else donor
                if at_k is not None and not at_k.empty:
                    ax.plot(
                        [k, first["epoch"]],
                        [at_k[column].iloc[0], first[column]],
                        color=colour,
                        ls=":",
                        lw=1.2,
                    )
                ax.plot(first["epoch"], first[column], marker="^", ms=8, color=colour, ls="none")
        axes[0, 0].plot([], [], color=colour, marker="o", ms=3, label=str(trial_id))
    for ax, column in zip(axes[:, 0], panels, strict=True):
        values = rows[column].astype(float)
        if (values > 0).all() and values.max() / values.min() >= 10:
            ax.set_yscale("log")
        ax.set_ylabel(column.removeprefix("config/"))
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].plot([], [], marker="^", ms=8, color="0.3", ls="none", label="exploit")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(
        f"PBT: hyperparameters in force per epoch, {len(by_trial)} trials, {exploits} exploits "
        "(dotted: from the donor's value at the epoch cloned)"
    )
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Several objectives (--objectives): the Pareto front


def pareto_front(
    results: pd.DataFrame,
    front: list[dict],
    objectives: list,
    name: str,
    marks: list[tuple[float, float, str]] = (),
) -> Figure:
    """The first objective (y) against the second (x) at each trial's last epoch: the trials on
    best.json's front in colour, joined as a staircase, with their test values (hollow, the same
    x); the others grey (a cross: stopped early); ``marks``: reference points (x, y, label),
    e.g. the report's model. A third objective and beyond are listed in the title, not drawn."""
    (y_metric, _), (x_metric, x_mode) = objectives[0], objectives[1]
    last = results.sort_values("epoch").groupby("trial_id").tail(1)
    on_front = {str(p["trial_id"]) for p in front}
    rest = last[~last["trial_id"].astype(str).isin(on_front)]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    stopped = rest["stopped_early"].astype(bool)
    for subset, marker, label in (
        (rest[~stopped], "o", "dominated"),
        (rest[stopped], "x", "stopped early"),
    ):
        if len(subset):
            ax.scatter(subset[x_metric], subset[y_metric], c="0.7", marker=marker, label=label)
    points = sorted(front, key=lambda p: (p["values"][x_metric], p["values"][y_metric]))
    xs = [p["values"][x_metric] for p in points]
    ax.step(xs, [p["values"][y_metric] for p in points], where="post", color="tab:blue", lw=1)
    ax.scatter(
        xs,
        [p["values"][y_metric] for p in points],
        c="tab:blue",
        zorder=3,
        label=f"Pareto front ({len(points)}): validation",
    )
    tested = [
        (x, p["test"].get(outcome.test_key(y_metric))) for x, p in zip(xs, points, strict=True)
    ]
    tested = [(x, v) for x, v in tested if isinstance(v, int | float)]
    if tested:
        ax.scatter(
            *zip(*tested, strict=True),
            facecolors="none",
            edgecolors="tab:orange",
            zorder=3,
            label=f"the same trials: {outcome.test_key(y_metric)}",
        )
    for x, p in zip(xs, points, strict=True):
        ax.annotate(
            str(p["trial_id"]),
            (x, p["values"][y_metric]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    for x, y, label in marks:
        ax.scatter([x], [y], marker="*", s=160, c="tab:red", zorder=4, label=label)
    if x_metric in ("latent_dim", "params", "g_params") and min(xs, default=1) > 0:
        ax.set_xscale("log", base=2 if x_metric == "latent_dim" else 10)
    ax.set_xlabel(f"{x_metric} ({x_mode})")
    ax.set_ylabel(f"{y_metric} ({objectives[0][1]}) at the trial's last epoch")
    more = f"; also {', '.join(m for m, _ in objectives[2:])}" if len(objectives) > 2 else ""
    ax.set_title(f"{name}: {y_metric} against {x_metric}{more}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
