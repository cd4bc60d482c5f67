"""One sweep, from settings to ``best.json``: this module only wires the parts in the order a
sweep runs (``docs/architecture.md`` walks through it). A script (``sweeps/<model>_sweep.py``)
holds its search space, metric, mode and defaults, parses its flags with
``sweeps/request/cli.py`` and calls ``run``.

    settings (request/cli.py) -> trial space (request/search_space.py) -> experiment folder
    (folder/storage.py) or resume checks (folder/resume.py) -> W&B mode (fit/wandb_hub.py) ->
    trial resources and Ray (cluster/ray_cluster.py) -> data -> Optuna study
    (folder/study_storage.py) -> Tuner: the strategy's searcher, scheduler and checkpoint pruner
    (search/strategies.py), the callbacks (fit/) -> fit -> results (folder/results.py)

Everything a user can get wrong is checked before Ray starts and raised as a ``UsageError``;
the scripts run ``main`` inside ``trainables.errors.cli_errors()``.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
import ray
from ray import tune

from sweeps.cluster import private_api, ray_cluster
from sweeps.fit import faults
from sweeps.fit.progress import SweepProgress, quiet_driver_logs
from sweeps.fit.result_loggers import result_loggers
from sweeps.fit.trainable import sweep_trainable, trial_dirname
from sweeps.fit.wandb_hub import SweepWandbCallback, mark_best_run, sweep_wandb_mode
from sweeps.folder import results
from sweeps.folder.layout import BEST_CHECKPOINT, SWEEP_FILE
from sweeps.folder.record import sweep_record
from sweeps.folder.resume import check_restorable, restore_tuner
from sweeps.folder.storage import Folder, check_new, check_writable
from sweeps.folder.study_storage import open_study_storage, resume_study_at, study_storage_url
from sweeps.request.search_space import searched_keys, trial_space
from sweeps.request.settings import Settings, SweepSpec
from sweeps.request.warm_start import WarmStart, warm_start
from sweeps.search.strategies import Strategy, strategy_for
from trainables import module_for
from trainables.data import load_splits

exit_status = results.exit_status


def run(spec: SweepSpec, settings: Settings, param_space: dict[str, Any]) -> dict[str, Any]:
    """Run (or with --resume, continue) the sweep, then write its results; returns the summary.

    Everything a user can get wrong is checked before Ray starts and raised as UsageError;
    call this inside ``cli_errors()``."""
    t0 = time.time()
    if not settings.verbose:
        quiet_driver_logs()
    private_api.check()  # the private names of Ray and Optuna this code uses are all there
    module = module_for(spec.kind)
    strategy = strategy_for(settings)
    space = trial_space(spec, settings, module, param_space, strategy.decision_epochs(settings))
    perturbations = strategy.perturbations(spec, settings, module, space)
    warm = warm_start(spec, settings, module, space)  # --warm-start(-from): known first

    # 1. The experiment folder: a new one that must not exist yet, or one to resume.
    exp = Folder(settings.experiment_uri)
    if settings.resume:
        check_restorable(exp, settings)
    else:
        check_writable(Folder(settings.storage_path))
        check_new(exp, SWEEP_FILE)
    wandb_mode, wandb_note = sweep_wandb_mode(settings.wandb_mode, exp.local)
    if wandb_note:  # online, but the W&B server cannot be reached: offline, said in one line
        print(f"{spec.name}: {wandb_note}", flush=True)

    # 2. What each trial gets: decided here for a local Ray, after joining for a cluster.
    resources = None
    if settings.address:
        ray_cluster.check_reachable(settings.address)
    else:
        gpus, cpus = ray_cluster.local_node_resources(settings)
        resources = ray_cluster.trial_resources(spec, settings, gpus, cpus)

    # 3. The driver loads the data once; Tune ships it to trials through the object store.
    splits = load_splits(settings.data_dir, settings.val_size, settings.data_seed, settings.subset)
    space["data_dir"] = splits.source  # checkpoints then name the files they were trained on
    study_url = study_storage = None
    note = strategy.start_note(spec, settings)
    if note:
        print(f"{spec.name}: {note}", flush=True)
    if not settings.resume:
        exp.make()
        if strategy.uses_study:
            study_url = study_storage_url(settings, exp)
            study_storage = open_study_storage(study_url, settings.name)

    # 4. Ray, the Tuner, the fit, the results.
    started_ray = ray_cluster.start_ray(settings)
    try:
        if settings.address or not started_ray:
            gpus, cpus = ray_cluster.cluster_node_resources()
            resources = ray_cluster.trial_resources(
                spec, settings, gpus, cpus, autoscaling=bool(settings.address), chosen=resources
            )
            ray_cluster.warn_if_node_local(exp)
        trainable = sweep_trainable(
            module.TRAINABLE, spec.metric, splits, resources.cpu, resources.gpu, settings.verbose
        )
        if settings.resume:
            record = exp.read_json(SWEEP_FILE)  # restore_tuner notes the resume in it
            tuner, study_url = restore_tuner(exp, record, settings, trainable, space, wandb_mode)
        else:
            described = strategy.record(settings, perturbations)
            described["searcher"] |= {
                "warm_start": warm.name,
                "points_to_evaluate": warm.points,
                "warm_start_from": settings.warm_start_from,
                "earlier_trials": len(warm.trials),
            }
            record = sweep_record(
                spec, settings, resources, space, study_url, wandb_mode, described
            )
            exp.write_json(SWEEP_FILE, record)
            tuner = make_tuner(
                spec,
                settings,
                strategy,
                trainable,
                space,
                study_storage,
                wandb_mode,
                perturbations,
                warm,
            )
        print(f"{spec.name}: {splits.describe()}; experiment {exp.uri}", flush=True)
        with ray_cluster.tune_environment(wandb_mode, settings.verbose):
            fit_started = time.monotonic()
            grid = tuner.fit()
        # --time-budget: Tune's own clock starts inside fit, so this one has run at least as long
        budget_spent = (
            settings.time_budget is not None
            and time.monotonic() - fit_started >= settings.time_budget
        )
        summary = results.finish(
            spec,
            settings,
            exp,
            record,
            splits,
            module,
            budget_spent,
            study_url,
            analysis=private_api.result_analysis(grid),
        )
        if wandb_mode != "disabled" and summary["best"]:  # the best trial's run says so
            best_file = exp.local / BEST_CHECKPOINT if exp.local else None  # remote: no upload
            warning = mark_best_run(settings, exp.local, summary["best"], wandb_mode, best_file)
            if warning:
                print(f"{spec.name}: {warning}", flush=True)
    finally:
        resume_study_at(None)  # a later sweep in this process unpickles no study from this one
        if started_ray:
            ray.shutdown()  # also flushes the trials' and W&B actors' output before the summary
    summary["wall_s"] = round(time.time() - t0, 1)
    results.print_summary(spec, settings, summary, wandb_mode)
    return summary


def make_tuner(
    spec: SweepSpec,
    settings: Settings,
    strategy: Strategy,
    trainable,
    space: dict[str, Any],
    study_storage: optuna.storages.BaseStorage | None,
    wandb_mode: str,
    perturbations: dict[str, Any],
    warm: WarmStart = WarmStart(),
) -> tune.Tuner:
    """A new sweep's Tuner: the strategy's searcher, scheduler and checkpoint pruner, the
    callbacks and the progress view. ``perturbations``: what the scheduler may change in a
    running trial (``Strategy.perturbations``); ``warm``: what the searcher knows first."""
    pruner = strategy.checkpoint_pruner(spec, settings)
    # Every epoch's result kept through a trial's restarts in this driver: PBT's pauses, and a
    # trial restored after a failure (a node lost mid-sweep: Ray's own loggers would put back
    # the experiment folder's older copy of result.json, and results.parquet lose those epochs).
    callbacks: list[tune.Callback] = [pruner, *result_loggers(settings.tensorboard)]
    callbacks += faults.callbacks(settings.experiment_uri)  # none unless a fault test asks
    if wandb_mode != "disabled":
        callbacks.append(
            SweepWandbCallback(
                project=settings.wandb_project, group=settings.name, entity=settings.wandb_entity
            )
        )
    reporter = SweepProgress(  # the compact view; Ray's table with --verbose
        name=spec.name,
        experiment=settings.experiment_uri,
        metric=spec.metric,
        mode=spec.mode,
        max_epochs=settings.max_epochs,
        searched=searched_keys(space),
        columns=list(spec.columns),
    )
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            search_alg=strategy.searcher(settings, study_storage, warm),
            scheduler=strategy.scheduler(settings, perturbations),
            num_samples=settings.num_samples,
            time_budget_s=settings.time_budget,
            trial_dirname_creator=trial_dirname,
            reuse_actors=True,  # a new trial reuses a finished trial's worker: no restart cost
        ),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=settings.storage_path,
            # Tune keeps every checkpoint; CheckpointPruner deletes what --keep-checkpoints does
            # not keep once no snapshot --resume could read names it (Tune's num_to_keep deletes
            # before the snapshot that stops naming them is written: a race on a killed driver).
            checkpoint_config=tune.CheckpointConfig(
                checkpoint_score_attribute=spec.metric,
                checkpoint_score_order=spec.mode,
            ),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            callbacks=callbacks,
            progress_reporter=reporter,
            verbose=1,
        ),
    )
