"""What a sweep's trials get: the train and val splits, never the test images (only the driver's
final evaluation of the best checkpoint reads those)."""

import pytest
import ray
import torch

from sweeps.fit.trainable import sweep_trainable
from trainables import autoencoder, checkpoints
from trainables.data import Splits


def _splits() -> Splits:
    def images(n, fill):
        return torch.full((n, 28, 28), fill, dtype=torch.uint8), torch.arange(n) % 10

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
        images(20, 1),
        images(10, 2),
        images(5, 3),
    )
    return Splits(train_x, train_y, val_x, val_y, test_x, test_y, source="synthetic")


def test_a_trial_gets_train_and_val_but_no_test_images():
    """The trainable Tune runs, called as Tune calls it: Ray's with_parameters hands it the
    object it was given (read from the object store in a Ray worker; here, with no Ray
    started, the object itself)."""
    assert not ray.is_initialized()
    splits, got = _splits(), {}

    def train(config, data=None, reporter=None):
        got["data"] = data

    sweep_trainable(train, "val_mse", splits, cpu=1, gpu=0)({"lr": 1e-3})
    data = got["data"]
    assert not data.has_test and data.test_x is None and data.test_y is None
    assert data.train_x is splits.train_x and data.val_x is splits.val_x  # shared, not copied
    assert data.source == splits.source
    assert splits.has_test and len(splits.test_y) == 5  # the driver keeps them for the end
    assert "test none" in data.describe()


def test_the_final_evaluation_refuses_splits_without_test_images(tmp_path):
    """Given a trial's splits by mistake, the test evaluation says so instead of scoring
    something else."""
    payload = checkpoints.checkpoint_payload(
        "autoencoder",
        autoencoder.AutoencoderConfig(latent_dim=2),
        {"latent_dim": 2},
        1,
        [],
        {"model": autoencoder.ConvAutoencoder(2).state_dict()},
    )
    checkpoints.save_checkpoint(payload, tmp_path)
    splits = _splits()
    full = autoencoder.evaluate_checkpoint(tmp_path, data=splits, device="cpu")
    assert set(full) == {"test_mse"}
    with pytest.raises(ValueError, match="no test images"):
        autoencoder.evaluate_checkpoint(tmp_path, data=splits.without_test(), device="cpu")
