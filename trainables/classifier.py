"""Ray Tune trainable for the report's classifier on top of a trained autoencoder's encoder.

    python -m trainables.classifier --encoder-checkpoint runs/ae --preset report --out runs/clf
    python -m trainables.classifier --encoder-checkpoint runs/ae --mode finetune --out runs/clf_ft

``mode=frozen`` (the report) trains only the head; since a frozen encoder is a fixed function,
its latent codes are computed once per trial and the head trains on them (same result, much
faster). ``mode=finetune`` trains the encoder too, at ``lr * encoder_lr_scale``.
Each epoch reports ``train_loss``, ``val_loss`` (NLL) and ``val_acc``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from models import Encoder, LatentClassifier
from models.classifier import MODES
from trainables import checkpoints, training
from trainables.config import ConfigError, TrainConfig, check_field, param
from trainables.data import DeviceSplit, Splits
from trainables.kinds import ModelKind, kinds
from trainables.optim import make_optimizer

KIND = "classifier"
MODEL_KIND = ModelKind(
    KIND,
    curves=(("NLL loss", ("train_loss", "val_loss")), ("accuracy", ("val_acc",))),
    figures=("classifier",),
)


@dataclass
class ClassifierConfig(TrainConfig):
    encoder_checkpoint: str = param(
        "", "autoencoder or VAE checkpoint (file or folder) whose encoder is used"
    )
    mode: str = param(
        "frozen",
        "frozen or finetune encoder: frozen (the report: encoder untouched) | finetune "
        "(encoder trains too)",
    )
    head_width: int = param(256, "head is latent -> w -> w -> w/2 -> 10 (the report: 256)")
    dropout: float = param(0.0, "dropout after each hidden layer of the head")
    encoder_lr_scale: float = param(0.1, "finetune only: encoder lr = lr * this")
    epochs: int = param(20, "epochs to train; ASHA may stop a trial earlier")
    batch_size: int = param(256, "images per optimiser step")
    lr: float = param(2e-4, "learning rate of the head per step of batch_size images")
    weight_decay: float = param(1e-5, "L2 penalty inside Adam")

    FIXED_ON_RESUME: ClassVar[tuple[str, ...]] = (
        *TrainConfig.FIXED_ON_RESUME,
        "mode",
        "head_width",
    )

    def validate(self) -> None:
        super().validate()
        check_field(
            self,
            bool(self.encoder_checkpoint),
            "encoder_checkpoint",
            "is required (an autoencoder checkpoint)",
        )
        check_field(self, self.mode in MODES, "mode", f"must be one of {MODES}")
        check_field(self, self.head_width >= 2, "head_width", "must be at least 2")
        check_field(self, 0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        check_field(self, self.encoder_lr_scale > 0, "encoder_lr_scale", "must be positive")


# The report's section II.B: Adam, lr 2e-4, weight decay 1e-5, 100 epochs, frozen encoder.
PRESETS = {
    "report": dict(
        mode="frozen", optimizer="adam", lr=2e-4, weight_decay=1e-5, epochs=100, head_width=256
    ),
    "finetune": dict(
        mode="finetune",
        optimizer="adam",
        lr=1e-3,
        weight_decay=1e-5,
        epochs=30,
        encoder_lr_scale=0.3,
    ),
}


def check_encoder_split(encoder_payload: dict[str, Any], data_seed: int, val_size: int) -> None:
    """Refuse (ConfigError) an encoder trained with another validation split than
    ``data_seed``/``val_size``: its training images would include this classifier's validation
    images, and val_acc would then flatter it. (``subset`` may differ: a subset is drawn from
    the training images of the same split.)"""
    trained = encoder_payload.get("config", {})
    seed, size = trained.get("data_seed"), trained.get("val_size")
    if (seed, size) != (data_seed, val_size):
        raise ConfigError(
            f"{encoder_payload.get('path', 'the encoder checkpoint')}: the encoder was trained "
            f"with data_seed={seed}, val_size={size}, this classifier uses data_seed={data_seed}, "
            f"val_size={val_size}, so the encoder has seen its "
            f"validation images; use --data-seed {seed} --val-size {size} (the encoder's "
            f"split) or an encoder trained with data_seed={data_seed}, val_size={val_size}",
            key="data_seed" if seed != data_seed else "val_size",
        )


def encoder_payload(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at ``path`` of a kind whose model has an encoder of the report's shape
    (``ModelKind.encoder``: an autoencoder's or a VAE's); CheckpointError if it is missing or of
    another kind."""
    payload = checkpoints.load_checkpoint(path)
    with_encoder = [name for name, kind in kinds().items() if kind.encoder]
    if payload["kind"] not in with_encoder:
        raise checkpoints.CheckpointError(
            f"{payload['path']}: checkpoint of kind '{payload['kind']}', whose model has no encoder",
            f"pass a checkpoint of one of: {', '.join(with_encoder)}",
        )
    return payload


def check_encoder(path: str | os.PathLike, data_seed: int, val_size: int) -> dict[str, Any]:
    """The encoder's checkpoint at ``path`` (``encoder_payload``), refused by
    ``check_encoder_split`` if trained on another validation split. A sweep calls this before
    Ray starts; every trial checks again when it loads the encoder."""
    payload = encoder_payload(path)
    check_encoder_split(payload, data_seed, val_size)
    return payload


def check_inputs(cfg: ClassifierConfig) -> None:
    """What a run needs beyond its config, checked before it writes anything: its encoder."""
    check_encoder(cfg.encoder_checkpoint, cfg.data_seed, cfg.val_size)


def build_model(
    cfg: ClassifierConfig, encoder_payload: dict[str, Any]
) -> tuple[LatentClassifier, dict[str, Any]]:
    net = kinds()[encoder_payload["kind"]].build(**encoder_payload["model_args"])
    net.load_state_dict(encoder_payload["state"]["model"])
    model_args = model_args_for(cfg, encoder_payload)
    return _from_args(net.encoder, model_args), model_args


def model_args_for(cfg: ClassifierConfig, encoder_payload: dict[str, Any]) -> dict[str, Any]:
    """The classifier's model arguments: the encoder's latent size, and the head ``cfg`` sets."""
    return {
        "latent_dim": encoder_payload["model_args"]["latent_dim"],
        "hidden_sizes": [cfg.head_width, cfg.head_width, cfg.head_width // 2],
        "dropout": cfg.dropout,
        "mode": cfg.mode,
    }


def _from_args(encoder, model_args: dict[str, Any]) -> LatentClassifier:
    return LatentClassifier(
        encoder,
        latent_dim=model_args["latent_dim"],
        hidden_sizes=tuple(model_args["hidden_sizes"]),
        dropout=model_args["dropout"],
        mode=model_args["mode"],
    )


@torch.no_grad()
def encode_split(encoder, data: DeviceSplit, batch_size: int = 2000) -> DeviceSplit:
    """Latent codes of a whole split, once (valid because a frozen encoder never changes)."""
    encoder.eval()
    codes = torch.cat([encoder(x) for x, _ in data.batches(batch_size, shuffle=False)])
    return DeviceSplit.of(codes, data.y)


def classification_loss(net, x, y):
    return F.nll_loss(net(x).float(), y)


def train_epoch(net, optimizer, data: DeviceSplit, cfg, generator, device) -> float:
    """One epoch; ``net`` is the whole classifier, or only its head when ``data`` holds codes."""
    return training.train_epoch(net, optimizer, data, cfg, generator, device, classification_loss)


@torch.no_grad()
def evaluate(net, data: DeviceSplit, batch_size: int = 2000) -> dict[str, Any]:
    """Mean NLL, accuracy and the 10x10 confusion matrix (rows: true class) over a split."""
    net.eval()
    loss = torch.zeros((), device=data.device)
    confusion = torch.zeros(10, 10, dtype=torch.long, device=data.device)
    for x, y in data.batches(batch_size, shuffle=False):
        logp = net(x).float()
        loss += F.nll_loss(logp, y, reduction="sum")
        confusion += torch.bincount(y * 10 + logp.argmax(1), minlength=100).view(10, 10)
    n = len(data)
    return {
        "loss": (loss / n).item(),
        "acc": (confusion.diag().sum() / n).item(),
        "confusion": confusion.cpu(),
    }


def train_classifier(config: dict[str, Any], data: Splits | None = None, reporter=None) -> None:
    cfg = ClassifierConfig.from_dict(config)
    encoder_payload = check_encoder(cfg.encoder_checkpoint, cfg.data_seed, cfg.val_size)
    run = training.start(KIND, cfg, data, reporter)

    def build() -> dict[str, Any]:
        model = build_model(cfg, encoder_payload)[0].to(run.device)
        if cfg.mode == "frozen":
            params = model.head.parameters()
        else:
            params = [
                {"params": model.head.parameters()},
                {"params": model.encoder.parameters(), "lr": cfg.lr * cfg.encoder_lr_scale},
            ]
        return {"model": model, "optimizer": make_optimizer(cfg, params)}

    modules, restored = training.initialise(run, build)
    model, optimizer = modules["model"], modules["optimizer"]
    net, train, val = model, run.train, run.val
    if cfg.mode == "frozen":  # only the head trains, on the codes of the (restored) encoder
        net = model.head
        train, val = encode_split(model.encoder, train), encode_split(model.encoder, val)

    def one_epoch(epoch: int, generator, history) -> dict[str, float]:
        train_loss = train_epoch(net, optimizer, train, cfg, generator, run.device)
        ev = evaluate(net, val)
        return {"train_loss": train_loss, "val_loss": ev["loss"], "val_acc": ev["acc"]}

    source = {"path": encoder_payload["path"], "epoch": encoder_payload["epoch"]}
    model_args = model_args_for(cfg, encoder_payload)
    training.run_epochs(run, modules, restored, model_args, one_epoch, encoder_source=source)


CONFIG = ClassifierConfig
TRAINABLE = train_classifier


def load_model(path, map_location="cpu") -> tuple[LatentClassifier, dict[str, Any]]:
    """The trained classifier (encoder and head) in a checkpoint, in eval mode, with the payload."""

    def build(model_args: dict[str, Any]) -> LatentClassifier:
        return _from_args(Encoder(model_args["latent_dim"]), model_args)

    return checkpoints.load_model(path, KIND, build, "model", map_location)


def score_test(model, test: DeviceSplit, cfg=None) -> dict[str, Any]:
    """``evaluate_checkpoint``'s metrics of ``model`` on the test split (``cfg`` is not needed)."""
    ev = evaluate(model, test)
    confusion = ev["confusion"]
    per_class = (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist()
    return {
        "test_acc": ev["acc"],
        "test_loss": ev["loss"],
        "confusion_matrix": confusion.tolist(),
        "per_class_acc": per_class,
    }


def evaluate_checkpoint(path, data: Splits | None = None, device: str = "auto") -> dict[str, Any]:
    """Test accuracy, loss, confusion matrix and per-class accuracy: the only use of the test set."""
    return checkpoints.evaluate_checkpoint(path, load_model, CONFIG, score_test, data, device)


if __name__ == "__main__":
    from trainables.cli import main

    main(KIND)
