"""The README's quick look learns: ``--smoke-test`` of each sweep, at its own defaults (8,000
images, 4 trials of up to 2 epochs, batches of 32, the first trial the script's first warm-start
configuration), trains models that are clearly better than ones that learned nothing, within
about a minute each on 2 cores.

- ``python sweeps/ae_sweep.py --smoke-test``: the best val_mse is at most half of what
  predicting the mean training image scores on the same validation images;
- ``python sweeps/classifier_sweep.py --encoder-from <that sweep> --smoke-test`` (the README's
  chain): the best val_acc is above 50% (chance is 10%);
- ``python sweeps/gan_sweep.py --smoke-test``: the best trial's FID-FM is lower at its last epoch
  than at its first.

Measured on 2 idle cores (`pytest tests/test_smoke_learns.py`): the autoencoder's best 0.0335
(the mean image 0.088), the classifier's 0.729, the GAN's 1442 -> 1261. Before these budgets
(2,000 images in batches of 256: 8 steps an epoch) the same sweeps gave 0.147, 0.099 in all four
trials, and a FID-FM that rose in every trial."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import mean_image_mse, study_of

from sweeps import ae_sweep, classifier_sweep, gan_sweep
from trainables import autoencoder, data

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

QUIET = ["--smoke-test", "--wandb-mode", "disabled"]


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke")


@pytest.fixture(scope="module")
def ae_smoke(local_ray, storage):
    summary = ae_sweep.main([*QUIET, "--storage-path", str(storage)])
    return summary, storage / "ae_sweep_smoke"


def test_autoencoder_smoke_sweep_beats_the_mean_image_twice_over(ae_smoke, real_data_dir):
    summary, exp = ae_smoke
    table = pd.read_parquet(exp / "results.parquet")
    subset = int(table["config/subset"].iloc[0])
    baseline = mean_image_mse(data.load_splits(real_data_dir, subset=subset))
    assert 0.05 < baseline < 0.15
    best = summary["best"]["val"]["val_mse"]
    assert best <= 0.5 * baseline, (
        f"best val_mse {best:.4f}, the mean image {baseline:.4f}: "
        "the smoke sweep learned next to nothing"
    )
    assert set(table["config/batch_size"]) == {32}  # the smoke budget reached the trials
    # the study's first trial is the report's configuration (--warm-start report)
    study = study_of(exp)
    report = autoencoder.PRESETS["report"]
    assert study.trials[0].params == {k: report[k] for k in ("optimizer", "lr", "weight_decay")}


def test_classifier_smoke_sweep_on_that_encoder_beats_half(ae_smoke, storage):
    _, ae_exp = ae_smoke
    summary = classifier_sweep.main(
        [*QUIET, "--storage-path", str(storage), "--encoder-from", str(ae_exp)]
    )
    best = summary["best"]["val"]["val_acc"]
    assert best > 0.5, f"best val_acc {best:.3f} on the autoencoder smoke sweep's encoder"


def test_gan_smoke_sweep_fid_falls(local_ray, storage):
    from trainables import fid

    fid.load_reference()  # the committed reference weights: a failure here is a real one
    summary = gan_sweep.main([*QUIET, "--storage-path", str(storage)])
    table = pd.read_parquet(storage / "gan_sweep_smoke" / "results.parquet")
    best = table[table["trial_id"] == summary["best"]["trial_id"]].sort_values("epoch")
    first, last = best["fid"].iloc[0], best["fid"].iloc[-1]
    assert len(best) >= 2 and last < first, (
        f"the best GAN trial's FID-FM went {first:.0f} -> {last:.0f}: it did not learn"
    )
