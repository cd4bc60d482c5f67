"""What a sweep leaves when Tune is done: ``results.parquet`` (one row per trial per epoch), the
best trial (``best.json`` and ``best/checkpoint.pt``, with its test metrics: the only use of the
test split), the summary printed at the end, and the script's exit status.

Everything is read back from the experiment folder (``tune.ExperimentAnalysis``), so a resumed
sweep's results hold every trial of every driver that ran it.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import optuna
import pyarrow as pa
from ray import tune
from ray.air.constants import TRAINING_ITERATION

from sweeps.fit.wandb_hub import wandb_key_configured, wandb_root
from sweeps.folder import outcome
from sweeps.folder.layout import (
    BEST_CHECKPOINT,
    BEST_FILE,
    RESULTS_FILE,
    WANDB_DIR,
)
from sweeps.folder.outcome import DIVERGED, ERROR
from sweeps.folder.storage import Folder
from sweeps.folder.study_storage import close_study_file
from sweeps.folder.study_url import journal_path, loadable
from sweeps.request.settings import Settings, SweepSpec
from sweeps.search.searcher import tell_stopped_by_budget
from sweeps.search.strategies import strategy_for
from trainables import checkpoints

# Keys Ray Tune adds to every result: not metrics of the model.
TUNE_KEYS = {
    "timestamp",
    "checkpoint_dir_name",
    "done",
    "training_iteration",
    "trial_id",
    "date",
    "time_this_iter_s",
    "pid",
    "hostname",
    "node_ip",
    "time_since_restore",
    "iterations_since_restore",
    "experiment_tag",
    "should_checkpoint",
    "config",
}


# What a trial Population Based Training restored from another trial's checkpoint reports in
# every later result (``trainables.reporting.clone_of``): the donor's trial id and that checkpoint's
# epoch. Null on a trial's own epochs before any exploit (and always with ASHA).
LINEAGE = ("cloned_from", "cloned_epoch")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def trial_rows(trial, history, max_epochs: int, error: str | None = None) -> list[dict[str, Any]]:
    """One row per epoch of one trial (an epoch repeated by a restore keeps its latest row); a
    trial that never reported gets one row with empty metrics so it is not lost. A diverged
    trial's status is DIVERGED (Ray says TERMINATED); ``error`` is why a trial failed.

    Every row is an epoch this trial trained itself, with the config in force then (each
    result's own ``config/*``: PBT changes a trial's config mid-run; the trial's final config
    where a result has none) and ``cloned_from``/``cloned_epoch`` (``LINEAGE``). A trial PBT
    restored from another trial's epoch-k checkpoint goes on at epoch k + 1: the donor's epochs
    up to k are the donor's rows, not this trial's, and if this trial had already run past k,
    its own earlier run of those epochs gives way to the run after the exploit."""
    by_iteration: dict[int, dict[str, Any]] = {}
    for record in history:
        if record.get(TRAINING_ITERATION) is not None:
            by_iteration[int(record[TRAINING_ITERATION])] = record
    last = max(by_iteration, default=0)
    head = {
        "trial_id": trial.trial_id,
        "status": outcome.status(trial),
        "stopped_early": outcome.stopped_early(trial, last, max_epochs),
    }
    config = {f"config/{k}": v for k, v in trial.config.items()}
    lineage = dict.fromkeys(LINEAGE)
    if not by_iteration:
        return [
            {**head, "epoch": None, TRAINING_ITERATION: None, ERROR: error, **lineage, **config}
        ]
    rows = []
    for iteration, record in sorted(by_iteration.items()):
        metrics = {
            k: v
            for k, v in record.items()
            if k not in TUNE_KEYS
            and not k.startswith("config/")
            and k not in ("epoch", DIVERGED, ERROR, *LINEAGE)
        }
        in_force = {
            key: value if _missing(record.get(key)) else record[key]
            for key, value in config.items()
        }
        cloned = {k: None if _missing(record.get(k)) else record[k] for k in LINEAGE}
        if cloned["cloned_epoch"] is not None:
            cloned["cloned_epoch"] = int(cloned["cloned_epoch"])
        rows.append(
            {
                **head,
                "epoch": record.get("epoch", iteration),
                TRAINING_ITERATION: iteration,
                ERROR: error,
                **cloned,
                **metrics,
                **in_force,
            }
        )
    return rows


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Columns in first-seen order, types inferred per column (missing values are null)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    arrays = {}
    for col in columns:
        values = [_plain(row.get(col)) for row in rows]
        try:
            arrays[col] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[col] = pa.array([None if v is None else str(v) for v in values])
    return pa.table(arrays)


def _plain(value: Any) -> Any:
    """numpy scalars (pandas hands them out) as Python values."""
    if hasattr(value, "item") and not isinstance(value, list | dict):
        return value.item()
    return value


def finish(
    spec: SweepSpec,
    settings: Settings,
    exp: Folder,
    record: dict[str, Any],
    splits,
    module,
    budget_spent: bool = False,
    study_url: str | None = None,
    analysis: tune.ExperimentAnalysis | None = None,
) -> dict[str, Any]:
    """Write results.parquet; if every trial has finished (or ``budget_spent``: --time-budget
    ended the sweep, and every trial it started has ended), pick the best by its last
    ``metric`` (ERROR and DIVERGED trials excluded), evaluate its checkpoint on the test split
    and write best.json and best/checkpoint.pt. Returns the numbers of the summary.
    ``study_url``: where the study is (None: no study), to tell it of the trials the budget
    stopped. ``analysis``: the one ``Tuner.fit`` read back from the folder as it returned (its
    trials the driver's own), else read here: reading every trial back took 0.6 s for 300
    trials here (about 2 ms a trial), and grows with the trial count."""
    strategy = strategy_for(settings)
    if analysis is None:
        analysis = tune.ExperimentAnalysis(exp.uri)
    trials = sorted(analysis.trials, key=lambda t: t.trial_id)
    if budget_spent and study_url:  # Tune stopped the running trials without telling the study
        study = optuna.load_study(study_name=record["study_name"], storage=loadable(study_url))
        objectives = [m for m, _ in settings.objective_pairs] or spec.metric
        tell_stopped_by_budget(study, trials, objectives, settings.max_epochs)
    close_study_file(exp, record)
    rows, failures, epochs_trained = [], {}, {}
    for trial in trials:
        df = analysis.trial_dataframes.get(trial.trial_id)
        history = df.to_dict("records") if df is not None and len(df) else []
        epochs_trained[trial.trial_id] = len(history)
        error = outcome.trial_error(trial)
        if error:
            failures[trial.trial_id] = (outcome.how_it_ended(trial, settings.max_epochs), error)
        rows.extend(trial_rows(trial, history, settings.max_epochs, error))
    table = rows_to_table(rows)
    typed = ((ERROR, pa.string()), ("cloned_from", pa.string()), ("cloned_epoch", pa.int64()))
    for column, kind in typed:
        table = table.set_column(  # typed even when no trial failed (or was cloned)
            table.schema.get_field_index(column), column, table[column].cast(kind)
        )
    exp.write_parquet(RESULTS_FILE, table)

    unfinished = [t for t in trials if not outcome.ended(t)]
    summary: dict[str, Any] = {
        "experiment": exp.uri,
        "study_storage": record["study_storage"],  # its password masked
        "trials": len(trials),
        "errored": sum(map(outcome.errored, trials)),
        "diverged": sum(map(outcome.diverged, trials)),
        "failures": failures,  # trial id -> (errored | diverged, why)
        "stopped_early": len({r["trial_id"] for r in rows if r["stopped_early"]}),
        "trial_epochs": strategy.trial_epochs(
            epochs_trained, {t.trial_id: outcome.epochs(t) for t in trials}
        ),
        "study_file": record.get("study_file"),
        # PBT: the (trial, donor, epoch) clones its results show
        "exploits": len(
            {(r["trial_id"], r["cloned_from"], r["cloned_epoch"]) for r in rows if r["cloned_from"]}
        ),
        "trial_epochs_budget": settings.num_samples * settings.max_epochs,
        "complete": not unfinished and (budget_spent or len(trials) >= settings.num_samples),
        "budget_spent": budget_spent,
        "best": None,
    }
    best = outcome.best(trials, spec.metric, spec.mode)
    if summary["complete"] and best is not None:
        front = (
            front_record(settings, analysis, trials, splits, module)
            if settings.objective_pairs
            else None
        )
        summary["best"] = write_best(
            spec, settings, exp, record, analysis, best, splits, module, front
        )
    return summary


def validation_metrics(trial) -> dict[str, Any]:
    """A trial's last result without Tune's bookkeeping (its epoch kept): best.json's ``val``."""
    last = trial.last_result
    val = {k: v for k, v in last.items() if k not in TUNE_KEYS or k == TRAINING_ITERATION}
    return {k: v for k, v in val.items() if not k.startswith("config/")}


def front_record(settings: Settings, analysis, trials, splits, module) -> list[dict[str, Any]]:
    """--objectives: the sweep's Pareto front (``outcome.front``), each trial with its
    validation values and its last checkpoint's test metrics (the test split scored once per
    trial, here at the end), in the order of the first objective."""
    points = []
    for trial in outcome.front(trials, settings.objective_pairs, settings.max_epochs):
        checkpoint = analysis.get_last_checkpoint(trial)
        with checkpoint.as_directory() as d:
            test = module.evaluate_checkpoint(d, data=splits)
        points.append(
            {
                "trial_id": trial.trial_id,
                "values": {m: trial.last_result[m] for m, _ in settings.objective_pairs},
                "config": dict(trial.config),
                "val": validation_metrics(trial),
                "test": test,
                "checkpoint": checkpoint.path,
            }
        )
    return points


def write_best(
    spec: SweepSpec,
    settings: Settings,
    exp: Folder,
    record,
    analysis,
    best,
    splits,
    module,
    front: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    checkpoint = analysis.get_last_checkpoint(best)
    source = f"{checkpoint.path.rstrip('/')}/{checkpoints.CHECKPOINT_FILE}"
    checkpoint_uri = exp.copy_in(checkpoint.filesystem, source, BEST_CHECKPOINT)
    # the front's test metrics are of the same (last) checkpoint: a best on it is not tested again
    tested = {point["trial_id"]: point["test"] for point in front or []}

    def scored(path) -> dict[str, Any]:
        if best.trial_id in tested:
            return tested[best.trial_id]
        return module.evaluate_checkpoint(path, data=splits)

    if exp.local is not None:
        test = scored(exp.local / BEST_CHECKPOINT)
        trained_on = checkpoints.load_checkpoint(exp.local / BEST_CHECKPOINT).get("trained_on")
    else:
        with checkpoint.as_directory() as d:
            test = scored(d)
            trained_on = checkpoints.load_checkpoint(d).get("trained_on")
    val = validation_metrics(best)
    best_record = {
        "model": spec.kind,
        "experiment": settings.name,
        "metric": spec.metric,
        "mode": spec.mode,
        "trial_id": best.trial_id,
        "stopped_early": outcome.stopped_early(best, outcome.epochs(best), settings.max_epochs),
        "config": dict(best.config),
        "val": val,
        "test": test,
        "checkpoint": checkpoint_uri,
        "trained_on": trained_on,  # node, host, GPU ids, CUDA_VISIBLE_DEVICES, torch device
        "study_storage": record["study_storage"],
        "study_name": record["study_name"],
        "study_file": record.get("study_file"),
    }
    if front is not None:  # --objectives: best is the first objective's; the front is the answer
        best_record["objectives"] = [list(pair) for pair in settings.objective_pairs]
        best_record["front"] = front
    exp.write_json(BEST_FILE, best_record)
    return best_record


def exit_status(summary: dict[str, Any]) -> int:
    """A sweep script's exit status: 0 once every trial has finished (errored and diverged ones
    included), else 130, as after Ctrl-C (the sweep was interrupted: continue it with --resume)."""
    return 0 if summary["complete"] else 130


def print_summary(spec: SweepSpec, settings: Settings, summary: dict, wandb_mode: str) -> None:
    name, exp, best = spec.name, summary["experiment"], summary["best"]
    if not summary["complete"]:
        print(
            f"{name}: stopped before all {settings.num_samples} trials finished; continue with: "
            f"python {spec.script} --resume {shlex.quote(exp)}"
        )
    elif summary.get("budget_spent") and summary["trials"] < settings.num_samples:
        print(
            f"{name}: the time budget of {settings.time_budget:g} s is spent: "
            f"{summary['trials']} of {settings.num_samples} trials ran"
        )
    if summary["complete"] and best is None:
        print(f"{name}: no trial finished with a finite {spec.metric}; nothing to evaluate")
    failures = list(summary["failures"].items())
    for trial_id, (what, why) in failures[:5]:
        print(f"{name}: trial {trial_id} {what}: {why}")
    if len(failures) > 5:
        print(f"{name}: {len(failures) - 5} more failed; see the error column of {RESULTS_FILE}")
    if best:
        print(f"{name}: best trial {best['trial_id']}: " + json.dumps(best["config"]))
    if best and best.get("front") is not None:
        points = "; ".join(
            ", ".join(f"{m} {v:.5g}" for m, v in point["values"].items()) for point in best["front"]
        )
        print(f"{name}: Pareto front of {len(best['front'])} trials ({BEST_FILE}): {points}")
    note = cpu_fallback_note(best)
    if note:
        print(f"{name}: {note}")
    parts = [
        f"{summary['trials']} trials",
        f"{summary['errored']} errored",
        f"{summary['diverged']} diverged",
        strategy_for(settings).summary_part(summary),
    ]
    if best:
        parts.append(f"best {spec.metric} {best['val'][spec.metric]:.5g}")
        test_key = outcome.test_key(spec.metric)
        if isinstance(best["test"].get(test_key), float):
            parts.append(f"{test_key} {best['test'][test_key]:.5g}")
    budget = summary["trial_epochs_budget"]
    parts += [
        f"wall {datetime.timedelta(seconds=round(summary['wall_s']))}",
        f"{summary['trial_epochs']}/{budget} trial-epochs "
        f"({100 * summary['trial_epochs'] / max(budget, 1):.0f}% of "
        f"{settings.num_samples}x{settings.max_epochs})",
    ]
    print(f"{name}: " + ", ".join(parts))
    written = (RESULTS_FILE, BEST_FILE, BEST_CHECKPOINT) if best else (RESULTS_FILE,)
    if summary.get("study_file"):
        written = (*written, summary["study_file"])
    print(f"{name}: results in {exp} ({', '.join(written)})")
    steps = next_steps(summary, wandb_mode)
    if steps:
        print(f"{name}: next steps:")
        for command, why in steps:
            print(f"  {command}\n      {why}")
    sys.stdout.flush()


def cpu_fallback_note(best: dict[str, Any] | None) -> str | None:
    """One line when the trials were granted GPUs but trained on the CPU (torch saw no CUDA
    where they ran: Ray grants GPUs a node declares, real or not), read from where the best
    trial's checkpoint records it was trained (``trained_on``); None otherwise."""
    trained_on = (best or {}).get("trained_on") or {}
    if not trained_on.get("gpu_ids") or trained_on.get("device") != "cpu":
        return None
    return (
        "note: trials were granted GPUs but trained on the CPU (torch sees no CUDA on "
        f"{trained_on.get('hostname')}, where the best trial ran with GPU "
        f"{','.join(map(str, trained_on['gpu_ids']))})"
    )


REPO = Path(__file__).resolve().parents[2]


def shell_command(tool: str) -> str:
    """How the shell the sweep was started from runs ``tool`` of this Python environment (the
    interpreter itself for "python", else a console script beside it): the bare name where the
    shell's PATH finds this environment's, else its path (relative to the working directory when
    inside it). ``make sweep`` runs ``.venv/bin/python`` without activating the venv, so its
    user's ``python`` is another one and ``optuna-dashboard`` may not be found at all."""
    mine = Path(sys.executable) if tool == "python" else Path(sys.executable).parent / tool
    found = shutil.which(tool)
    if found is not None and os.path.abspath(found) == os.path.abspath(mine):
        return tool
    return shlex.quote(_shown_path(mine))


def _shown_path(path: Path) -> str:
    relative = os.path.relpath(os.path.abspath(path))
    return str(path.absolute()) if relative.startswith("..") else relative


def next_steps(summary: dict[str, Any], wandb_mode: str) -> list[tuple[str, str]]:
    """What a user runs next, each a command that works as printed in the shell the sweep was
    started from (``shell_command``): the report, the Optuna dashboard (on 127.0.0.1), and
    uploading offline W&B runs (logging in first if need be)."""
    exp = Folder(summary["experiment"])
    steps = []
    if exp.local is not None:  # analysis/ reads local folders
        report = shlex.quote(_shown_path(REPO / "analysis" / "report.py"))
        steps.append(
            (
                f"{shell_command('python')} {report} {shlex.quote(str(exp.local))}",
                "figures and an HTML report",
            )
        )
    storage = summary.get("study_storage") or ""
    dashboard = shell_command("optuna-dashboard")
    journal = journal_path(storage) if storage else None
    if journal is not None or storage.startswith("sqlite:"):
        install = (
            ""
            if importlib.util.find_spec("optuna_dashboard")
            else f"{shell_command('pip')} install optuna-dashboard && "
        )
        steps.append(
            (
                # optuna-dashboard opens a journal given its file's path
                f"{install}{dashboard} --host 127.0.0.1 {shlex.quote(str(journal or storage))}",
                "the Optuna study in a browser, at http://127.0.0.1:8080",
            )
        )
    elif storage:
        steps.append(
            (
                f"{dashboard} --host 127.0.0.1 {shlex.quote(storage)}",
                "the Optuna study in a browser (put the password back where the URL shows ***)",
            )
        )
    if wandb_mode == "offline":
        runs = wandb_root(exp.local) / WANDB_DIR
        wandb = shell_command("wandb")
        login = "" if wandb_key_configured() else f"{wandb} login && "
        steps.append(
            (
                f"{login}{wandb} sync {shlex.quote(str(runs))}/offline-run-*",
                "upload the offline W&B runs",
            )
        )
    return steps
