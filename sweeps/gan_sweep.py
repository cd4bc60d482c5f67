"""GAN sweep: minimise FID-FM of the MLP GAN's samples against validation images, with Optuna TPE
and ASHA, or with Population Based Training (--scheduler pbt). FID-FM is computed every epoch so
ASHA (and PBT) can compare trials at any epoch.

    python sweeps/gan_sweep.py --num-samples 40        # one GPU: 4 trials share it
    python sweeps/gan_sweep.py --scheduler pbt --num-samples 8 --max-concurrent 8
    python sweeps/gan_sweep.py --smoke-test
    python sweeps/gan_sweep.py --resume runs/gan_sweep

Writes runs/gan_sweep/ (see docs/sweeps.md); best.json's test metrics are FID-FM against the test
images. FID-FM is not Inception FID (docs/fid.md).
"""

from __future__ import annotations

from ray import tune

from sweeps import runner
from sweeps.request import cli
from sweeps.request.settings import SweepSpec
from sweeps.search.strategies import strategy_for
from trainables import fid, gan
from trainables.errors import cli_errors

METRIC, MODE = "fid", "min"

SPACES = {
    # Both Adam learning rates and beta1, the networks' sizes, batch size, D steps per G step and
    # the decay of the generator's weight average.
    "default": {
        "lr_g": tune.loguniform(5e-5, 1e-3),
        "lr_d": tune.loguniform(5e-5, 1e-3),
        "beta1": tune.uniform(0.0, 0.9),
        "hidden_size": tune.choice([256, 512, 784, 1024]),
        "latent_size": tune.choice([32, 64, 100, 128]),
        "batch_size": tune.choice([64, 128, 256]),
        "d_steps": tune.choice([1, 2]),
        # the generator's weight average (0: none), which FID-FM then scores (trainables/gan.py)
        "g_ema": tune.choice([0.0, 0.99, 0.999]),
        # fid_every: not here; main() sets it to the scheduler's period (fid_every below)
    },
}

# What Population Based Training may change while a trial trains (--scheduler pbt): both Adam
# learning rates, beta1, the batch size and D steps per G step, never the networks' sizes or the
# weight average's decay (a clone keeps its donor's). Axes are perturbed x0.8 or x1.2 within
# these bounds (or resampled); lists step to a neighbour.
PERTURBATIONS = {
    "default": {
        "lr_g": tune.loguniform(5e-5, 1e-3),
        "lr_d": tune.loguniform(5e-5, 1e-3),
        "beta1": tune.uniform(0.0, 0.9),
        "batch_size": [64, 128, 256],
        "d_steps": [1, 2],
    },
}

# Configurations a sweep can try first (--warm-start NAME); --smoke-test tries the first.
WARM_STARTS = {
    # The best of our 10-epoch ASHA sweep (BENCHMARKS.md, "GAN, swept at a 10-epoch budget":
    # test FID-FM 259.4, where the report's settings score 1474.6): a GAN that learns from its
    # first epoch, so the smoke test shows one (FID-FM 1469 -> 1028 over its two epochs).
    "sweep": dict(
        lr_g=9.1405e-4,
        lr_d=2.0308e-4,
        beta1=0.06306,
        hidden_size=512,
        latent_size=100,
        batch_size=64,
        d_steps=1,
        g_ema=0.999,
    ),
    # The report's GAN (section III.B: latent 100, hidden 784, Adam at 1e-4 with PyTorch's
    # beta1 0.9), as `python -m trainables.gan --preset report` trains it, its lr given to both
    # networks.
    "report": {
        **{k: v for k, v in gan.PRESETS["report"].items() if k != "lr"},
        "lr_g": gan.PRESETS["report"]["lr"],
        "lr_d": gan.PRESETS["report"]["lr"],
    },
}

SWEEP = SweepSpec(
    kind="gan",
    name="gan_sweep",
    metric=METRIC,
    mode=MODE,
    spaces=SPACES,
    columns=("epoch", "d_loss", "g_loss", "fid"),
    costs=("g_params", "epoch_seconds"),  # for --objectives
    # 40 trials x up to 60 epochs, 4 at a time on one GPU; ASHA stops most by epoch 15.
    defaults=dict(
        num_samples=40,
        max_epochs=60,
        grace_period=5,
        reduction_factor=3,
        max_concurrent=4,
        gpus_per_trial=0.25,
        perturbation_interval=5,  # PBT: every 5 epochs, like ASHA's first rung
    ),
    description=__doc__,
    perturbations=PERTURBATIONS,
    warm_starts=WARM_STARTS,
    smoke_config=dict(batch_size=32),  # 250 steps an epoch on the smoke's 8,000 images
)


def fid_every(settings) -> int:
    """Epochs between FID-FM evaluations: the scheduler's own period (``decision_period``), so
    that each of its decisions sees a fresh value and no epoch in between pays for one; a
    trial's last epoch is always evaluated. Its cost: docs/fid.md."""
    return strategy_for(settings).decision_period(settings)


def main(argv: list[str] | None = None) -> dict:
    parser = cli.build_parser(SWEEP)
    with cli_errors():
        settings = cli.parse_settings(SWEEP, parser, argv)
        # every trial needs the FID-FM weights: checked once, here (a FIDWeightsError is a
        # UsageError, which says how to restore them), as sweeps/vae_sweep.py does
        fid.load_reference()
        space = dict(SPACES[settings.space])
        space.setdefault("fid_every", fid_every(settings))
        return runner.run(SWEEP, settings, space)


if __name__ == "__main__":
    raise SystemExit(runner.exit_status(main()))
