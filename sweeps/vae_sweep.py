"""VAE sweep: maximise val_elbo (the validation ELBO, nats per image) of a variational autoencoder
with the report's encoder and decoder, with Optuna TPE and ASHA, or with Population Based Training
(--scheduler pbt). Its samples from the prior are scored by FID-FM, as the GAN's are.

    python sweeps/vae_sweep.py                          # 20 trials of the default space
    python sweeps/vae_sweep.py --smoke-test             # a quick look: 8,000 images, ~1 minute
    python analysis/report.py runs/vae_sweep --compare-gan runs/gan_sweep

Writes runs/vae_sweep/ as every sweep does (docs/sweeps.md).
"""

from __future__ import annotations

from ray import tune

from sweeps import runner
from sweeps.request import cli
from sweeps.request.settings import SweepSpec
from trainables import fid, vae
from trainables.errors import cli_errors

METRIC, MODE = "val_elbo", "max"

SPACES = {
    # The optimiser's values, the weight of the KL term while training (val_elbo always weighs it
    # 1), and the latent size.
    "default": {
        "optimizer": tune.choice(["adam", "adamw"]),
        "lr": tune.loguniform(1e-4, 3e-3),
        "weight_decay": tune.loguniform(1e-6, 1e-3),
        "beta": tune.uniform(0.5, 1.5),
        "latent_dim": tune.choice([8, 16, 32]),
        "batch_size": tune.choice([64, 128, 256]),
    },
}

# What Population Based Training may change while a trial trains: the optimiser's values, the
# KL weight and the batch size, never the network.
PERTURBATIONS = {
    "default": {
        "lr": tune.loguniform(1e-4, 3e-3),
        "weight_decay": tune.loguniform(1e-6, 1e-3),
        "beta": tune.uniform(0.5, 1.5),
        "batch_size": [64, 128, 256],
    },
}

# Configurations a sweep can try first (--warm-start NAME; --smoke-test tries the first): the
# report's autoencoder optimiser on the VAE (trainables/vae.py PRESETS).
WARM_STARTS = {"report": {**vae.PRESETS["report"], "beta": 1.0, "batch_size": 128}}

SWEEP = SweepSpec(
    kind="vae",
    name="vae_sweep",
    metric=METRIC,
    mode=MODE,
    spaces=SPACES,
    columns=("epoch", "train_elbo", "val_elbo", "fid"),
    defaults=dict(
        num_samples=20,
        max_epochs=20,
        grace_period=1,
        reduction_factor=3,
        max_concurrent=4,
        gpus_per_trial=0.25,
        perturbation_interval=4,
    ),
    description=__doc__,
    perturbations=PERTURBATIONS,
    warm_starts=WARM_STARTS,
    # batches of 32 on the smoke's 8,000 images (250 steps an epoch), and FID-FM on 1,000 prior
    # samples: the full 5,000 would take most of a smoke epoch on a CPU
    smoke_config=dict(batch_size=32, fid_samples=1000),
)


def main(argv: list[str] | None = None) -> dict:
    parser = cli.build_parser(SWEEP)
    with cli_errors():
        settings = cli.parse_settings(SWEEP, parser, argv)
        fid.load_reference()  # every trial scores FID-FM: its weights checked once, here
        return runner.run(SWEEP, settings, dict(SPACES[settings.space]))


if __name__ == "__main__":
    raise SystemExit(runner.exit_status(main()))
