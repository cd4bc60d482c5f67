"""--keep-checkpoints on real sweeps: by default a trial that ended keeps only its metrics (well
under 100 kB) unless it is the sweep's best, whose checkpoint best.json was evaluated from;
with ``all`` every trial keeps its checkpoints. Two smoke-sized autoencoder sweeps (about 20 s
each on 2 CPUs: marked slow)."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sweeps import ae_sweep
from trainables import checkpoints

pytestmark = pytest.mark.slow

PRUNED_TRIAL_BYTES = 100_000  # the target for a trial that keeps only its metrics


def run(storage: Path, name: str, *flags: str) -> tuple[dict, Path]:
    argv = ["--smoke-test", "--wandb-mode", "disabled", "--storage-path", str(storage)]
    argv += ["--name", name, "--num-samples", "6", "--max-epochs", "2", "--subset", "512"]
    summary = ae_sweep.main([*argv, *flags])
    assert summary["complete"] and summary["trials"] == 6 and summary["errored"] == 0
    return summary, storage / name


def trial_folders(exp: Path) -> dict[str, Path]:
    table = pq.read_table(exp / "results.parquet").to_pandas()
    folders = {t: next(exp.glob(f"*_{t}")) for t in set(table["trial_id"])}
    assert len(folders) == 6
    return folders


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.realdata
def test_ended_trials_keep_only_their_metrics_but_the_best_keeps_its_checkpoint(
    local_ray, tmp_path
):
    _, exp = run(tmp_path, "pruned")
    best = json.loads((exp / "best.json").read_text())
    assert checkpoints.load_checkpoint(best["checkpoint"])["kind"] == "autoencoder"
    for trial_id, folder in trial_folders(exp).items():
        saved = sorted(folder.glob("checkpoint_*"))
        if trial_id == best["trial_id"]:  # the latest, which best.json evaluated, is kept
            assert saved, f"the best trial {trial_id} lost its checkpoints"
            latest = checkpoints.load_checkpoint(saved[-1])
            assert latest["epoch"] == best["val"]["training_iteration"]
        else:
            assert not saved, (trial_id, saved)
            assert size(folder) < PRUNED_TRIAL_BYTES, (trial_id, size(folder))
            assert (folder / "result.json").read_text().strip()  # its metrics stay


@pytest.mark.realdata
def test_keep_checkpoints_all_keeps_every_trials_checkpoint(local_ray, tmp_path):
    _, exp = run(tmp_path, "kept", "--keep-checkpoints", "all")
    assert json.loads((exp / "sweep.json").read_text())["args"]["keep_checkpoints"] == "all"
    for trial_id, folder in trial_folders(exp).items():
        saved = sorted(folder.glob("checkpoint_*"))
        assert 1 <= len(saved) <= 2, (trial_id, saved)  # its best and latest
        assert checkpoints.load_checkpoint(saved[-1])["kind"] == "autoencoder"
