"""Unit tests of the small rules a sweep is built from, each on real objects and without Ray
running or a model training: PBT's bounds (``KeepInBounds``) and the checkpoints it may still
restore from (``PBTCheckpointPruner.needed``), the search space's flags (``with_lr_range``,
``trial_perturbations``), the study a ``--resume`` opens (``resumed_database_url``), and what a
sweep prints at its end (``print_summary``, ``next_steps``). The trials are Tune's own ``Trial``
objects and the checkpoints real folders under ``tmp_path``."""

import dataclasses
import importlib.machinery
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment import Trial
from ray.tune.search.sample import Float, LogUniform

from sweeps import ae_sweep, gan_sweep
from sweeps.folder.results import next_steps, print_summary
from sweeps.folder.study_storage import STUDY_STORAGE_ENV, resumed_database_url
from sweeps.request import cli
from sweeps.request.search_space import trial_perturbations, with_lr_range
from sweeps.search.population import KeepInBounds, PBTCheckpointPruner
from trainables import autoencoder, gan
from trainables.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


def _settings(**changes):
    """The autoencoder sweep's settings as its command line makes them, then ``changes``."""
    parsed = cli.parse_settings(ae_sweep.SWEEP, cli.build_parser(ae_sweep.SWEEP), [])
    return dataclasses.replace(parsed, **changes)


# ---------------------------------------------------------------------------------------------
# KeepInBounds: PBT's perturbed values kept inside the script's bounds


def test_keep_in_bounds_clips_a_float_axis_on_both_sides():
    keep = KeepInBounds(gan_sweep.PERTURBATIONS["default"])  # beta1: tune.uniform(0.0, 0.9)
    assert keep.bounds == {"lr_g": (5e-5, 1e-3), "lr_d": (5e-5, 1e-3), "beta1": (0.0, 0.9)}
    config = {"lr_g": 1.2e-3, "lr_d": 4e-5, "beta1": 0.9 * 1.2, "batch_size": 512, "d_steps": 3}
    assert keep(config) == {
        "lr_g": 1e-3,
        "lr_d": 5e-5,
        "beta1": 0.9,
        "batch_size": 512,
        "d_steps": 3,
    }
    inside = {"lr_g": 5e-4, "lr_d": 5e-5, "beta1": 0.0}
    assert keep(dict(inside)) == inside


def test_keep_in_bounds_takes_an_integer_axis_upper_bound_as_exclusive():
    """``tune.randint(1, 4)`` draws 1, 2 or 3: a value perturbed to 4 or above comes back as 3,
    below 1 as 1, and stays an int."""
    keep = KeepInBounds({"d_steps": tune.randint(1, 4)})
    assert keep.bounds == {"d_steps": (1, 3)}
    for perturbed, kept in ((4, 3), (5, 3), (3, 3), (0, 1), (2, 2)):
        out = keep({"d_steps": perturbed})["d_steps"]
        assert (out, type(out)) == (kept, int)


def test_keep_in_bounds_leaves_lists_choices_and_absent_keys_alone():
    keep = KeepInBounds(
        {
            "lr": tune.loguniform(1e-4, 1e-3),
            "batch_size": [64, 128],  # PBT steps to a neighbour: nothing to clip
            "optimizer": tune.choice(["adam", "sgd"]),
        }
    )
    assert keep.bounds == {"lr": (1e-4, 1e-3)}
    config = {"batch_size": 4096, "optimizer": "rmsprop", "latent_dim": 99}
    assert keep(config) == {"batch_size": 4096, "optimizer": "rmsprop", "latent_dim": 99}


def test_keep_in_bounds_keeps_a_quantized_integer_axis_upper_bound():
    keep = KeepInBounds({"batch_size": tune.qrandint(64, 512, 64)})
    assert keep({"batch_size": 512})["batch_size"] == 512


# ---------------------------------------------------------------------------------------------
# PBTCheckpointPruner.needed: the checkpoints PBT may still restore a trial from


def _trial(trial_id: str, status: str = Trial.RUNNING) -> Trial:
    trial = Trial("train_autoencoder", config={"lr": 1e-3}, trial_id=trial_id, stub=True)
    trial.set_status(status)
    return trial


def _save(pruner, trials, trial, folder, epoch: int, val_mse: float) -> str:
    """The trial saves checkpoint_<epoch> (a real folder) and Tune tells the pruner."""
    path = folder / trial.trial_id / f"checkpoint_{epoch:06d}"
    path.mkdir(parents=True)
    trial.update_last_result({"training_iteration": epoch + 1, "val_mse": val_mse})
    pruner.on_checkpoint(epoch + 1, trials, trial, tune.Checkpoint(str(path)))
    return str(path)


def _will_restore(trial: Trial, path: str) -> None:
    """What Ray's PBT does on an exploit: the trial's checkpoint becomes the donor's."""
    result = _TrainingResult(checkpoint=tune.Checkpoint(path), metrics={})
    trial.run_metadata.checkpoint_manager.register_checkpoint(result)


def test_pbt_pruner_keeps_each_running_trials_last_interval_of_checkpoints(tmp_path):
    """perturbation_interval 2: each trial's last two checkpoints are needed; an older one, no
    longer the trial's best or latest, is deleted from disk."""
    pruner = PBTCheckpointPruner("val_mse", "min", perturbation_interval=2)
    a, b = _trial("a"), _trial("b")
    trials = [a, b]
    for trial in trials:
        pruner.on_trial_start(0, trials, trial)
    a_paths = [_save(pruner, trials, a, tmp_path, e, 1.0 / (e + 1)) for e in range(4)]
    b_paths = [_save(pruner, trials, b, tmp_path, 0, 0.5)]
    assert pruner.needed() == {a_paths[2], a_paths[3], b_paths[0]}
    assert [p for p in a_paths if (tmp_path / p).exists()] == a_paths[2:]


def test_pbt_pruner_window_is_at_least_one_checkpoint(tmp_path):
    pruner = PBTCheckpointPruner("val_mse", "min", perturbation_interval=0)
    a = _trial("a")
    pruner.on_trial_start(0, [a], a)
    paths = [_save(pruner, [a], a, tmp_path, e, 1.0 / (e + 1)) for e in range(3)]
    assert pruner.window == 1
    assert pruner.needed() == {paths[2]}


def test_pbt_pruner_keeps_the_checkpoint_a_waiting_clone_will_restore(tmp_path):
    """A trial PBT paused to restart from its donor's checkpoint 0 (older than the donor's
    window) still needs it; once that trial has ended it does not."""
    pruner = PBTCheckpointPruner("val_mse", "min", perturbation_interval=1)
    donor, clone = _trial("donor"), _trial("clone", Trial.PAUSED)
    trials = [donor, clone]
    pruner.on_trial_start(0, trials, donor)
    first = _save(pruner, trials, donor, tmp_path, 0, 0.9)
    _will_restore(clone, first)
    second = _save(pruner, trials, donor, tmp_path, 1, 0.5)
    assert pruner.needed() == {first, second}
    assert (tmp_path / first).exists()  # neither the donor's best nor latest: kept for the clone

    clone.set_status(Trial.TERMINATED)
    assert pruner.needed() == {second}
    clone.set_status(Trial.ERROR)
    assert pruner.needed() == {second}
    clone.set_status(Trial.PENDING)
    assert pruner.needed() == {first, second}


@pytest.mark.parametrize("end", ["on_trial_complete", "on_trial_error"])
def test_pbt_pruner_drops_an_ended_trials_recent_checkpoints(end, tmp_path):
    pruner = PBTCheckpointPruner("val_mse", "min", perturbation_interval=3)
    a, b = _trial("a"), _trial("b")
    trials = [a, b]
    for trial in trials:
        pruner.on_trial_start(0, trials, trial)
    a_paths = [_save(pruner, trials, a, tmp_path, e, 1.0 / (e + 1)) for e in range(2)]
    b_path = _save(pruner, trials, b, tmp_path, 0, 0.7)
    assert pruner.needed() == {*a_paths, b_path}

    a.set_status(Trial.ERROR if end == "on_trial_error" else Trial.TERMINATED)
    getattr(pruner, end)(3, trials, a)
    assert pruner.needed() == {b_path}


def test_pbt_pruner_deletes_an_ended_donors_checkpoint_once_its_clone_is_done(tmp_path):
    """The donor ends (not the best) while a clone waits to restore its checkpoint 0: kept then;
    once the clone has restored, trained and ended, nothing needs it and ``best`` keeps no
    checkpoint of a trial that is not the best."""
    pruner = PBTCheckpointPruner("val_mse", "min", perturbation_interval=1)
    best, donor, clone = _trial("best"), _trial("donor"), _trial("clone", Trial.PAUSED)
    trials = [best, donor, clone]
    for trial in (best, donor):
        pruner.on_trial_start(0, trials, trial)
    _save(pruner, trials, best, tmp_path, 0, 0.01)
    first = _save(pruner, trials, donor, tmp_path, 0, 0.9)
    _will_restore(clone, first)
    _save(pruner, trials, donor, tmp_path, 1, 0.5)
    for trial in (best, donor):
        trial.set_status(Trial.TERMINATED)
        pruner.on_trial_complete(2, trials, trial)
    assert [p.name for p in (tmp_path / "donor").iterdir()] == ["checkpoint_000000"]

    clone.set_status(Trial.RUNNING)
    pruner.on_trial_start(3, trials, clone)
    _save(pruner, trials, clone, tmp_path, 2, 0.4)
    clone.set_status(Trial.TERMINATED)
    pruner.on_trial_complete(3, trials, clone)
    pruner.get_state()  # Tune's final snapshot, then the end of the experiment
    pruner.on_experiment_end(trials)
    assert [p.name for p in (tmp_path / "clone").iterdir()] == []
    assert [p.name for p in (tmp_path / "donor").iterdir()] == []


# ---------------------------------------------------------------------------------------------
# with_lr_range and trial_perturbations: --lr-range and PBT's perturbation space


def test_with_lr_range_none_is_the_space_itself():
    space = ae_sweep.SPACES["report"]
    assert with_lr_range(space, None) is space


def test_with_lr_range_replaces_every_lr_axis_and_nothing_else():
    space = gan_sweep.SPACES["default"]
    out = with_lr_range(space, (1e-5, 1e-2))
    for key in ("lr_g", "lr_d"):
        axis = out[key]
        assert isinstance(axis, Float) and isinstance(axis.get_sampler(), LogUniform)
        assert (axis.lower, axis.upper) == (1e-5, 1e-2)
        assert (space[key].lower, space[key].upper) == (5e-5, 1e-3)  # the script's, unchanged
    assert {k: v for k, v in out.items() if k not in ("lr_g", "lr_d")} == {
        k: v for k, v in space.items() if k not in ("lr_g", "lr_d")
    }


def test_with_lr_range_skips_an_lr_named_choice():
    out = with_lr_range(ae_sweep.SPACES["wide"], (1e-5, 1e-1))  # lr_schedule: a tune.choice
    assert out["lr_schedule"] is ae_sweep.SPACES["wide"]["lr_schedule"]
    assert (out["lr"].lower, out["lr"].upper) == (1e-5, 1e-1)


@pytest.mark.parametrize(
    "space",
    [
        {"lr": 1e-3, "weight_decay": tune.loguniform(1e-5, 1e-3)},  # lr fixed
        {"lr": tune.choice([1e-4, 1e-3])},  # lr a choice
        {"learning_rate": tune.loguniform(1e-4, 1e-3)},  # not an lr name
    ],
)
def test_with_lr_range_on_a_space_without_an_lr_axis_is_a_usage_error(space):
    with pytest.raises(UsageError) as e:
        with_lr_range(space, (1e-5, 1e-2))
    assert str(e.value) == "--lr-range: this space has no lr axis; omit --lr-range"


def _perturbations(mutations: dict, **settings):
    """trial_perturbations of the autoencoder sweep with PERTURBATIONS['report'] = mutations."""
    spec = dataclasses.replace(ae_sweep.SWEEP, perturbations={"report": mutations})
    settings = _settings(**{"scheduler": "pbt", **settings})
    return trial_perturbations(spec, settings, autoencoder, ae_sweep.SPACES["report"])


def _gan_perturbations(mutations: dict):
    """trial_perturbations of the GAN sweep with PERTURBATIONS['default'] = mutations."""
    spec = dataclasses.replace(gan_sweep.SWEEP, perturbations={"default": mutations})
    settings = _settings(scheduler="pbt", space="default")
    return trial_perturbations(spec, settings, gan, gan_sweep.SPACES["default"])


def test_trial_perturbations_are_the_scripts_as_written():
    written = ae_sweep.PERTURBATIONS["wide"]
    spec = ae_sweep.SWEEP
    settings = _settings(scheduler="pbt", space="wide")
    out = trial_perturbations(spec, settings, autoencoder, ae_sweep.SPACES["wide"])
    assert out == written and out is not written
    assert list(out) == ["lr", "weight_decay", "batch_size"]


def test_trial_perturbations_take_the_lr_range_on_their_lr_axes():
    written = ae_sweep.PERTURBATIONS["wide"]
    settings = _settings(scheduler="pbt", space="wide", lr_range=(1e-5, 1e-1))
    out = trial_perturbations(ae_sweep.SWEEP, settings, autoencoder, ae_sweep.SPACES["wide"])
    assert (out["lr"].lower, out["lr"].upper) == (1e-5, 1e-1)
    assert isinstance(out["lr"].get_sampler(), LogUniform)
    assert out["weight_decay"] is written["weight_decay"]
    assert out["batch_size"] is written["batch_size"]
    assert (written["lr"].lower, written["lr"].upper) == (1e-4, 1e-2)


def test_trial_perturbations_without_an_lr_axis_ignore_the_lr_range():
    decay = tune.loguniform(1e-5, 1e-3)
    out = _perturbations({"weight_decay": decay, "batch_size": [64, 128]}, lr_range=(1e-5, 1e-1))
    assert out == {"weight_decay": decay, "batch_size": [64, 128]}


def test_trial_perturbations_check_an_integer_axis_up_to_its_exclusive_upper_bound():
    """``tune.randint(0, 1)`` only draws 0: as beta1 (a float in [0, 1)) it is valid; 1 is not
    checked, since randint never draws it."""
    axis = tune.randint(1, 65)
    assert _perturbations({"batch_size": axis}) == {"batch_size": axis}
    beta1 = tune.randint(0, 1)
    assert _gan_perturbations({"beta1": beta1}) == {"beta1": beta1}


def test_trial_perturbations_check_both_ends_of_a_continuous_axis():
    with pytest.raises(UsageError) as e:
        _gan_perturbations({"beta1": tune.uniform(0.0, 1.0)})
    assert str(e.value) == (
        "GANConfig.beta1=1.0 must be in [0, 1) (in PERTURBATIONS['default'] of "
        "sweeps/gan_sweep.py); fix PERTURBATIONS in sweeps/gan_sweep.py"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (tune.choice([64, 128]), "<ray.tune.search.sample.Categorical"),
        (256, "256"),
        ((64, 128), "(64, 128)"),
    ],
)
def test_trial_perturbations_refuse_an_axis_pbt_cannot_perturb(value, shown):
    with pytest.raises(UsageError) as e:
        _perturbations({"batch_size": value})
    problem, fix = str(e.value).split("; ", 1)
    assert problem.startswith(
        f"PERTURBATIONS['report']['batch_size'] in sweeps/ae_sweep.py is {shown}"
    )
    assert fix == (
        "write a continuous axis as tune.uniform/tune.loguniform and a discrete one as a plain "
        "list (PBT steps to a neighbouring value)"
    )


@pytest.mark.parametrize(
    ("mutations", "problem"),
    [
        ({"batch_size": [64, 0]}, "AutoencoderConfig.batch_size=0 must be at least 1"),
        (
            {"weight_decay": tune.uniform(-1e-3, 1e-3)},
            "AutoencoderConfig.weight_decay=-0.001 must be >= 0",
        ),
        ({"batch_size": tune.randint(0, 64)}, "AutoencoderConfig.batch_size=0 must be at least 1"),
        ({"momentom": [0.8, 0.9]}, "AutoencoderConfig: unknown key(s) ['momentom']"),
    ],
)
def test_trial_perturbations_refuse_a_value_that_is_no_valid_config(mutations, problem):
    with pytest.raises(UsageError) as e:
        _perturbations(mutations)
    assert str(e.value).startswith(problem)
    assert str(e.value).endswith(
        " (in PERTURBATIONS['report'] of sweeps/ae_sweep.py); fix PERTURBATIONS in sweeps/ae_sweep.py"
    )


# ---------------------------------------------------------------------------------------------
# resumed_database_url: the study a --resume continues, password included

MASKED = "postgresql://sweeper:***@db.example:5432/studies"
FULL = "postgresql://sweeper:s3cret@db.example:5432/studies"
OTHER = "postgresql://sweeper:s3cret@db.example:5432/elsewhere"


@pytest.fixture
def no_storage_env(monkeypatch):
    monkeypatch.delenv(STUDY_STORAGE_ENV, raising=False)
    return monkeypatch


@pytest.mark.parametrize("flag", [None, "", MASKED])  # not given again, or sweep.json's own
def test_resume_takes_the_recorded_url_when_it_has_no_password(flag, no_storage_env):
    recorded = "sqlite:////data/runs/ae_sweep/optuna.db"
    settings = _settings(study_storage=flag)
    assert resumed_database_url(settings, {"study_storage": recorded}) == recorded


def test_resume_of_a_sweep_without_a_study_has_no_url(no_storage_env):
    assert resumed_database_url(_settings(), {"study_storage": None}) == ""
    assert resumed_database_url(_settings(), {}) == ""


def test_resume_takes_the_flag_with_its_password(no_storage_env):
    no_storage_env.setenv(STUDY_STORAGE_ENV, OTHER)  # the flag wins: the variable is not read
    assert resumed_database_url(_settings(study_storage=FULL), {"study_storage": MASKED}) == FULL


@pytest.mark.parametrize("flag", [None, "", MASKED])
def test_resume_takes_the_environment_when_the_flag_is_not_given_again(flag, no_storage_env):
    no_storage_env.setenv(STUDY_STORAGE_ENV, FULL)
    assert resumed_database_url(_settings(study_storage=flag), {"study_storage": MASKED}) == FULL


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_resume_refuses_another_database(where, no_storage_env):
    if where == "environment":
        no_storage_env.setenv(STUDY_STORAGE_ENV, OTHER)
    settings = _settings(study_storage=OTHER if where == "flag" else None)
    with pytest.raises(UsageError) as e:
        resumed_database_url(settings, {"study_storage": MASKED})
    assert str(e.value) == (
        "--resume: the study storage given, postgresql://sweeper:***@db.example:5432/elsewhere, "
        f"is not the sweep's ({MASKED}); give the URL of the sweep's own database in "
        f"--study-storage or ${STUDY_STORAGE_ENV}"
    )


@pytest.mark.parametrize("env", [None, MASKED])
def test_resume_of_a_masked_url_needs_the_password(env, no_storage_env):
    if env:
        no_storage_env.setenv(STUDY_STORAGE_ENV, env)
    with pytest.raises(UsageError) as e:
        resumed_database_url(_settings(study_storage=MASKED), {"study_storage": MASKED})
    assert str(e.value) == (
        f"--resume: the sweep's study is in {MASKED}, whose password is written nowhere; set "
        f"{STUDY_STORAGE_ENV}='<the full URL>' (or pass --study-storage '<the full URL>' with "
        "--resume)"
    )


# ---------------------------------------------------------------------------------------------
# next_steps and print_summary: what a sweep prints at its end

S3 = "s3://sweeps/runs/ae_sweep?region=us-east-1&endpoint_override=127.0.0.1:9"
REPORT_WHY = "figures and an HTML report"
DASHBOARD_WHY = "the Optuna study in a browser, at http://127.0.0.1:8080"


@pytest.fixture
def venv_shell(monkeypatch):
    """The shell of a user whose PATH holds this environment (an activated venv), in the
    repository: the commands are printed with their bare names."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.chdir(REPO)


@pytest.fixture
def dashboard(monkeypatch):
    """``dashboard(installed)``: make optuna_dashboard importable, or not, whatever is installed."""

    def set_installed(installed: bool) -> None:
        module = None
        if installed:
            module = types.ModuleType("optuna_dashboard")
            module.__spec__ = importlib.machinery.ModuleSpec("optuna_dashboard", None)
        monkeypatch.setitem(sys.modules, "optuna_dashboard", module)

    return set_installed


@pytest.fixture
def wandb_key(monkeypatch, tmp_path):
    """``wandb_key(configured)``: WANDB_API_KEY set, or no key anywhere (an empty netrc)."""
    netrc = tmp_path / "empty-netrc"
    netrc.write_text("")
    monkeypatch.setenv("NETRC", str(netrc))

    def set_key(configured: bool) -> None:
        if configured:
            monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
        else:
            monkeypatch.delenv("WANDB_API_KEY", raising=False)

    return set_key


@pytest.mark.parametrize("installed", [True, False])
@pytest.mark.parametrize("scheme", ["journal", "sqlite"])
def test_next_steps_of_a_local_sweep(scheme, installed, dashboard, tmp_path, venv_shell):
    """The dashboard opens a journal given its file's path (it has no URL), and a folder written
    before the journal by its SQLite URL."""
    dashboard(installed)
    file = tmp_path / "ae_sweep" / ("optuna.journal" if scheme == "journal" else "optuna.db")
    exp, db = tmp_path / "ae_sweep", f"{scheme}:///{file}"
    install = "" if installed else "pip install optuna-dashboard && "
    shown = file if scheme == "journal" else db
    assert next_steps({"experiment": str(exp), "study_storage": db}, "online") == [
        (f"python analysis/report.py {exp}", REPORT_WHY),
        (f"{install}optuna-dashboard --host 127.0.0.1 {shown}", DASHBOARD_WHY),
    ]


def test_next_steps_of_another_database_quote_its_masked_url(dashboard, tmp_path, venv_shell):
    dashboard(False)  # no pip install for a URL whose password the user types back
    exp = tmp_path / "ae_sweep"
    assert next_steps({"experiment": str(exp), "study_storage": MASKED}, "disabled") == [
        (f"python analysis/report.py {exp}", REPORT_WHY),
        (
            f"optuna-dashboard --host 127.0.0.1 '{MASKED}'",
            "the Optuna study in a browser (put the password back where the URL shows ***)",
        ),
    ]


@pytest.mark.parametrize("key", [True, False])
def test_next_steps_upload_a_local_sweeps_offline_runs(key, wandb_key, tmp_path, venv_shell):
    wandb_key(key)
    exp = tmp_path / "ae_sweep"
    login = "" if key else "wandb login && "
    assert next_steps({"experiment": str(exp), "study_storage": None}, "offline") == [
        (f"python analysis/report.py {exp}", REPORT_WHY),
        (f"{login}wandb sync {exp}/wandb/offline-run-*", "upload the offline W&B runs"),
    ]


def test_next_steps_of_a_remote_sweep(dashboard, wandb_key, monkeypatch, tmp_path, venv_shell):
    """No report (analysis/ reads local folders); the driver's SQLite copy in the dashboard; the
    offline runs where W&B wrote them ($WANDB_DIR)."""
    dashboard(True)
    wandb_key(True)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-root"))
    db = f"sqlite:///{tmp_path / 'studies' / 'ae_sweep-1234abcd.db'}"
    assert next_steps({"experiment": S3, "study_storage": db}, "offline") == [
        (f"optuna-dashboard --host 127.0.0.1 {db}", DASHBOARD_WHY),
        (f"wandb sync {tmp_path}/wandb-root/wandb/offline-run-*", "upload the offline W&B runs"),
    ]
    assert next_steps({"experiment": S3, "study_storage": None}, "online") == []


def test_next_steps_commands_survive_a_space_in_the_folder(tmp_path, venv_shell):
    import shlex

    exp = tmp_path / "my runs" / "ae_sweep"
    command, _ = next_steps({"experiment": str(exp), "study_storage": None}, "online")[0]
    assert shlex.split(command) == ["python", "analysis/report.py", str(exp)]


def test_next_steps_spell_the_environments_own_programs_where_path_lacks_them(
    dashboard, wandb_key, monkeypatch, tmp_path
):
    """`make sweep` runs .venv/bin/python without activating the venv: the user's shell finds
    another python (or none) and no optuna-dashboard or wandb, so the steps name this
    environment's programs by path (relative to the working directory, where the user is)."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.chdir(REPO)
    dashboard(False)
    wandb_key(False)
    env = Path(os.path.relpath(Path(sys.executable).parent, REPO))
    py = os.path.relpath(sys.executable, REPO)
    exp, db = tmp_path / "ae_sweep", f"sqlite:///{tmp_path / 'ae_sweep' / 'optuna.db'}"
    assert next_steps({"experiment": str(exp), "study_storage": db}, "offline") == [
        (f"{py} analysis/report.py {exp}", REPORT_WHY),
        (
            f"{env}/pip install optuna-dashboard && {env}/optuna-dashboard --host 127.0.0.1 {db}",
            DASHBOARD_WHY,
        ),
        (
            f"{env}/wandb login && {env}/wandb sync {exp}/wandb/offline-run-*",
            "upload the offline W&B runs",
        ),
    ]
    monkeypatch.chdir(tmp_path)  # elsewhere: absolute paths
    command, _ = next_steps({"experiment": str(exp), "study_storage": None}, "online")[0]
    assert command == f"{sys.executable} {REPO}/analysis/report.py {exp}"


BEST = {
    "trial_id": "b0000001",
    "config": {"optimizer": "adam", "lr": 0.00062},
    "val": {"val_mse": 0.0123456, "training_iteration": 2},
    "test": {"test_mse": 0.0129},
    "trained_on": {"hostname": "node-1", "gpu_ids": [], "device": "cpu"},
}


def _summary(exp, **changes) -> dict:
    """A summary as results.finish returns it, and runner.run adds its wall time."""
    return {
        "experiment": str(exp),
        "study_storage": None,
        "trials": 4,
        "errored": 1,
        "diverged": 0,
        "failures": {"e0000003": ("errored", "ValueError: boom")},
        "stopped_early": 2,
        "trial_epochs": 6,
        "study_file": "optuna.db",
        "exploits": 0,
        "trial_epochs_budget": 8,
        "complete": True,
        "best": BEST,
        "wall_s": 65.4,
        **changes,
    }


def _print(capsys, summary, scheduler="asha", wandb_mode="online") -> list[str]:
    settings = _settings(num_samples=4, max_epochs=2, scheduler=scheduler)
    print_summary(ae_sweep.SWEEP, settings, summary, wandb_mode)
    return capsys.readouterr().out.splitlines()


def test_summary_of_a_complete_asha_sweep(capsys, dashboard, tmp_path, venv_shell):
    dashboard(True)
    exp = tmp_path / "ae_sweep"
    db = f"sqlite:///{exp / 'optuna.db'}"
    assert _print(capsys, _summary(exp, study_storage=db)) == [
        "ae_sweep: trial e0000003 errored: ValueError: boom",
        'ae_sweep: best trial b0000001: {"optimizer": "adam", "lr": 0.00062}',
        "ae_sweep: 4 trials, 1 errored, 0 diverged, 2 stopped early, best val_mse 0.012346, "
        "test_mse 0.0129, wall 0:01:05, 6/8 trial-epochs (75% of 4x2)",
        f"ae_sweep: results in {exp} (results.parquet, best.json, best/checkpoint.pt, optuna.db)",
        "ae_sweep: next steps:",
        f"  python analysis/report.py {exp}",
        f"      {REPORT_WHY}",
        f"  optuna-dashboard --host 127.0.0.1 {db}",
        f"      {DASHBOARD_WHY}",
    ]


def test_summary_of_an_incomplete_sweep_says_how_to_resume(capsys, tmp_path):
    exp = tmp_path / "ae_sweep"
    lines = _print(capsys, _summary(exp, complete=False, best=None, failures={}, trials=3))
    assert lines[:3] == [
        "ae_sweep: stopped before all 4 trials finished; continue with: "
        f"python sweeps/ae_sweep.py --resume {exp}",
        "ae_sweep: 3 trials, 1 errored, 0 diverged, 2 stopped early, wall 0:01:05, "
        "6/8 trial-epochs (75% of 4x2)",
        f"ae_sweep: results in {exp} (results.parquet, optuna.db)",
    ]


def test_summary_without_a_best_trial(capsys, tmp_path):
    exp = tmp_path / "ae_sweep"
    lines = _print(capsys, _summary(exp, best=None, failures={}))
    assert lines[:3] == [
        "ae_sweep: no trial finished with a finite val_mse; nothing to evaluate",
        "ae_sweep: 4 trials, 1 errored, 0 diverged, 2 stopped early, wall 0:01:05, "
        "6/8 trial-epochs (75% of 4x2)",
        f"ae_sweep: results in {exp} (results.parquet, optuna.db)",
    ]


def test_summary_lists_five_failures_and_counts_the_rest(capsys, tmp_path):
    failures = {f"t{i:07d}": ("diverged" if i % 2 else "errored", f"why {i}") for i in range(7)}
    lines = _print(capsys, _summary(tmp_path / "ae_sweep", failures=failures, diverged=3))
    assert lines[:6] == [
        "ae_sweep: trial t0000000 errored: why 0",
        "ae_sweep: trial t0000001 diverged: why 1",
        "ae_sweep: trial t0000002 errored: why 2",
        "ae_sweep: trial t0000003 diverged: why 3",
        "ae_sweep: trial t0000004 errored: why 4",
        "ae_sweep: 2 more failed; see the error column of results.parquet",
    ]
    assert lines[6].startswith("ae_sweep: best trial b0000001: ")


def test_summary_of_exactly_five_failures_has_no_more_line(capsys, tmp_path):
    failures = {f"t{i:07d}": ("errored", f"why {i}") for i in range(5)}
    lines = _print(capsys, _summary(tmp_path / "ae_sweep", failures=failures))
    assert [line for line in lines if "failed" in line or " errored: " in line] == [
        f"ae_sweep: trial t{i:07d} errored: why {i}" for i in range(5)
    ]


def test_summary_of_a_pbt_sweep_counts_exploits_and_has_no_study(
    capsys, wandb_key, tmp_path, venv_shell
):
    """PBT: exploits instead of trials stopped early; no study, so neither optuna.db nor the
    dashboard; a test metric that is not a number is left out; offline runs to upload."""
    wandb_key(True)
    exp = tmp_path / "ae_sweep"
    best = {**BEST, "test": {"test_mse": None}}
    summary = _summary(exp, best=best, study_file=None, exploits=5, trial_epochs=9, failures={})
    assert _print(capsys, summary, scheduler="pbt", wandb_mode="offline") == [
        'ae_sweep: best trial b0000001: {"optimizer": "adam", "lr": 0.00062}',
        "ae_sweep: 4 trials, 1 errored, 0 diverged, 5 PBT exploits, best val_mse 0.012346, "
        "wall 0:01:05, 9/8 trial-epochs (112% of 4x2)",
        f"ae_sweep: results in {exp} (results.parquet, best.json, best/checkpoint.pt)",
        "ae_sweep: next steps:",
        f"  python analysis/report.py {exp}",
        f"      {REPORT_WHY}",
        f"  wandb sync {exp}/wandb/offline-run-*",
        "      upload the offline W&B runs",
    ]


def test_summary_notes_trials_granted_gpus_that_trained_on_the_cpu(capsys, tmp_path):
    best = {**BEST, "trained_on": {"hostname": "node-1", "gpu_ids": [0, 2], "device": "cpu"}}
    lines = _print(capsys, _summary(tmp_path / "ae_sweep", best=best, failures={}))
    assert lines[1] == (
        "ae_sweep: note: trials were granted GPUs but trained on the CPU (torch sees no CUDA on "
        "node-1, where the best trial ran with GPU 0,2)"
    )
    best_line = json.loads(lines[0].split(": ", 2)[2])
    assert best_line == BEST["config"]


# ---------------------------------------------------------------------------------------------
# RevisingASHAScheduler: ASHA written against Tune's public TrialScheduler interface


def _asha_pair(mode: str, seed: int):
    from ray.tune.schedulers import ASHAScheduler

    from sweeps.search.schedulers import RevisingASHAScheduler

    args = dict(time_attr="training_iteration", max_t=9, grace_period=1, reduction_factor=3)
    ours = RevisingASHAScheduler(**args, revise=False)
    rays = ASHAScheduler(**args)
    for scheduler in (ours, rays):
        scheduler.set_search_properties("val_mse", mode)
    return ours, rays, np.random.default_rng(seed)


@pytest.mark.filterwarnings("ignore:All-NaN slice")
@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("seed", range(5))
def test_asha_without_revising_decides_as_rays_asha(mode, seed):
    """40 trials reporting in a random interleaving, some values NaN, some trials ending early:
    every decision (and every record at a trial's end) the same as Ray's ASHAScheduler's."""
    from ray.tune.schedulers import TrialScheduler

    ours, rays, rng = _asha_pair(mode, seed)
    trials = [Trial("train_autoencoder", trial_id=f"t{i:03d}", stub=True) for i in range(40)]
    epochs = {t.trial_id: 0 for t in trials}
    live = list(trials)
    for trial in trials:
        ours.on_trial_add(None, trial)
        rays.on_trial_add(None, trial)
    decisions, stops = 0, 0
    while live:
        trial = live[int(rng.integers(len(live)))]
        epochs[trial.trial_id] += 1
        value = float("nan") if rng.random() < 0.05 else float(rng.random())
        result = {"training_iteration": epochs[trial.trial_id], "val_mse": value}
        if rng.random() < 0.03:  # the trial ends on its own (an error, a divergence)
            ours.on_trial_complete(None, trial, result)
            rays.on_trial_complete(None, trial, result)
            live.remove(trial)
            continue
        action = ours.on_trial_result(None, trial, result)
        assert action == rays.on_trial_result(None, trial, result), (trial.trial_id, result)
        decisions += 1
        if action == TrialScheduler.STOP:
            stops += 1
            live.remove(trial)
    assert decisions > 50 and stops > 20  # both kinds of decision, many times


def test_an_asha_scheduler_pickled_as_a_subclass_of_rays_loads_with_its_rungs():
    """What an older tuner.pkl holds: the scheduler's state as Ray's ASHAScheduler kept it."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from sweeps.search.schedulers import RevisingASHAScheduler

    old = ASHAScheduler(time_attr="training_iteration", max_t=9, grace_period=1, reduction_factor=3)
    old.set_search_properties("val_mse", "min")
    a, b = (Trial("train_autoencoder", trial_id=i, stub=True) for i in "ab")
    for trial, value in ((a, 0.9), (b, 0.2)):
        old.on_trial_add(None, trial)
        old.on_trial_result(None, trial, {"training_iteration": 1, "val_mse": value})
    loaded = RevisingASHAScheduler.__new__(RevisingASHAScheduler)
    loaded.__setstate__(dict(old.__dict__))
    assert [m for m, _ in loaded.rungs] == [9, 3, 1] and loaded.rungs[-1][1] == {
        "a": -0.9,
        "b": -0.2,
    }
    assert (loaded.metric, loaded.mode, loaded.max_t, loaded.rf) == ("val_mse", "min", 9, 3)
    # a revises against the rung it passed first, unopposed
    result = {"training_iteration": 2, "val_mse": 0.8}
    assert loaded.on_trial_result(None, a, result) == TrialScheduler.STOP


@pytest.mark.parametrize("seed", range(5))
def test_asha_chooses_the_trial_fifo_would_without_scanning_every_trial(seed):
    """The trial to start: FIFO's choice (Ray's FIFOScheduler: the first PENDING trial in Tune's
    list, else the first PAUSED) for random statuses, taken from the controller's sets of
    waiting trials, so Tune's list of every trial is not read at each step of its loop."""
    from ray.tune.execution.tune_controller import TrialRunnerWrapper
    from ray.tune.schedulers import FIFOScheduler

    from sweeps.search.schedulers import RevisingASHAScheduler

    class Controller:  # the TuneController names that choose_trial_to_run reads
        def __init__(self, trials):
            self._trials, self.scans = trials, 0
            self._pending_trials = {t for t in trials if t.status == Trial.PENDING}
            self._paused_trials = {t for t in trials if t.status == Trial.PAUSED}

        def get_trials(self):
            self.scans += 1
            return self._trials

    rng = np.random.default_rng(seed)
    statuses = [Trial.PENDING, Trial.PAUSED, Trial.RUNNING, Trial.TERMINATED, Trial.ERROR]
    ours = RevisingASHAScheduler(max_t=9, grace_period=1, reduction_factor=3)
    ours.set_search_properties("val_mse", "min")
    trials = [Trial("train_autoencoder", trial_id=f"t{i:03d}", stub=True) for i in range(300)]
    for trial in trials:
        ours.on_trial_add(None, trial)
    for _ in range(50):
        weights = rng.dirichlet(np.ones(len(statuses)) * 0.3)  # often none pending or paused
        for trial in trials:
            trial.set_status(statuses[rng.choice(len(statuses), p=weights)])
        controller = Controller(trials)
        wrapped = TrialRunnerWrapper(controller, None, runner_whitelist_attr={"get_trials"})
        chosen = ours.choose_trial_to_run(wrapped)
        assert controller.scans == 0
        assert chosen is FIFOScheduler().choose_trial_to_run(wrapped)


def test_a_resumed_sweep_keeps_the_fixed_values_it_began_with():
    """A smoke sweep begun before 0.3 (batch 256 by the trainable's default, no batch_size in
    its space) resumed by this version, whose --smoke-test fixes batch_size 32: its later
    trials keep the default, as its first ones had it; searched axes and data_dir stay new."""
    from ray import tune

    from sweeps.folder.resume import recorded_space

    lr = tune.loguniform(1e-4, 1e-3)
    now = {"lr": lr, "epochs": 2, "subset": 8000, "batch_size": 32, "data_dir": "/new"}
    record = {"fixed_config": {"epochs": 2, "subset": 2000, "data_dir": "/old", "latent_dim": 16}}
    space = recorded_space(now, record)
    assert space == {"lr": lr, "epochs": 2, "subset": 2000, "data_dir": "/new", "latent_dim": 16}
    assert recorded_space(now, {}) == now  # a record without fixed_config: as given


def test_resume_may_grow_an_asha_sweep_but_not_shrink_it_nor_grow_pbt():
    from sweeps.request.cli import check_growth
    from trainables.errors import UsageError

    asha = {"args": {"num_samples": 20, "scheduler": "asha"}}
    check_growth(asha, {"resume": "runs/s", "num_samples": 40})  # grows
    check_growth(asha, {"resume": "runs/s", "num_samples": 20})  # as it was
    check_growth(asha, {"resume": "runs/s"})  # not given
    with pytest.raises(UsageError, match="has 20 trials .* can grow, not shrink"):
        check_growth(asha, {"resume": "runs/s", "num_samples": 10})
    pbt = {"args": {"num_samples": 8, "scheduler": "pbt"}}
    with pytest.raises(UsageError, match="PBT population cannot grow"):
        check_growth(pbt, {"resume": "runs/s", "num_samples": 16})


def test_an_unknown_flag_names_the_nearest_known_one(capsys):
    from sweeps import ae_sweep
    from sweeps.request import cli

    parser = cli.build_parser(ae_sweep.SWEEP)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--epochs", "3"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]  # one line
    assert "unrecognized arguments: --epochs 3; did you mean --max-epochs (for --epochs)?" in err
    with pytest.raises(SystemExit):
        parser.parse_args(["--zzz"])
    assert "did you mean" not in capsys.readouterr().err  # nothing near: the --help pointer only


def test_two_sweeps_checking_one_storage_path_at_once_do_not_delete_each_others_probe(tmp_path):
    """Two drivers started together on one --storage-path (CI saw it in the PostgreSQL test): the
    second's whole write check runs between the first's write and delete, the interleaving that
    made the first fail with 'Cannot delete file .write-test'. Each probe is its own now."""
    from sweeps.folder import storage

    class Interleaved(storage.Folder):
        nested = False

        def write_bytes(self, name, data):
            uri = super().write_bytes(name, data)
            if not Interleaved.nested:
                Interleaved.nested = True
                storage.check_writable(storage.Folder(self.uri))  # the other driver, whole
            return uri

    storage.check_writable(Interleaved(tmp_path / "runs"))
    assert Interleaved.nested
    assert list((tmp_path / "runs").iterdir()) == []  # both probes removed, nothing else left
