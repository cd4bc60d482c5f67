"""What reads folders that older versions wrote (sweeps/folder/old_folders.py), unit by unit; the whole
of it, an old commit's folder resumed, is tests/test_old_experiment_resumes.py."""

import json
import pickle

import pytest

from analysis.sweep_folder import SweepFolder
from sweeps.ae_sweep import SWEEP
from sweeps.fit.checkpoint_pruner import CheckpointPruner
from sweeps.fit.trainable import trial_dirname
from sweeps.folder import old_folders, record
from sweeps.folder.layout import SWEEP_FORMAT
from sweeps.search.schedulers import RevisingASHAScheduler
from sweeps.search.searcher import TrialStateOptunaSearch
from trainables.errors import UsageError


def test_the_names_older_pickles_hold_load_as_what_reads_them_now():
    old_folders.install()
    pickled = {  # protocol 0's GLOBAL opcode: what Tune's pickles of an older folder hold
        b"csweeps.checkpoint_gc\nCheckpointPruner\n.": CheckpointPruner,
        b"csweeps.runner\nPruningOptunaSearch\n.": TrialStateOptunaSearch,
        b"csweeps.runner\ntrial_dirname\n.": trial_dirname,
        b"csweeps.runner\nRevisingASHAScheduler\n.": RevisingASHAScheduler,
    }
    for data, now in pickled.items():
        assert pickle.loads(data) is now


def test_a_pruner_pickled_before_keep_checkpoints_keeps_every_checkpoint():
    old = CheckpointPruner("val_acc", "max").__dict__.copy()
    for name in ("keep", "mode", "_live", "_ended", "_settled", "_best"):
        old.pop(name)
    pruner = CheckpointPruner.__new__(CheckpointPruner)
    pruner.__setstate__(old)
    assert pruner.keep == "all" and pruner.mode == "max" and pruner._live == set()


def _sweep_file(tmp_path, **fields):
    exp = tmp_path / "exp"
    exp.mkdir(exist_ok=True)
    (exp / "sweep.json").write_text(json.dumps({"model": "autoencoder", "args": {}, **fields}))
    return exp


@pytest.mark.parametrize("version", [None, 1, SWEEP_FORMAT])
def test_a_folder_of_a_format_this_code_reads_opens(tmp_path, version):
    exp = _sweep_file(tmp_path, **({} if version is None else {"format": version}))
    assert record.read_sweep_file(SWEEP, str(exp))["model"] == "autoencoder"
    assert SweepFolder.open(exp).model == "autoencoder"


def test_a_folder_of_a_newer_format_is_one_line_naming_its_version(tmp_path):
    exp = _sweep_file(tmp_path, format=SWEEP_FORMAT + 1)
    for read in (lambda: record.read_sweep_file(SWEEP, str(exp)), lambda: SweepFolder.open(exp)):
        with pytest.raises(UsageError) as e:
            read()
        assert f"of format {SWEEP_FORMAT + 1}" in str(e.value) and "\n" not in str(e.value)
        assert "upgrade latentsweep" in str(e.value)
