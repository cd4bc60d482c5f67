"""The experiment folder's layout: the one place that names the files a sweep leaves behind.

``sweeps/`` writes these files and ``analysis/`` reads them; both take the names from here. This
module imports only ``trainables.best`` (which names the best trial's files, for
``trainables.load_model``), so analysis can read a sweep folder without importing anything that
runs a sweep (the import contract in pyproject.toml allows analysis this module of sweeps/).

The experiment folder, ``<storage-path>/<name>`` (a local folder, or s3:// / gs://):

    sweep.json          the sweep's resolved settings, written first (marks a sweep folder)
    optuna.journal      the Optuna study (Optuna's journal storage: a line per operation), unless
                        --study-storage names a database; optuna.db (SQLite) in folders written
                        before the journal, which still resume and open in the report
    tuner.pkl, experiment_state-*.json, searcher-state-*.pkl, ...   Ray Tune's state (--resume)
    <trainable>_<trial_id>/   one folder per trial: result.json, progress.csv, params.json,
                        checkpoint_NNNNNN/checkpoint.pt (the best and the latest are kept)
    wandb/offline-run-*-<trial_id>/   W&B runs when offline (local storage only)
    results.parquet     one row per trial per epoch, written at the end
    best.json           the best trial: config, validation and test metrics, checkpoint
    best/checkpoint.pt  a copy of the best trial's last checkpoint
    report/             analysis/report.py's figures and index.html (its default output)
"""

# best.json and best/checkpoint.pt: named where trainables.load_model reads them
from trainables.best import BEST_CHECKPOINT, BEST_DIR, BEST_FILE  # noqa: F401

SWEEP_FILE = "sweep.json"  # its presence marks a sweep folder
SWEEP_FORMAT = (
    2  # sweep.json's "format"; 1: written before the field (sweeps/folder/old_folders.py)
)
STUDY_FILE = "optuna.journal"  # a new sweep's study; sweep.json's "study_file" names a folder's
SQLITE_STUDY_FILE = "optuna.db"  # the study of a folder written before the journal storage
RESULTS_FILE = "results.parquet"
WANDB_DIR = "wandb"
# the user attribute of an Optuna trial copied from an earlier sweep (--warm-start-from): its
# experiment folder; such trials are that sweep's, not this one's
EARLIER_TRIAL_ATTR = "warm_start_from"
REPORT_DIR = "report"

# Ray Tune's state, as --resume reads it: (file name or glob, format). Tune writes these itself.
TUNER_FILE = "tuner.pkl"
TUNE_STATE = (
    (TUNER_FILE, "pickle"),
    ("experiment_state-*.json", "json"),
    ("searcher-state-*.pkl", "pickle"),
    ("search_gen_state-*.json", "pickle"),  # a cloudpickle despite its name (Ray's _atomic_save)
)


def trial_dirname(trainable_name: str, trial_id: str) -> str:
    """A trial's folder inside the experiment folder: ``<trainable>_<trial_id>``."""
    return f"{trainable_name}_{trial_id}"
