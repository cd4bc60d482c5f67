"""Classifier sweep: maximise val_acc of the latent classifier on a trained autoencoder's encoder,
with Optuna TPE and ASHA.

    python sweeps/classifier_sweep.py --encoder-from runs/ae_sweep      # that sweep's best
    python sweeps/classifier_sweep.py --encoder-checkpoint runs/ae/checkpoint.pt
    python sweeps/classifier_sweep.py --encoder-from runs/ae_sweep --smoke-test
    python sweeps/classifier_sweep.py --smoke-test     # trains a quick encoder first (seconds)
    python sweeps/classifier_sweep.py --resume runs/classifier_sweep

Writes runs/classifier_sweep/ (see docs/sweeps.md). The encoder is frozen (the report) or
fine-tuned at lr * encoder_lr_scale; the sweep searches both. ``--smoke-test`` without an
encoder first trains a small autoencoder on the smoke sweep's own training images into
<storage-path>/<name>_encoder, so the smoke trials start from an encoder that has learned
something (a random one leaves every trial at chance, 10%).
"""

from __future__ import annotations

from ray import tune

from sweeps import runner
from sweeps.request import cli, encoder
from sweeps.request.settings import SweepSpec
from trainables import classifier
from trainables.errors import cli_errors

METRIC, MODE = "val_acc", "max"

SPACES = {
    # The head's optimiser and size, its dropout, and whether the encoder trains too.
    "default": {
        "lr": tune.loguniform(1e-4, 3e-3),
        "weight_decay": tune.loguniform(1e-6, 1e-3),
        "head_width": tune.choice([64, 128, 256, 512]),
        "dropout": tune.uniform(0.0, 0.5),
        "mode": tune.choice(["frozen", "finetune"]),
    },
}

# Configurations a sweep can try first (--warm-start NAME; --smoke-test tries the report's): the
# report's classifier (section II.B: frozen encoder, head 256, Adam at 2e-4) and our fine-tuned
# one, as `python -m trainables.classifier --preset NAME` trains them.
WARM_STARTS = {name: classifier.PRESETS[name] for name in ("report", "finetune")}

SWEEP = SweepSpec(
    kind="classifier",
    name="classifier_sweep",
    metric=METRIC,
    mode=MODE,
    spaces=SPACES,
    columns=("epoch", "train_loss", "val_loss", "val_acc"),
    defaults=dict(
        num_samples=30,
        max_epochs=30,
        grace_period=3,
        reduction_factor=3,
        max_concurrent=4,
        gpus_per_trial=0.25,
    ),
    description=__doc__,
    warm_starts=WARM_STARTS,
    smoke_config=dict(batch_size=32),
)


def main(argv: list[str] | None = None) -> dict:
    parser = cli.build_parser(SWEEP)
    group = parser.add_argument_group(
        "encoder (give one; with --smoke-test and neither, a quick one is trained first)"
    )
    group.add_argument("--encoder-checkpoint", metavar="PATH", help="an autoencoder checkpoint")
    group.add_argument(
        "--encoder-from",
        metavar="SWEEP_DIR",
        help="an autoencoder sweep's folder: use its best checkpoint (SWEEP_DIR/best.json)",
    )
    with cli_errors():
        settings = cli.parse_settings(
            SWEEP, parser, argv, resolve_extra=encoder.resolve_encoder_flags
        )
        if settings.extra["encoder_checkpoint"] is None:  # neither flag, not resuming
            if not settings.smoke_test:
                encoder.resolve_encoder(None, None)  # raises: the classifier needs an encoder
            settings = encoder.with_smoke_encoder(SWEEP, settings)
        # An encoder trained on another split has seen the classifier's validation images.
        classifier.check_encoder(
            settings.extra["encoder_checkpoint"], settings.data_seed, settings.val_size
        )
        space = {
            **SPACES[settings.space],
            "encoder_checkpoint": settings.extra["encoder_checkpoint"],
        }
        return runner.run(SWEEP, settings, space)


if __name__ == "__main__":
    raise SystemExit(runner.exit_status(main()))
