"""Where each epoch's metrics and checkpoint go: to Ray Tune (``TuneReporter``) or to a folder
(``FolderReporter``), and the lineage a checkpoint keeps of which trial trained which epochs.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from trainables.checkpoints import (
    CHECKPOINT_FILE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from trainables.devices import ray_gpu_ids, resolve_device

# ---------------------------------------------------------------------------------------------
# Lineage: which trial trained which epochs of a checkpoint's weights
#
# A checkpoint's ``lineage`` is a list of segments {"trial_id", "first_epoch", "last_epoch"}, in
# epoch order. A trial that only ever restores its own checkpoints has one segment; one that
# Population Based Training restored from another trial's checkpoint (an exploit) inherits that
# trial's segments and adds its own. Its ``history`` then holds the donor's epochs up to the
# clone: the lineage says which epochs of it were not this trial's.


def extend_lineage(lineage: list[dict[str, Any]], trial_id: str | None, epoch: int) -> list:
    """``lineage`` with the epochs after its last up to ``epoch`` trained by ``trial_id`` (one
    epoch, or several when the trial reports every N: ``--report-every``)."""
    out = [dict(segment) for segment in lineage]
    if out and out[-1]["trial_id"] == trial_id:
        out[-1]["last_epoch"] = epoch
    else:
        first = out[-1]["last_epoch"] + 1 if out else 1
        out.append({"trial_id": trial_id, "first_epoch": first, "last_epoch": epoch})
    return out


def clone_of(lineage: list[dict[str, Any]]) -> dict[str, Any]:
    """The latest exploit in ``lineage`` (whose last segment is the trial itself):
    ``cloned_from`` (the trial whose checkpoint it restored) and ``cloned_epoch`` (that
    checkpoint's epoch); {} for weights one trial trained from the start."""
    if len(lineage) < 2:
        return {}
    return {"cloned_from": lineage[-2]["trial_id"], "cloned_epoch": lineage[-1]["first_epoch"] - 1}


# ---------------------------------------------------------------------------------------------
# Reporters


class TuneReporter:
    """Inside a Ray Tune trial: restore from Tune's checkpoint, report through ``tune.report``.
    Each checkpoint also records where it was trained (``trained_on``: the Ray node, host, GPU
    ids, ``CUDA_VISIBLE_DEVICES`` and torch device), which Tune's own result fields (one IP per
    machine) cannot tell, and which trial trained which of its epochs (``lineage``). After
    Population Based Training has restored this trial from another trial's checkpoint, every
    result also says so (``cloned_from``, ``cloned_epoch``: ``clone_of``)."""

    def __init__(self) -> None:
        self.lineage: list[dict[str, Any]] = []

    def restore(self) -> dict[str, Any] | None:
        from ray import tune

        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            payload = load_checkpoint(d)
        self.lineage = list(payload.get("lineage", []))
        return payload

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        import ray
        from ray import tune

        trial_id = tune.get_context().get_trial_id()
        epoch = int(payload["epoch"])
        self.lineage = extend_lineage(self.lineage, trial_id, epoch)
        if payload["config"].get("report_every", 1) > 1:
            # Tune counts reports; reporting every N epochs, the count is not the epoch, which
            # the scheduler, the study and the charts go by. Tune keeps a reported value (and
            # restores it from the checkpoint's result).
            metrics = {**metrics, "training_iteration": epoch}
        payload = {
            **payload,
            "lineage": self.lineage,
            "trained_on": {
                "node_id": ray.get_runtime_context().get_node_id(),
                "hostname": socket.gethostname(),
                "gpu_ids": ray_gpu_ids() or [],
                # what Ray set for this worker: the granted GPUs' ids (None with no GPU granted)
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "device": str(resolve_device(payload["config"].get("device", "auto"))),
            },
        }
        with tempfile.TemporaryDirectory(prefix="latentsweep-ckpt-") as d:
            save_checkpoint(payload, d)
            tune.report(
                {**metrics, **clone_of(self.lineage)},
                checkpoint=tune.Checkpoint.from_directory(d),
            )


class FolderReporter:
    """Outside Ray: keep ``out/checkpoint.pt`` (latest) and ``out/metrics.jsonl`` (all epochs)."""

    def __init__(self, out: str | os.PathLike, resume: bool = False, verbose: bool = True):
        self.out = Path(out)
        self.resume = resume
        self.verbose = verbose
        self.lineage: list[dict[str, Any]] = []  # epochs run here have no trial id

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint ``--resume`` continues."""
        if not (self.out / CHECKPOINT_FILE).is_file():
            raise CheckpointError(
                f"--resume: {self.out / CHECKPOINT_FILE} does not exist; run without --resume first"
            )
        return load_checkpoint(self.out)

    def restore(self) -> dict[str, Any] | None:
        if not self.resume:
            return None
        payload = self.checkpoint()
        self.lineage = list(payload.get("lineage", []))
        return payload

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        self.lineage = extend_lineage(self.lineage, None, int(payload["epoch"]))
        payload = {**payload, "lineage": self.lineage}
        save_checkpoint(payload, self.out)
        # Rewrite from the checkpoint's history so the file matches it exactly after a resume.
        tmp = self.out / ".metrics.jsonl.tmp"
        tmp.write_text("".join(json.dumps(m) + "\n" for m in payload["history"]))
        os.replace(tmp, self.out / "metrics.jsonl")
        if self.verbose:
            shown = " ".join(
                f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
            )
            print(shown, flush=True)
