"""Autoencoder sweep: minimise val_mse (per-pixel MSE on [0, 1]) with Optuna TPE and ASHA, or
with Population Based Training (--scheduler pbt).

    python sweeps/ae_sweep.py                          # the report's space, 20 trials
    python sweeps/ae_sweep.py --space wide --num-samples 40
    python sweeps/ae_sweep.py --scheduler pbt --num-samples 8   # PBT over PERTURBATIONS
    python sweeps/ae_sweep.py --latent-dim 2 --name ae_sweep_2d
    python sweeps/ae_sweep.py --space latent --scheduler mo-asha --objectives val_mse:min,latent_dim:min
    python sweeps/ae_sweep.py --smoke-test             # a quick look: 8,000 images, ~20 s
    python sweeps/ae_sweep.py --resume runs/ae_sweep   # continue after a crash

Writes runs/ae_sweep/ (see docs/sweeps.md): sweep.json, optuna.journal, trial folders,
results.parquet, best.json and best/checkpoint.pt.
"""

from __future__ import annotations

from ray import tune

from sweeps import runner
from sweeps.request import cli
from sweeps.request.settings import SweepSpec
from trainables import autoencoder
from trainables.errors import cli_errors

METRIC, MODE = "val_mse", "min"

SPACES = {
    # The report's space (section I.B): Adam or SGD, lr and decay log-uniform, latent size 16.
    "report": {
        "optimizer": tune.choice(["adam", "sgd"]),
        "lr": tune.loguniform(1e-4, 1e-3),
        "weight_decay": tune.loguniform(1e-5, 1e-3),
        "latent_dim": 16,
    },
    # Wider: batch size, a tenfold larger lr range, AdamW, and a cosine schedule.
    "wide": {
        "optimizer": tune.choice(["adam", "adamw", "sgd"]),
        "lr": tune.loguniform(1e-4, 1e-2),
        "weight_decay": tune.loguniform(1e-5, 1e-3),
        "batch_size": tune.choice([64, 128, 256, 512]),
        "lr_schedule": tune.choice(["constant", "cosine"]),
        "latent_dim": 16,
    },
    # The report's question, how small the code can be for a given reconstruction: its space
    # with the latent size searched too (--objectives val_mse:min,latent_dim:min).
    "latent": {
        "optimizer": tune.choice(["adam", "sgd"]),
        "lr": tune.loguniform(1e-4, 1e-3),
        "weight_decay": tune.loguniform(1e-5, 1e-3),
        "latent_dim": tune.choice([2, 4, 8, 16, 32, 64]),
    },
}

# Configurations a sweep can try first (--warm-start NAME; --smoke-test tries the report's): the
# report's best model (section I.B), as `python -m trainables.autoencoder --preset report` trains it.
WARM_STARTS = {"report": autoencoder.PRESETS["report"]}

# What Population Based Training may change while a trial trains (--scheduler pbt), per space:
# the optimiser's values and the batch size, never the network (latent_dim) or the optimiser's
# kind. Axes are perturbed x0.8 or x1.2 within these bounds (or resampled); lists step to a
# neighbour.
PERTURBATIONS = {
    "report": {
        "lr": tune.loguniform(1e-4, 1e-3),
        "weight_decay": tune.loguniform(1e-5, 1e-3),
    },
    "wide": {
        "lr": tune.loguniform(1e-4, 1e-2),
        "weight_decay": tune.loguniform(1e-5, 1e-3),
        "batch_size": [64, 128, 256, 512],
    },
}

SWEEP = SweepSpec(
    kind="autoencoder",
    name="ae_sweep",
    metric=METRIC,
    mode=MODE,
    spaces=SPACES,
    columns=("epoch", "train_mse", "val_mse"),
    defaults=dict(
        num_samples=20,
        max_epochs=20,
        # One epoch already tells a diverging or crawling configuration from a good one; with
        # the revising ASHA this spends about a fifth of the epochs (bench/asha_economy.py).
        grace_period=1,
        reduction_factor=3,
        max_concurrent=4,
        gpus_per_trial=0.25,  # four small conv nets share a GPU
        perturbation_interval=4,  # PBT: five decisions in a 20-epoch trial
    ),
    description=__doc__,
    perturbations=PERTURBATIONS,
    warm_starts=WARM_STARTS,
    # 8,000 images in batches of 32: 500 steps in two epochs take the report's configuration
    # to val_mse 0.034 (the mean image: 0.088); batches of 256 (16 steps) learn nothing
    smoke_config=dict(batch_size=32),
    costs=("latent_dim", "params", "epoch_seconds"),  # for --objectives
)


def main(argv: list[str] | None = None) -> dict:
    parser = cli.build_parser(SWEEP)
    parser.add_argument(
        "--latent-dim",
        type=int,
        metavar="N",
        help="fix the latent size instead of 16 (2 for the figures)",
    )
    with cli_errors():
        settings = cli.parse_settings(SWEEP, parser, argv)
        space = dict(SPACES[settings.space])
        if settings.extra["latent_dim"] is not None:
            space["latent_dim"] = settings.extra["latent_dim"]
        return runner.run(SWEEP, settings, space)


if __name__ == "__main__":
    raise SystemExit(runner.exit_status(main()))
