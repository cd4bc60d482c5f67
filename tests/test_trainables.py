"""Trainables: typed configs, checkpoints, exact resume, the frozen encoder, and each command line
run for real on a small subset of FashionMNIST."""

import dataclasses
import json
import re
import subprocess
import sys

import pytest
import torch
from test_help import run_help

from trainables import autoencoder, classifier, cli, gan, module_for
from trainables.checkpoints import (
    CheckpointError,
    checkpoint_payload,
    load_checkpoint,
    save_checkpoint,
)
from trainables.config import ConfigError
from trainables.reporting import FolderReporter


class StopAfter(FolderReporter):
    """A reporter that dies after ``n`` epochs, like a killed worker."""

    def __init__(self, out, n, resume=False):
        super().__init__(out, resume=resume, verbose=False)
        self.n = n

    def report(self, metrics, payload):
        super().report(metrics, payload)
        if metrics["epoch"] >= self.n:
            raise KeyboardInterrupt


def test_config_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(ConfigError, match="unknown key.*'lattent_dim'"):
        autoencoder.AutoencoderConfig.from_dict({"lattent_dim": 4})
    with pytest.raises(ConfigError, match="latent_dim='16' has type str"):
        autoencoder.AutoencoderConfig.from_dict({"latent_dim": "16"})
    with pytest.raises(ConfigError, match="optimizer='rmsprop'"):
        autoencoder.AutoencoderConfig.from_dict({"optimizer": "rmsprop"})
    with pytest.raises(ConfigError, match="encoder_checkpoint"):
        classifier.ClassifierConfig.from_dict({})
    import numpy as np

    cfg = gan.GANConfig.from_dict(
        {"hidden_size": np.int64(64), "lr_g": np.float32(1e-3), "lr_d": None}
    )
    assert type(cfg.hidden_size) is int and type(cfg.lr_g) is float and cfg.lr_d is None


def test_checkpoint_kind_and_corruption_are_clear(tmp_path):
    payload = checkpoint_payload("gan", gan.GANConfig(), {}, 1, [], {})
    save_checkpoint(payload, tmp_path / "g")
    with pytest.raises(CheckpointError, match="kind 'gan', but kind 'autoencoder'"):
        load_checkpoint(tmp_path / "g", "autoencoder")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "bad")
    with pytest.raises(CheckpointError, match="no checkpoint.pt"):
        load_checkpoint(tmp_path / "missing")


@pytest.mark.realdata
def test_autoencoder_resume_matches_uninterrupted_run(small_splits, tmp_path):
    """Bit-identical resume, on the CPU where this runs; on CUDA that holds only with
    deterministic=true (docs/reliability.md)."""
    config = {"epochs": 3, "latent_dim": 4, "subset": 2000, "seed": 7, "lr_schedule": "cosine"}
    autoencoder.train_autoencoder(
        config, small_splits, FolderReporter(tmp_path / "full", verbose=False)
    )
    with pytest.raises(KeyboardInterrupt):
        autoencoder.train_autoencoder(config, small_splits, StopAfter(tmp_path / "cut", 1))
    autoencoder.train_autoencoder(
        config, small_splits, FolderReporter(tmp_path / "cut", resume=True, verbose=False)
    )
    full = load_checkpoint(tmp_path / "full")
    cut = load_checkpoint(tmp_path / "cut")
    assert [m["epoch"] for m in cut["history"]] == [1, 2, 3]

    def computed(history):  # every metric but the epoch's measured wall time
        return [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in history]

    assert computed(cut["history"]) == computed(full["history"])
    assert all(m["epoch_seconds"] > 0 for m in cut["history"])
    for k, v in full["state"]["model"].items():
        assert torch.equal(v, cut["state"]["model"][k]), k
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


@pytest.mark.realdata
def test_frozen_encoder_is_bit_identical_after_training(small_splits, tmp_path):
    autoencoder.train_autoencoder(
        {"epochs": 1, "latent_dim": 4},
        small_splits,
        FolderReporter(tmp_path / "ae", verbose=False),
    )
    config = {"epochs": 2, "encoder_checkpoint": str(tmp_path / "ae"), "mode": "frozen", "lr": 1e-2}
    classifier.train_classifier(
        config, small_splits, FolderReporter(tmp_path / "clf", verbose=False)
    )
    before = load_checkpoint(tmp_path / "ae")["state"]["model"]
    after = load_checkpoint(tmp_path / "clf")["state"]["model"]
    for k, v in before.items():
        if k.startswith("encoder."):
            assert torch.equal(v, after[k]), k
    head_before = classifier.build_model(
        classifier.ClassifierConfig.from_dict(config), load_checkpoint(tmp_path / "ae")
    )
    assert any(
        not torch.equal(v, after[k])
        for k, v in head_before[0].state_dict().items()
        if k.startswith("head.")
    )
    # finetune moves the encoder
    config.update(mode="finetune", epochs=1)
    classifier.train_classifier(
        config, small_splits, FolderReporter(tmp_path / "ft", verbose=False)
    )
    tuned = load_checkpoint(tmp_path / "ft")["state"]["model"]
    assert any(not torch.equal(v, tuned[k]) for k, v in before.items() if k.startswith("encoder."))


def run_cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.realdata
@pytest.mark.slow
def test_each_command_line_trains_one_epoch_and_writes_a_loadable_checkpoint(
    real_data_dir, tmp_path
):
    ae = tmp_path / "ae"
    run_cli("trainables.autoencoder", "--epochs", "1", "--subset", "2000", "--out", str(ae))
    payload = load_checkpoint(ae, "autoencoder")
    assert payload["epoch"] == 1 and payload["config"]["subset"] == 2000
    assert 0 < json.loads((ae / "test_metrics.json").read_text())["test_mse"] < 0.2

    clf = tmp_path / "clf"
    run_cli(
        "trainables",
        "classifier",
        "--encoder-checkpoint",
        str(ae),
        "--epochs",
        "1",
        "--subset",
        "2000",
        "--out",
        str(clf),
    )
    test = json.loads((clf / "test_metrics.json").read_text())
    assert 0.1 < test["test_acc"] <= 1 and sum(map(sum, test["confusion_matrix"])) == 10000
    assert classifier.load_model(clf)[1]["encoder_source"]["path"].endswith("checkpoint.pt")

    g = tmp_path / "gan"
    run_cli(
        "trainables.gan",
        "--epochs",
        "1",
        "--subset",
        "2000",
        "--hidden-size",
        "128",
        "--fid-samples",
        "500",
        "--out",
        str(g),
    )
    generator, payload = gan.load_model(g)
    assert payload["history"][0]["fid"] > 0 and 1 in payload["samples"]
    assert payload["samples"][1].shape == (64, 28, 28)
    assert json.loads((g / "test_metrics.json").read_text())["test_fid"] > 0


@pytest.mark.slow
def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainables.classifier",
            "--encoder-checkpoint",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no checkpoint.pt" in proc.stderr


@pytest.mark.slow  # a subprocess each: seconds of torch imports
@pytest.mark.parametrize(
    "command",
    [
        ["trainables.autoencoder"],
        ["trainables.classifier"],
        ["trainables.gan"],
        ["trainables", "autoencoder"],
    ],
    ids=" ".join,
)
def test_help_describes_every_config_field(command, tmp_path):
    entries = run_help(["-m", *command], tmp_path)
    for f in dataclasses.fields(module_for(command[-1].rpartition(".")[2]).CONFIG):
        flag = "--" + f.name.replace("_", "-")
        assert flag in entries, f"{flag} missing from --help"
        described = re.sub(r"\s*\(default [^()]*\)$", "", entries[flag])
        assert described, f"{flag} has no help text: {entries[flag]!r}"


def test_the_gan_weight_average_is_scored_saved_and_resumed_exactly(tmp_path):
    """With ``g_ema`` the generator's weight average is what FID-FM scores and ``load_model``
    returns; it is in the checkpoint, so a run stopped after epoch 1 and resumed ends with the
    very average of an uninterrupted run; and after one epoch of warm-up it differs from both the
    live generator and the initial weights."""
    from tests.synthetic import synthetic_splits

    data = synthetic_splits(train=64, val=16, test=16)
    config = {"g_ema": 0.999, "hidden_size": 16, "latent_size": 4, "batch_size": 16}
    config |= {"epochs": 2, "fid_samples": 16, "device": "cpu"}
    whole = FolderReporter(tmp_path / "whole", verbose=False)
    gan.train_gan(config, data, whole)
    with pytest.raises(KeyboardInterrupt):
        gan.train_gan(config, data, StopAfter(tmp_path / "cut", 1))
    gan.train_gan(config, data, FolderReporter(tmp_path / "cut", resume=True, verbose=False))

    averaged, payload = gan.load_model(tmp_path / "whole")
    state = payload["state"]
    assert set(state) >= {"generator", "generator_ema"}
    for name, value in averaged.state_dict().items():
        assert torch.equal(value, state["generator_ema"][name])
    assert not torch.equal(
        state["generator_ema"]["net.0.weight"], state["generator"]["net.0.weight"]
    )
    torch.manual_seed(0)  # seed_epoch(cfg, 0) seeds initialisation with seed 0 * 1_000_003
    initial = gan.Generator(4, 16).state_dict()
    assert not torch.equal(state["generator_ema"]["net.0.weight"], initial["net.0.weight"])
    resumed = gan.load_model(tmp_path / "cut")[1]
    for name, value in state["generator_ema"].items():
        assert torch.equal(value, resumed["state"]["generator_ema"][name]), name
    assert [h["fid"] for h in payload["history"]] == [h["fid"] for h in resumed["history"]]
    with pytest.raises(ConfigError, match="g_ema"):
        gan.GANConfig.from_dict({"g_ema": 1.0})
    assert gan.ema_decay(gan.GANConfig(g_ema=0.999), 0) == 0.1  # warm-up: (1 + 0) / (10 + 0)
    assert gan.ema_decay(gan.GANConfig(g_ema=0.999), 10**6) == 0.999


def synthetic_data_dir(directory):
    """A folder of FashionMNIST-shaped IDX files of seeded random pixels (64 training, 20 test
    images), for a command line that must run but need not learn."""
    from test_data import write_dataset

    directory.mkdir()
    return write_dataset(directory, n_train=64, n_test=20)


# Each kind's first run (the report's preset, shrunk to one cheap epoch) and what --resume must
# keep of it: the preset's optimiser settings, not the config's defaults.
RESUMED = {
    "autoencoder": (
        ["--epochs", "1", "--batch-size", "16"],
        {"latent_dim": 16, "lr": 0.00099, "weight_decay": 3.5237e-5},
        ("optimizer",),
    ),
    "gan": (
        ["--epochs", "1", "--batch-size", "16", "--hidden-size", "32", "--fid-samples", "16"],
        {"latent_size": 100, "lr": 1e-4, "beta1": 0.9, "hidden_size": 32},
        ("opt_g", "opt_d"),
    ),
}


@pytest.mark.parametrize("kind", sorted(RESUMED))
def test_a_resumed_command_line_run_keeps_its_config(kind, tmp_path, capsys):
    """``python -m trainables.<kind> --resume`` continues with the config in the checkpoint (a
    preset run keeps the preset's lr and weight decay), applies the flags given over it, and
    says in one line what they changed."""
    data_dir = synthetic_data_dir(tmp_path / "data")
    out = tmp_path / kind
    common = ["--out", str(out), "--data-dir", str(data_dir), "--val-size", "16", "--no-test"]
    first, kept, optimizers = RESUMED[kind]
    cli.main(kind, ["--preset", "report", *first, *common])
    capsys.readouterr()

    cli.main(kind, ["--resume", "--epochs", "2", *common])
    said = capsys.readouterr().out.splitlines()[0]
    assert said == f"{kind}: resuming {out} from epoch 1; overridden: epochs 1 -> 2"
    payload = load_checkpoint(out, kind)
    assert payload["epoch"] == 2 and payload["config"]["epochs"] == 2
    assert {k: payload["config"][k] for k in kept} == kept

    cli.main(kind, ["--resume", "--epochs", "3", "--lr", "5e-4", *common])
    said = capsys.readouterr().out.splitlines()[0]
    overridden = f"epochs 2 -> 3, lr {kept['lr']} -> 0.0005"
    assert said == f"{kind}: resuming {out} from epoch 2; overridden: {overridden}"
    payload = load_checkpoint(out, kind)
    assert payload["config"] == {**payload["config"], **kept, "lr": 5e-4, "epochs": 3}
    for name in optimizers:  # the GAN's lr_g and lr_d are None: lr sets both
        (group,) = payload["state"][name]["param_groups"]
        assert group["base_lr"] == pytest.approx(5e-4)
    assert [m["epoch"] for m in payload["history"]] == [1, 2, 3]


def test_a_resume_refuses_what_the_checkpoint_fixes_in_one_line(tmp_path, capsys):
    """A model-shape key (or the optimiser) given another value on --resume is one line naming
    the key and the fix, before anything trains; so is --resume without a checkpoint."""
    data_dir = synthetic_data_dir(tmp_path / "data")
    out = tmp_path / "ae"
    common = ["--out", str(out), "--data-dir", str(data_dir), "--val-size", "16", "--no-test"]

    def error_of(*argv):
        with pytest.raises(SystemExit) as e:
            cli.main("autoencoder", [*argv, *common])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    assert "checkpoint.pt does not exist; run without --resume first" in error_of("--resume")
    cli.main("autoencoder", ["--epochs", "1", "--latent-dim", "4", *common])
    err = error_of("--resume", "--latent-dim", "8")
    assert (
        "--latent-dim 8" in err and "latent_dim=4" in err and "resume without --latent-dim" in err
    )
    err = error_of("--resume", "--preset", "report")  # the preset's latent_dim is 16
    assert "--preset report sets latent_dim=16" in err and "resume without --preset" in err
    err = error_of("--resume", "--optimizer", "sgd")
    assert "optimizer='adam'" in err and "resume without --optimizer" in err
    assert load_checkpoint(out)["epoch"] == 1
    with pytest.raises(SystemExit):
        cli.main("gan", ["--resume", *common])
    assert "kind 'autoencoder' cannot resume a 'gan' run" in capsys.readouterr().err
