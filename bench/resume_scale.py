"""How long ``--resume`` of an interrupted large sweep takes to get its next trial running.

    python bench/resume_scale.py                                  # 1,000 trials, Ctrl-C after 500
    python bench/resume_scale.py --trials 100 --interrupt-after 20   # a check: about a minute

Runs ``sweeps/ae_sweep.py`` as a user would (a subprocess, the tiny budget of bench/scale.py:
``--subset 2048``, 2 epochs, 2 trials of 1 CPU at a time, W&B offline), sends it SIGINT (Ctrl-C)
once its experiment folder holds ``--interrupt-after`` finished trials, waits for it to exit,
then starts ``--resume`` of that folder and records, from the moment the resumed process starts:

  first_new_trial_s   until a trial folder that the interrupted sweep had not created appears
                      (Tune creates it when the trial starts: the next trial is running);
  first_new_result_s  until that trial has written its first result (its first epoch trained);
  resume_wall_s       the resumed sweep's whole run, to the end of the sweep.

A new trial folder, not a restarted old one, is what counts: trials that were running at the
interrupt restart from their checkpoints in their old folders.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def finished(exp: Path) -> int:
    """Trial folders whose last result says done."""
    done = 0
    for f in exp.glob("train_autoencoder_*/result.json"):
        lines = f.read_text().splitlines()
        with contextlib.suppress(json.JSONDecodeError):  # a line being written
            done += bool(lines and json.loads(lines[-1]).get("done"))
    return done


def trial_dirs(exp: Path) -> set[str]:
    return {p.name for p in exp.glob("train_autoencoder_*")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--trials", type=int, default=1000, help="the sweep's --num-samples (%(default)s)"
    )
    p.add_argument("--interrupt-after", type=int, default=500, help="finished trials before Ctrl-C")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="resume_scale-"))
    exp = root / "resume_scale"
    sweep = [sys.executable, str(REPO / "sweeps" / "ae_sweep.py")]
    argv = [f"--num-samples={args.trials}", "--max-epochs=2", "--max-concurrent=2"]
    argv += ["--cpus-per-trial=1", "--subset=2048", f"--storage-path={root}"]
    argv += ["--name=resume_scale", "--wandb-mode=offline", "--seed=0"]
    env = dict(os.environ, RAY_ADDRESS="local")
    out: dict = {"trials": args.trials, "interrupt_after": args.interrupt_after}
    with open(root / "first.log", "w") as log:
        first = subprocess.Popen([*sweep, *argv], stdout=log, stderr=subprocess.STDOUT, env=env)
        t0 = time.time()
        while finished(exp) < args.interrupt_after and first.poll() is None:
            time.sleep(0.5)
        first.send_signal(signal.SIGINT)
        out["interrupt_rc"] = first.wait(timeout=300)
        out["first_run_s"] = round(time.time() - t0, 1)
    out["finished_at_interrupt"] = finished(exp)
    before = trial_dirs(exp)
    out["trial_folders_at_interrupt"] = len(before)
    with open(root / "resume.log", "w") as log:
        t0 = time.time()
        resumed = subprocess.Popen(
            [*sweep, "--resume", str(exp), "--wandb-mode=offline"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        new_trial = new_result = None
        while resumed.poll() is None and (new_trial is None or new_result is None):
            fresh = trial_dirs(exp) - before
            if fresh and new_trial is None:
                new_trial = time.time() - t0
            if new_trial is not None and any(
                (exp / d / "result.json").stat().st_size > 0
                for d in fresh
                if (exp / d / "result.json").exists()
            ):
                new_result = time.time() - t0
            time.sleep(0.2)
        out["resume_rc"] = resumed.wait(timeout=3600)
        out["resume_wall_s"] = round(time.time() - t0, 1)
    out["first_new_trial_s"] = None if new_trial is None else round(new_trial, 1)
    out["first_new_result_s"] = None if new_result is None else round(new_result, 1)
    out["trial_folders_at_end"] = len(trial_dirs(exp))
    out["load_average"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    print(
        f"resume: {out['finished_at_interrupt']}/{args.trials} trials finished at Ctrl-C; "
        f"next trial running {out['first_new_trial_s']} s after --resume started, "
        f"its first result at {out['first_new_result_s']} s; logs in {root}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
