"""A classifier refuses an encoder trained on another validation split (another data_seed or
val_size): that encoder has trained on the classifier's validation images. The encoder here is a
real autoencoder checkpoint, written by ``train_autoencoder`` (one epoch on a few synthetic
images: the check reads only what the checkpoint records)."""

import pytest
from synthetic import synthetic_splits

from trainables import autoencoder, checkpoints, classifier, config, reporting
from trainables.cli import main as trainable_cli


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """An autoencoder checkpoint trained with data_seed=1 and val_size=4000."""
    out = tmp_path_factory.mktemp("ae")
    config = {"epochs": 1, "latent_dim": 2, "data_seed": 1, "val_size": 4000, "device": "cpu"}
    autoencoder.train_autoencoder(
        config, synthetic_splits(), reporting.FolderReporter(out, verbose=False)
    )
    return out / "checkpoint.pt"


def _classifier(encoder, **config) -> dict:
    return {"encoder_checkpoint": str(encoder), "epochs": 1, "device": "cpu", **config}


@pytest.mark.parametrize(
    "split", [{"data_seed": 0, "val_size": 4000}, {"data_seed": 1, "val_size": 5000}]
)
def test_the_trainable_refuses_an_encoder_of_another_split_before_training(
    encoder, tmp_path, split
):
    out = tmp_path / "clf"
    reporter = reporting.FolderReporter(out, verbose=False)
    with pytest.raises(config.ConfigError) as e:
        classifier.train_classifier(_classifier(encoder, **split), synthetic_splits(), reporter)
    message = str(e.value)
    assert "data_seed=1, val_size=4000" in message  # the encoder's
    assert f"data_seed={split['data_seed']}, val_size={split['val_size']}" in message  # ours
    assert "--data-seed 1 --val-size 4000" in message  # the fix
    assert not out.exists()  # nothing trained, nothing written


def test_the_same_split_trains(encoder, tmp_path):
    config = _classifier(encoder, data_seed=1, val_size=4000)
    classifier.train_classifier(
        config, synthetic_splits(), reporting.FolderReporter(tmp_path, verbose=False)
    )
    assert checkpoints.load_checkpoint(tmp_path, classifier.KIND)["epoch"] == 1


def test_the_sweeps_check_refuses_it_without_training(encoder):
    """``check_encoder`` is what a sweep calls before Ray starts."""
    with pytest.raises(config.ConfigError, match="the encoder has seen its validation images"):
        classifier.check_encoder(encoder, data_seed=0, val_size=4000)
    assert classifier.check_encoder(encoder, data_seed=1, val_size=4000)["kind"] == "autoencoder"


def test_the_command_line_says_so_in_one_line_and_exits_2(encoder, tmp_path, capsys):
    argv = ["--encoder-checkpoint", str(encoder), "--out", str(tmp_path / "clf"), "--epochs", "1"]
    with pytest.raises(SystemExit) as e:
        trainable_cli("classifier", argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "data_seed=1, val_size=4000" in err[0] and "data_seed=0, val_size=5000" in err[0]
    assert not (tmp_path / "clf" / "checkpoint.pt").exists()
