"""What still reads experiment folders that older versions of this code wrote, in one place.

Tune pickles the searcher, the callbacks and the trial-folder namer by module path (``tuner.pkl``,
``searcher-state-*.pkl``, ``search_gen_state-*.json``), with each object's attributes as they
were then. ``OLD_NAMES`` maps every name an older folder's pickles hold to what reads it now, and
``install`` makes those names importable where pickle looks for them (``--resume`` runs it before
Tune unpickles anything); the ``*_state`` functions fill in the attributes an older version did
not pickle. ``sweep.json`` carries ``format`` (``layout.SWEEP_FORMAT``); a folder without it is
format 1, and one newer than this code reads is refused in one line (``check_format``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from sweeps.cluster import private_api
from sweeps.folder.layout import SWEEP_FILE, SWEEP_FORMAT
from trainables.errors import UsageError

# (module, name) in an older folder's pickles -> (module, name) that reads it now.
OLD_NAMES = {
    # folders written up to commit cd82198, before sweeps/ was split into modules
    ("sweeps.runner", "PruningOptunaSearch"): ("sweeps.search.searcher", "TrialStateOptunaSearch"),
    ("sweeps.runner", "RevisingASHAScheduler"): (
        "sweeps.search.schedulers",
        "RevisingASHAScheduler",
    ),
    ("sweeps.runner", "trial_dirname"): ("sweeps.fit.trainable", "trial_dirname"),
    ("sweeps.checkpoint_gc", "CheckpointPruner"): (
        "sweeps.fit.checkpoint_pruner",
        "CheckpointPruner",
    ),
}


# module in an older folder's pickles -> the module that holds its names now: folders written
# before sweeps/ was grouped into subpackages (format 2, up to 2026-12-05).
OLD_MODULES = {
    "sweeps.cli": "sweeps.request.cli",
    "sweeps.settings": "sweeps.request.settings",
    "sweeps.search_space": "sweeps.request.search_space",
    "sweeps.encoder": "sweeps.request.encoder",
    "sweeps.warm_start": "sweeps.request.warm_start",
    "sweeps.strategies": "sweeps.search.strategies",
    "sweeps.strategies.base": "sweeps.search.strategy",
    "sweeps.strategies.asha": "sweeps.search.asha",
    "sweeps.strategies.pbt": "sweeps.search.pbt",
    "sweeps.pbt": "sweeps.search.population",
    "sweeps.searcher": "sweeps.search.searcher",
    "sweeps.schedulers": "sweeps.search.schedulers",
    "sweeps.trainable": "sweeps.fit.trainable",
    "sweeps.progress": "sweeps.fit.progress",
    "sweeps.wandb_hub": "sweeps.fit.wandb_hub",
    "sweeps.result_loggers": "sweeps.fit.result_loggers",
    "sweeps.checkpoint_pruner": "sweeps.fit.checkpoint_pruner",
    "sweeps.faults": "sweeps.fit.faults",
    "sweeps.experiment": "sweeps.folder.storage",
    "sweeps.layout": "sweeps.folder.layout",
    "sweeps.record": "sweeps.folder.record",
    "sweeps.results": "sweeps.folder.results",
    "sweeps.resume": "sweeps.folder.resume",
    "sweeps.old_folders": "sweeps.folder.old_folders",
    "sweeps.study_storage": "sweeps.folder.study_storage",
    "sweeps.study_url": "sweeps.folder.study_url",
    "sweeps.outcome": "sweeps.folder.outcome",
    "sweeps.ray_cluster": "sweeps.cluster.ray_cluster",
    "sweeps.private_api": "sweeps.cluster.private_api",
}


def install() -> None:
    """Make every module of ``OLD_MODULES`` and every name of ``OLD_NAMES`` importable at its
    old path (a module that no longer exists is registered in ``sys.modules``)."""
    for old_module, module in OLD_MODULES.items():
        sys.modules.setdefault(old_module, importlib.import_module(module))
    for (old_module, old_name), (module, name) in OLD_NAMES.items():
        target = getattr(importlib.import_module(module), name)
        try:
            holder = importlib.import_module(old_module)
        except ModuleNotFoundError:
            holder = sys.modules.setdefault(old_module, types.ModuleType(old_module))
        setattr(holder, old_name, target)


def check_format(record: dict[str, Any], where: str) -> None:
    """UsageError, naming the versions, if ``sweep.json`` was written by a newer format."""
    version = record.get("format", 1)
    if not isinstance(version, int) or version > SWEEP_FORMAT:
        raise UsageError(
            f"{where}: {SWEEP_FILE} is of format {version!r}, and this latentsweep reads formats "
            f"1 to {SWEEP_FORMAT}",
            "upgrade latentsweep (pip install -U latentsweep, or git pull) to read it",
        )


def pruner_state(state: dict[str, Any]) -> dict[str, Any]:
    """A ``CheckpointPruner`` as pickled before --keep-checkpoints kept every trial's
    checkpoints (``keep="all"``), and had no ``mode``, nor --objectives' front."""
    state = {
        "keep": "all",
        "_live": set(),
        "_ended": {},
        "_settled": set(),
        "_best": None,
        "objectives": (),
        "max_epochs": 0,
        "_front": {},
        **state,
    }
    state.setdefault("mode", "min" if state.get("sign", 1.0) > 0 else "max")
    return state


def pbt_pruner_state(state: dict[str, Any]) -> dict[str, Any]:
    """A ``PBTCheckpointPruner`` pickled before it remembered the checkpoints it refused."""
    return {"_refused": {}, **state}


def asha_state(state: dict[str, Any]) -> dict[str, Any]:
    """A ``RevisingASHAScheduler`` pickled when it was a subclass of Ray's ASHAScheduler (its
    one bracket's rungs held in Ray's private ``_Bracket``), or before it kept the trials' order
    (``_added``: filled again as Tune adds the restored trials)."""
    if "rungs" in state:
        return {"_added": {}, **state}
    where = "ray.tune.schedulers.async_hyperband._Bracket"
    (bracket,) = state["_brackets"]
    return {
        "time_attr": state["_time_attr"],
        "max_t": state["_max_t"],
        "rf": private_api.private(bracket, "rf", where, "ray"),
        "revise": True,
        "rungs": [(m, dict(r)) for m, r in private_api.private(bracket, "_rungs", where, "ray")],
        "num_stopped": state.get("_num_stopped", 0),
        "_metric": state.get("_metric"),
        "mode": state.get("_mode"),
        "_added": {},
    }


def searcher_state(searcher) -> None:
    """A ``TrialStateOptunaSearch`` restored from a version that kept no told states, seen
    epochs or warm-start points."""
    searcher.__dict__.setdefault("_told", {})
    searcher.__dict__.setdefault("_seen", {})
    searcher.__dict__.setdefault("_first", [])
    searcher.__dict__.setdefault("_known", [])


def wandb_callback_state(state: dict[str, Any]) -> dict[str, Any]:
    """A ``SweepWandbCallback`` pickled before it held the W&B hub, or its outbox."""
    return {"_hub": None, "_outbox": [], "_flushed": 0.0, **state}
