"""Bad input, one table: every entry point (the three sweep scripts, the trainables' command lines,
analysis/report.py) refuses a mistyped flag, an impossible number, a missing, corrupt or
wrong-kind file or an unusable folder with exit status 2 and one line on stderr,
``error: <problem>; <fix>``, before Ray starts or training begins, and leaves every file that
was already there (an earlier experiment included) exactly as it was.

Rows run in-process through each entry point's ``main(argv)`` (the scripts are thin wrappers of
it); the rows marked ``script`` run the real command line in a subprocess as well.

"Before Ray starts" is checked on Ray itself: in-process, Ray is not initialised after the
rejected command; a script row runs with ``RAY_TMPDIR`` set to an empty folder, where any Ray it
started would have made its session folder (tests/test_reliability.py's secrets test sees a sweep
do exactly that), and the folder is still empty afterwards. "Changes nothing": every path under
the rows' root, folders included, keeps its modification time, and every file its content."""

import hashlib
import os
import pickle
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
import ray

from analysis import report
from models import ConvAutoencoder
from sweeps import ae_sweep, classifier_sweep, gan_sweep
from sweeps.cluster.ray_cluster import TrialResources
from sweeps.folder import record
from sweeps.folder import storage as experiment
from sweeps.request.cli import build_parser, parse_settings
from sweeps.search.strategies import strategy_for
from trainables import autoencoder, checkpoints, cli, gan

REPO = Path(__file__).resolve().parents[1]

MAIN = {
    "ae": ae_sweep.main,
    "classifier": classifier_sweep.main,
    "gan": gan_sweep.main,
    "autoencoder": lambda argv: cli.main("autoencoder", argv),
    "classifier_cli": lambda argv: cli.main("classifier", argv),
    "gan_cli": lambda argv: cli.main("gan", argv),
    "report": report.main,
}
SCRIPT = {
    "ae": ["sweeps/ae_sweep.py"],
    "classifier": ["sweeps/classifier_sweep.py"],
    "gan": ["sweeps/gan_sweep.py"],
    "autoencoder": ["-m", "trainables.autoencoder"],
    "classifier_cli": ["-m", "trainables.classifier"],
    "gan_cli": ["-m", "trainables.gan"],
    "report": ["analysis/report.py"],
}

# {S}: --storage-path of a folder that already holds one finished-looking experiment, ae_done.
# (id, entry point, arguments, a distinctive part of the error line, also run as a script)
CASES = [
    # --- sweeps: flag values
    ("unknown-space", "ae", "--space huge {S}", "unknown --space 'huge'; choose one of report", 1),
    ("zero-trials", "ae", "--num-samples 0 {S}", "--num-samples 0 must be at least 1", 0),
    ("zero-epochs", "ae", "--max-epochs 0 {S}", "--max-epochs 0 must be at least 1", 0),
    ("bad-rungs", "ae", "--reduction-factor 1 {S}", "--reduction-factor 1 must be above 1", 0),
    ("report-every-pbt", "ae", "--scheduler pbt --report-every 2 {S}", "--report-every 2 with", 0),
    ("not-a-number", "gan", "--num-samples two {S}", "invalid int value: 'two'", 0),
    ("negative-trials", "gan", "--num-samples -1 {S}", "--num-samples -1 must be at least 1", 0),
    ("zero-concurrent", "gan", "--max-concurrent 0 {S}", "--max-concurrent 0 must be at least", 0),
    ("gpu-fraction", "ae", "--gpus-per-trial 1.5 {S}", "above 1, Ray gives whole GPUs only", 0),
    ("gpus-absent", "ae", "--gpus-per-trial 64 {S}", "but the largest node has", 0),
    ("lr-reversed", "ae", "--lr-range 1e-2 1e-4 {S}", "give the lower bound first: --lr-range", 1),
    ("lr-zero", "gan", "--lr-range 0 1e-3 {S}", "has a bound that is not positive", 0),
    ("latent-zero", "ae", "--latent-dim 0 {S}", "latent_dim=0 must be at least 1", 0),
    ("no-validation", "ae", "--val-size 0 {S}", "--val-size 0 is not between 1 and 59999", 0),
    # --- sweeps: files and folders
    ("storage-under-file", "ae", "--storage-path {file}/runs", "cannot write to storage path", 0),
    ("experiment-exists", "ae", "--name ae_done {S}", "ae_done already exists; continue it", 0),
    (
        "resume-changes-flag",
        "ae",
        "--resume {done} --max-epochs 9",
        "cannot change when resuming",
        0,
    ),
    ("resume-not-a-sweep", "ae", "--resume {empty}", "no sweep.json there", 0),
    ("resume-other-model", "classifier", "--resume {done}", "is a autoencoder sweep, not a", 0),
    (
        "resume-truncated-state",
        "ae",
        "--resume {truncated}",
        "tuner.pkl is truncated or corrupt",
        1,
    ),
    ("resume-broken-record", "ae", "--resume {broken}", "sweep.json is not valid JSON", 0),
    ("data-truncated", "ae", "--data-dir {bad_data} {S}", "the file is truncated or corrupt", 0),
    ("data-truncated-gan", "gan", "--data-dir {bad_data} {S}", "does not match its header", 0),
    ("data-missing", "ae", "--data-dir {empty}/nope {S}", "nope does not exist; install", 0),
    (
        "encoder-wrong-kind",
        "classifier",
        "--encoder-checkpoint {gan_ckpt} {S}",
        "checkpoint of kind 'gan'",
        1,
    ),
    ("encoder-corrupt", "classifier", "--encoder-checkpoint {corrupt} {S}", "not a readable", 0),
    ("encoder-missing", "classifier", "--encoder-checkpoint {empty}/x.pt {S}", "does not exist", 0),
    ("encoder-from-gan", "classifier", "--encoder-from {gan_done} {S}", "is a gan sweep", 0),
    # --- trainables' command lines
    ("cli-optimizer", "autoencoder", "--optimizer rmsprop --out {out}", "must be one of", 1),
    ("cli-zero-epochs", "autoencoder", "--epochs 0 --out {out}", "epochs=0 must be at least 1", 0),
    (
        "cli-no-validation",
        "autoencoder",
        "--val-size 0 --out {out}",
        "val_size=0 must be at least",
        0,
    ),
    (
        "cli-batch",
        "autoencoder",
        "--batch-size -1 --out {out}",
        "batch_size=-1 must be at least",
        0,
    ),
    ("cli-preset", "autoencoder", "--preset huge --out {out}", "invalid choice: 'huge'", 0),
    # a refused run makes no --out folder (these do not exist before)
    ("cli-from-nothing", "autoencoder", "--from {empty} --out {root}/ae_new", "no best.json", 0),
    ("cli-from-other", "gan_cli", "--from {done} --out {root}/gan_new", "not of the gan", 0),
    ("cli-gan-sgd", "gan_cli", "--optimizer sgd --out {out}", "must be adam or adamw", 0),
    ("cli-resume-nothing", "autoencoder", "--resume --out {out}", "does not exist; run without", 0),
    (
        "cli-resume-kind",
        "autoencoder",
        "--resume --out {gan_run}",
        "cannot resume a 'autoencoder'",
        0,
    ),
    ("cli-resume-corrupt", "autoencoder", "--resume --out {corrupt_run}", "not a readable", 0),
    (
        "cli-encoder-kind",
        "classifier_cli",
        "--encoder-checkpoint {gan_ckpt} --out {root}/clf_new",  # not made: checked first
        "kind 'gan'",
        0,
    ),
    ("cli-data-truncated", "autoencoder", "--data-dir {bad_data} --out {out}", "is truncated", 0),
    ("cli-out-under-file", "autoencoder", "--out {file}/run", "cannot write to --out", 0),
    # --- analysis
    ("report-not-a-sweep", "report", "{empty}", "is not a sweep folder (no sweep.json)", 1),
    ("report-missing", "report", "{empty}/nope", "nope does not exist; pass a sweep folder", 0),
    ("report-broken-record", "report", "{broken}", "sweep.json", 0),
    ("report-bad-count", "report", "{done} --max-test-images 1", "must be at least 2", 0),
]


def _ae_record(storage: Path, name: str) -> dict:
    """A sweep.json as the AE sweep writes it (nothing run)."""
    parser = build_parser(ae_sweep.SWEEP)
    settings = parse_settings(
        ae_sweep.SWEEP, parser, ["--storage-path", str(storage), "--name", name]
    )
    space = {**ae_sweep.SPACES["report"], "epochs": settings.max_epochs}
    url = f"sqlite:///{storage / name / 'optuna.db'}"
    resources = TrialResources(cpu=settings.cpus_per_trial, gpu=0.0)
    described = strategy_for(settings).record(settings, {})
    return record.sweep_record(
        ae_sweep.SWEEP, settings, resources, space, url, "offline", described
    )


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    """The files the rows point at, made once: an earlier experiment (every row must leave it
    alone), truncated and wrong-kind files, a regular file where a folder is expected."""
    root = tmp_path_factory.mktemp("bad_input")
    storage = root / "runs"
    done = experiment.Folder(storage / "ae_done")
    done.write_json("sweep.json", _ae_record(storage, "ae_done"))
    done.write_bytes("tuner.pkl", pickle.dumps({"stands in for": "Ray Tune's state"}))
    done.write_json("experiment_state-2026-01-01_00-00-00.json", {"trial_data": []})
    done.write_json("best.json", {"model": "autoencoder", "trial_id": "t1"})
    done.write_parquet("results.parquet", pa.table({"trial_id": ["t1"], "val_mse": [0.01]}))
    for name, damage in (("truncated", "tuner.pkl"), ("broken", "sweep.json")):
        copy = experiment.Folder(storage / name)
        for file in ("sweep.json", "tuner.pkl"):
            copy.write_bytes(file, done.read_bytes(file))
        copy.write_bytes(damage, done.read_bytes(damage)[:-7])
    gan_done = experiment.Folder(root / "gan_done")
    gan_done.write_json("sweep.json", {"model": "gan", "args": {}})
    gan_done.write_json("best.json", {"model": "gan"})

    gan_payload = checkpoints.checkpoint_payload("gan", gan.GANConfig(), {}, 1, [], {})
    gan_ckpt = checkpoints.save_checkpoint(gan_payload, root / "gan_run")
    ae_state = {"model": ConvAutoencoder(16).state_dict()}
    ae_payload = checkpoints.checkpoint_payload(
        "autoencoder", autoencoder.AutoencoderConfig(), {"latent_dim": 16}, 1, [], ae_state
    )
    checkpoints.save_checkpoint(ae_payload, root / "corrupt_run")
    corrupt = root / "corrupt_run" / "checkpoint.pt"
    corrupt.write_bytes(corrupt.read_bytes()[:5000])  # a copy cut short

    bad_data = root / "bad_data"  # the four IDX files, the training images cut short
    bad_data.mkdir()
    header = struct.pack(">BBBBIII", 0, 0, 8, 3, 60000, 28, 28)
    (bad_data / "train-images-idx3-ubyte").write_bytes(header + bytes(1000))
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (bad_data / name).write_bytes(b"")
    (root / "a_file").write_text("not a folder\n")
    for folder in ("empty", "out"):
        (root / folder).mkdir()
    return {
        "S": f"--storage-path {storage}",
        "root": str(root),
        "done": str(storage / "ae_done"),
        "truncated": str(storage / "truncated"),
        "broken": str(storage / "broken"),
        "gan_done": str(root / "gan_done"),
        "gan_ckpt": str(gan_ckpt),
        "gan_run": str(root / "gan_run"),
        "corrupt": str(corrupt),
        "corrupt_run": str(root / "corrupt_run"),
        "bad_data": str(bad_data),
        "file": str(root / "a_file"),
        "empty": str(root / "empty"),
        "out": str(root / "out"),
    }


# The storage folder of the sweep rows ({S}): a new sweep checks that it can write there by
# creating and removing a probe file (sweeps/folder/storage.check_writable), which changes that one
# folder's time; what is in it (the earlier experiment ae_done included) is compared in full.
PROBED = "runs"


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (``root`` too) with its modification time, and for files their
    content hash: a folder's time changes when anything is created in it, even if removed again.
    PROBED is there with no time."""
    state = {}
    for path in sorted([root, *root.rglob("*")]):
        key = str(path.relative_to(root))
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        state[key] = (digest, None if key == PROBED else path.lstat().st_mtime_ns)
    return state


def check_error(code, stderr: str, expected: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code not in (0, None), f"exit status {code}, stderr: {stderr!r}"
    assert code == 2, f"exit status {code}"
    assert lines, "nothing on stderr"
    line = lines[-1]
    assert expected in line, f"{expected!r} not in {line!r}"
    assert len(lines) == 1, f"more than one line on stderr: {lines}"
    assert line.startswith("error: ") and "; " in line, f"not 'error: problem; fix': {line!r}"
    return line


# Rows of over 3 s on 2 CPUs (a script in a subprocess, a checkpoint or Tune's state read)
SLOW = {
    "unknown-space",
    "lr-reversed",
    "cli-optimizer",
    "report-not-a-sweep",
    "encoder-wrong-kind",
    "resume-truncated-state",
}


@pytest.mark.parametrize(
    ("entry", "argv", "expected", "script"),
    [
        pytest.param(*row[1:], id=row[0], marks=pytest.mark.slow if row[0] in SLOW else ())
        for row in CASES
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    entry, argv, expected, script, paths, capsys
):
    root = Path(paths["root"])
    args = shlex.split(argv.format(**paths))
    before = snapshot(root)
    assert not ray.is_initialized()  # else "Ray never started" would prove nothing
    with pytest.raises(SystemExit) as e:
        MAIN[entry](args)
    check_error(e.value.code, capsys.readouterr().err, expected)
    assert not ray.is_initialized(), "Ray was started before the input was refused"
    assert snapshot(root) == before
    if script:  # the real command line says the same, and starts no Ray
        ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
        try:
            proc = subprocess.run(
                [sys.executable, *SCRIPT[entry], *args],
                cwd=REPO,
                env={**os.environ, "RAY_TMPDIR": str(ray_tmp)},
                capture_output=True,
                text=True,
                timeout=120,
            )
            check_error(proc.returncode, proc.stderr, expected)
            assert list(ray_tmp.iterdir()) == [], "Ray was started before the input was refused"
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)
        assert snapshot(root) == before


def test_the_table_covers_every_entry_point():
    assert {row[1] for row in CASES} == set(MAIN)
    assert len(CASES) >= 20 and len({row[0] for row in CASES}) == len(CASES)
