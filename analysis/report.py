"""Figures and one HTML page from a sweep folder or a single checkpoint.

    python analysis/report.py runs/ae_sweep
    python analysis/report.py runs/ae_sweep --latent2-checkpoint runs/ae_latent2
    python analysis/report.py runs/gan_sweep --ae-checkpoint runs/ae_sweep/best
    python analysis/report.py runs/clf                      # one checkpoint: its figures only

Writes ``OUT/<figure>.png`` and ``OUT/index.html`` (default OUT: ``<input>/report``); the page
embeds every figure, so it opens from disk with no server. A figure whose input is missing (no
Optuna storage, no latent-2 run, no checkpoint, no dataset) is skipped: a line says what would
produce it and the page lists it. A path that is neither a sweep folder nor a checkpoint is an
error (one line on stderr, exit status 2). The report only reads its inputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python analysis/report.py`: import from the repo root,
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # not from analysis/ itself

import argparse  # noqa: E402
import base64  # noqa: E402
import datetime  # noqa: E402
import html  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import cached_property  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from analysis import model_figures as mf  # noqa: E402
from analysis import sweep_figures as sf  # noqa: E402
from analysis.experiment import (  # noqa: E402
    InputError,
    MissingInput,
    Sweep,
    a,
    load_checkpoint,
    open_input,
    test_metrics_beside,
    test_split,
)
from analysis.plotting import CLASSES, Figure, save  # noqa: E402
from models import ConvAutoencoder  # noqa: E402
from trainables import autoencoder, classifier, gan  # noqa: E402
from trainables.data import DeviceSplit  # noqa: E402

UNTRAINED_SEED = 0  # initialises the untrained latent-2 autoencoder
LATENT2_HINT = (
    "train one (python -m trainables.autoencoder --latent-dim 2 --out runs/ae_latent2) and pass "
    "--latent2-checkpoint runs/ae_latent2"
)


@dataclass
class Entry:
    """One figure of the report: drawn (``caption``) or skipped (``skipped`` says why)."""

    file: str
    section: str
    title: str
    caption: str = ""
    skipped: str | None = None


# A figure and what draws it: a function returning (figure, one-line caption) or raising
# MissingInput.
Job = tuple[Entry, Callable[[], tuple[Figure, str]]]


# ---------------------------------------------------------------------------------------------
# What the figures are drawn from: loaded on first use, MissingInput when absent


class Inputs:
    def __init__(self, args: argparse.Namespace, source: Sweep | Path):
        self.args = args
        self.sweep = source if isinstance(source, Sweep) else None
        self._checkpoint_file = None if self.sweep else source
        self.given_checkpoint = load_checkpoint(args.checkpoint) if args.checkpoint else None
        self.latent2 = (
            load_checkpoint(args.latent2_checkpoint, autoencoder.KIND)
            if args.latent2_checkpoint
            else None
        )
        if self.latent2 and self.latent2["model_args"]["latent_dim"] != 2:
            raise InputError(
                f"--latent2-checkpoint {args.latent2_checkpoint} has latent_dim "
                f"{self.latent2['model_args']['latent_dim']}, not 2; {LATENT2_HINT}"
            )
        self.ae = (
            load_checkpoint(args.ae_checkpoint, autoencoder.KIND) if args.ae_checkpoint else None
        )
        if self.sweep and self.given_checkpoint:
            kind = self.given_checkpoint["kind"]
            if kind != self.sweep.model:
                model = self.sweep.model
                raise InputError(
                    f"--checkpoint {args.checkpoint} is {a(kind)} checkpoint but "
                    f"{self.sweep.root} is {a(model)} sweep; pass {a(model)} checkpoint"
                )
        self.notes: list[str] = []

    @property
    def kind(self) -> str:
        if self.sweep:
            return self.sweep.model
        return self.payload["kind"]

    @cached_property
    def payload(self) -> dict[str, Any]:
        """The checkpoint the model figures are drawn from: --checkpoint, the sweep's best, or
        the checkpoint given as input."""
        if self.given_checkpoint:
            return self.given_checkpoint
        if self.sweep:
            return load_checkpoint(self.sweep.best_checkpoint(), self.sweep.model)
        return load_checkpoint(self._checkpoint_file)

    def checkpoint(self) -> dict[str, Any]:
        try:
            return self.payload
        except InputError as e:  # a best checkpoint that is there but unreadable
            raise MissingInput(str(e)) from None

    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.checkpoint()["history"])

    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        data_dir = self.args.data_dir
        if data_dir is None:  # where the checkpoint was trained from, when that still exists
            config_dir = (self.payload_or_none() or {}).get("config", {}).get("data_dir")
            data_dir = config_dir if config_dir and Path(config_dir).is_dir() else None
        return test_split(data_dir, self.args.max_test_images)

    def payload_or_none(self) -> dict[str, Any] | None:
        try:
            return self.payload
        except (MissingInput, InputError):
            return None

    @cached_property
    def autoencoder(self) -> ConvAutoencoder:
        return autoencoder.load_model(self.checkpoint()["path"])[0]

    @cached_property
    def codes(self) -> torch.Tensor:
        return mf.encode(self.autoencoder, self.test()[0])

    def latent2_model(self) -> tuple[ConvAutoencoder, str]:
        if self.latent2 is not None:
            return autoencoder.load_model(self.latent2["path"])[0], self.latent2["path"]
        try:
            payload = self.checkpoint()
        except MissingInput:
            raise MissingInput(
                f"no latent-2 autoencoder and no checkpoint; {LATENT2_HINT}"
            ) from None
        if payload["model_args"]["latent_dim"] == 2:
            return self.autoencoder, payload["path"]
        raise MissingInput(
            f"no latent-2 autoencoder (the checkpoint has latent_dim "
            f"{payload['model_args']['latent_dim']}); {LATENT2_HINT}"
        )

    @cached_property
    def confusion(self) -> np.ndarray:
        model = classifier.load_model(self.checkpoint()["path"])[0]
        x, y = self.test()
        return classifier.evaluate(model, DeviceSplit.of(x, y))["confusion"].numpy()


# ---------------------------------------------------------------------------------------------
# The figures of each kind of input


def sweep_figures(inputs: Inputs) -> list[Job]:
    sweep = inputs.sweep
    metric = sweep.metric
    best_id = (sweep.best or {}).get("trial_id")

    def history():
        fig = sf.optimization_history(sweep.study(), metric)
        return fig, f"{metric} of each completed trial and the best so far."

    def parallel():
        fig = sf.parallel_coordinate(sweep.study(), metric)
        return fig, f"Searched hyperparameters of each completed trial, coloured by {metric}."

    def importances():
        fig = sf.param_importances(sweep.study(), metric)
        return fig, f"fANOVA importance of each searched hyperparameter for {metric}."

    def curves():
        fig = sf.learning_curves(sweep.results(), metric, best_id)
        return fig, f"{metric} per epoch of every trial; a red cross where ASHA stopped it early."

    def best_curves():
        try:
            rows = sweep.results()
            rows = rows[rows["trial_id"].astype(str) == str(best_id)]
            if best_id is None or rows.empty:
                raise MissingInput("the best trial is not in results.parquet")
            source = "results.parquet"
        except MissingInput:  # the best checkpoint keeps the same history
            rows, source = inputs.history(), "the best checkpoint"
        trial = f"Best trial {best_id}" if best_id else "Best trial"
        title = f"{trial} of {sweep.name}: training and validation curves"
        fig = sf.training_curves(rows, sweep.model, title)
        return fig, f"Training and validation curves of the best trial (from {source})."

    s = "Sweep"
    return [
        (Entry("optimization_history.png", s, "Optuna optimization history (fig. 10)"), history),
        (Entry("parallel_coordinate.png", s, "Parallel-coordinate plot (fig. 11)"), parallel),
        (Entry("param_importances.png", s, "Hyperparameter importances"), importances),
        (Entry("learning_curves.png", s, "Learning curves of all trials"), curves),
        (Entry("best_trial_curves.png", s, "Best trial's curves (fig. 5)"), best_curves),
    ]


def checkpoint_curves(inputs: Inputs) -> list[Job]:
    def curves():
        payload = inputs.checkpoint()
        title = f"{payload['kind']} run {Path(payload['path']).parent.name}: training curves"
        fig = sf.training_curves(inputs.history(), payload["kind"], title)
        return fig, f"Training and validation curves over {payload['epoch']} epochs."

    return [(Entry("training_curves.png", "Training", "Training curves (fig. 5)"), curves)]


def autoencoder_figures(inputs: Inputs) -> list[Job]:
    args = inputs.args

    def recon():
        model, (x, y) = inputs.autoencoder, inputs.test()
        fig = mf.reconstructions(model, x, y)
        return fig, "One test image per class (top) and its reconstruction (bottom)."

    def trained():
        model, path = inputs.latent2_model()
        x, y = inputs.test()
        fig = mf.latent_2d(model, x, y, "Latent space of the trained latent-2 autoencoder")
        return fig, f"Test-set latent codes of the trained latent-2 autoencoder ({path})."

    def untrained():
        x, y = inputs.test()
        with torch.random.fork_rng():
            torch.manual_seed(UNTRAINED_SEED)
            model = ConvAutoencoder(latent_dim=2).eval()
        title = f"Latent space of the same network untrained (seed {UNTRAINED_SEED})"
        fig = mf.latent_2d(model, x, y, title)
        return fig, "The same latent-2 network freshly initialised: what training adds."

    def interp():
        model, (x, y) = inputs.autoencoder, inputs.test()
        start, end = args.interpolate
        fig = mf.interpolation(model, x, y, start, end, args.interpolate_steps)
        return fig, (
            f"Decoded points on the line from the {CLASSES[start]} to the {CLASSES[end]} class "
            "mean in latent space, above the nearest test image."
        )

    def pca():
        fig = mf.latent_pca(inputs.codes, inputs.test()[1])
        return fig, "PCA of the test set's latent codes, coloured by class."

    def tsne():
        fig = mf.latent_tsne(inputs.codes, inputs.test()[1], args.tsne_samples, args.seed)
        n = min(args.tsne_samples, len(inputs.codes))
        return fig, f"t-SNE of {n} test images' latent codes (fixed subsample), coloured by class."

    s = "Autoencoder"
    return [
        (Entry("reconstructions.png", s, "Originals and reconstructions"), recon),
        (Entry("latent2_trained.png", s, "Latent-2 space, trained (figs. 3, 12)"), trained),
        (Entry("latent2_untrained.png", s, "Latent-2 space, untrained (fig. 13)"), untrained),
        (Entry("interpolation.png", s, "Latent interpolation (fig. 4)"), interp),
        (Entry("latent_pca.png", s, "PCA of the latent codes (fig. 14)"), pca),
        (Entry("latent_tsne.png", s, "t-SNE of the latent codes (fig. 15)"), tsne),
    ]


def classifier_figures(inputs: Inputs) -> list[Job]:
    def confusion():
        fig = mf.confusion_matrix(inputs.confusion)
        return fig, "Confusion matrix on the test split: counts and row-normalised rates."

    def per_class():
        fig = mf.per_class_accuracy(inputs.confusion)
        return fig, "Test accuracy of each class; the dashed line is the overall accuracy."

    s = "Classifier"
    return [
        (Entry("confusion_matrix.png", s, "Confusion matrix (fig. 6)"), confusion),
        (Entry("per_class_accuracy.png", s, "Per-class accuracy"), per_class),
    ]


def gan_figures(inputs: Inputs) -> list[Job]:
    args = inputs.args

    def losses():
        fig = mf.gan_losses(inputs.history())
        return fig, "Discriminator and generator losses per epoch."

    def fid():
        test_fid = known_test_metrics(inputs).get("test_fid")
        fig = mf.gan_fid(inputs.history(), test_fid)
        return fig, "FID-FM of generated samples against validation images, per epoch."

    def samples():
        fig = mf.gan_samples(inputs.checkpoint().get("samples", {}), args.sample_grids)
        return fig, "The same fixed noise through the generator at several epochs."

    def through_ae():
        if inputs.ae is None:
            raise MissingInput(
                "no autoencoder given; pass --ae-checkpoint runs/ae_sweep/best (or any "
                "autoencoder checkpoint or sweep folder)"
            )
        payload = inputs.checkpoint()
        generator = gan.load_model(payload["path"])[0]
        cleaner = autoencoder.load_model(inputs.ae["path"])[0]
        x, _ = inputs.test()
        n = min(args.fid_samples or payload["config"]["fid_samples"], len(x))
        raw = mf.generate(generator, n, args.seed)
        cleaned = mf.decode(cleaner, mf.encode(cleaner, raw))
        scores = fid_fm_pair(inputs, raw, cleaned, x[:n])
        fig = mf.gan_through_autoencoder(raw, cleaned, *scores)
        if scores[0] == "n/a":
            scored = "FID-FM not computed (see Notes)"
        else:
            scored = f"FID-FM against {n} test images: {scores[0]} raw, {scores[1]} after it"
        caption = f"{n} generated samples beside the same samples passed through the autoencoder"
        return fig, f"{caption} {inputs.ae['path']}; {scored}."

    s = "GAN"
    return [
        (Entry("gan_losses.png", s, "Generator and discriminator losses (fig. 7)"), losses),
        (Entry("gan_fid.png", s, "FID-FM over epochs"), fid),
        (Entry("gan_samples.png", s, "Samples at several epochs (fig. 8)"), samples),
        (Entry("gan_autoencoder.png", s, "Samples through the autoencoder (fig. 9)"), through_ae),
    ]


def fid_fm_pair(inputs: Inputs, raw, cleaned, real) -> tuple[str, str]:
    """FID-FM of both sample sets against ``real`` as text; 'n/a' when FID-FM is unavailable
    (the reference weights are missing), with a note saying so."""
    from trainables import core, fid

    try:
        device = core.resolve_device(inputs.args.device)
        return tuple(f"{fid.fid_fm(s, real, device):.2f}" for s in (raw, cleaned))
    except (fid.FIDError, core.ConfigError) as e:
        inputs.notes.append(f"gan_autoencoder.png: FID-FM not computed: {e}")
        return "n/a", "n/a"


FIGURES = {
    "autoencoder": autoencoder_figures,
    "classifier": classifier_figures,
    "gan": gan_figures,
}


# ---------------------------------------------------------------------------------------------
# The HTML page


def known_test_metrics(inputs: Inputs) -> dict[str, Any]:
    if inputs.sweep and inputs.sweep.best and not inputs.given_checkpoint:
        return dict(inputs.sweep.best.get("test") or {})
    payload = inputs.payload_or_none()
    return test_metrics_beside(payload["path"]) if payload else {}


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(rows: dict[str, Any], highlight: set[str] = frozenset()) -> str:
    scalars = {k: v for k, v in rows.items() if not isinstance(v, list | dict)}
    if not scalars:
        return "<p>none</p>"
    body = "".join(
        f"<tr{' class=searched' if k in highlight else ''}><th>{html.escape(str(k))}</th>"
        f"<td>{html.escape(_format(v))}</td></tr>"
        for k, v in scalars.items()
    )
    return f"<table>{body}</table>"


def summary_html(inputs: Inputs) -> tuple[str, str]:
    """(page title, the summary section's HTML)."""
    parts = []
    test = known_test_metrics(inputs)
    if inputs.sweep:
        sweep = inputs.sweep
        best = sweep.best or {}
        title = f"{sweep.name}: {sweep.model} sweep"
        info = {
            "folder": str(sweep.root),
            "model": sweep.model,
            "metric": f"{sweep.metric} ({sweep.mode})",
            "num_samples": sweep.spec.get("num_samples"),
            "max_epochs": sweep.spec.get("max_epochs"),
            "study": f"{sweep.spec.get('study_name')} in {sweep.spec.get('study_storage')}",
            "best trial": best.get("trial_id", "none yet (no best.json)"),
        }
        try:
            results = sweep.results()
            info["trials in results.parquet"] = results["trial_id"].nunique()
            if "stopped_early" in results:
                stopped = results.groupby("trial_id")["stopped_early"].last()
                info["stopped early by ASHA"] = int(stopped.sum())
        except MissingInput:
            pass
        searched = set(sweep.spec.get("search_space") or {})
        config, val = best.get("config") or {}, best.get("val") or {}
        if inputs.given_checkpoint:
            info["figures drawn from"] = inputs.given_checkpoint["path"]
    else:
        payload = inputs.payload
        title = f"{Path(payload['path']).parent.name}: {payload['kind']} checkpoint"
        info = {"checkpoint": payload["path"], "model": payload["kind"], "epoch": payload["epoch"]}
        searched = set()
        config = payload.get("config") or {}
        val = dict(payload["history"][-1]) if payload.get("history") else {}
    parts.append("<h2>Summary</h2>" + _table(info))
    label = "Best configuration" if inputs.sweep else "Configuration"
    note = " (searched hyperparameters highlighted)" if searched else ""
    parts.append(f"<h2>{label}{note}</h2>" + _table(config, searched))
    parts.append("<h2>Validation metrics</h2>" + _table(val))
    parts.append("<h2>Test metrics</h2>" + _table(test))
    if "per_class_acc" in test:
        rows = dict(zip(CLASSES, test["per_class_acc"], strict=False))
        parts.append("<h2>Per-class test accuracy</h2>" + _table(rows))
    return title, "\n".join(parts)


CSS = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 3px 10px; text-align: left; font-size: 14px; }
th { background: #f4f4f4; font-weight: normal; }
tr.searched th, tr.searched td { background: #fff3d6; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; } .skipped { color: #8a4b00; }
"""


def write_html(out: Path, inputs: Inputs, entries: list[Entry]) -> Path:
    title, summary = summary_html(inputs)
    body = [f"<h1>{html.escape(title)}</h1>", summary]
    for section in dict.fromkeys(e.section for e in entries):
        drawn = [e for e in entries if e.section == section and not e.skipped]
        if not drawn:
            continue
        body.append(f"<h2>{html.escape(section)}</h2>")
        for e in drawn:
            data = base64.b64encode((out / e.file).read_bytes()).decode("ascii")
            body.append(
                f'<figure id="{e.file[:-4]}"><img src="data:image/png;base64,{data}" '
                f'alt="{html.escape(e.title)}"><figcaption><b>{html.escape(e.title)}.</b> '
                f'{html.escape(e.caption)} <a href="{e.file}">{e.file}</a></figcaption></figure>'
            )
    skipped = [e for e in entries if e.skipped]
    if skipped:
        body.append("<h2>Skipped figures</h2><ul>")
        body += [
            f'<li class="skipped"><b>{e.file}</b> ({html.escape(e.title)}): '
            f"{html.escape(e.skipped)}</li>"
            for e in skipped
        ]
        body.append("</ul>")
    if inputs.notes:
        body.append("<h2>Notes</h2><ul>")
        body += [f"<li>{html.escape(n)}</li>" for n in inputs.notes]
        body.append("</ul>")
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    body.append(f"<p><small>written by analysis/report.py at {stamp}</small></p>")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python analysis/report.py",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("path", help="a sweep folder (with sweep.json) or a checkpoint file/folder")
    parser.add_argument("--out", metavar="DIR", help="report folder (default: <path>/report)")
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="draw the model figures from this checkpoint, not the sweep's best",
    )
    parser.add_argument(
        "--latent2-checkpoint",
        metavar="PATH",
        help="a latent_dim=2 autoencoder for the 2-D latent figure (default: the checkpoint "
        "itself when its latent_dim is 2)",
    )
    parser.add_argument(
        "--ae-checkpoint",
        metavar="PATH",
        help="autoencoder (checkpoint or sweep folder) to pass GAN samples through",
    )
    parser.add_argument(
        "--study-storage",
        metavar="URL",
        help="Optuna storage URL to use instead of sweep.json's (whose password is masked)",
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="FashionMNIST folder (default: as in training)"
    )
    parser.add_argument(
        "--max-test-images",
        metavar="N",
        type=int,
        help="use only the first N test images (default: all)",
    )
    parser.add_argument(
        "--tsne-samples",
        metavar="N",
        type=int,
        default=2000,
        help="test images in the t-SNE subsample (default 2000)",
    )
    parser.add_argument(
        "--interpolate",
        nargs=2,
        metavar=("FROM", "TO"),
        default=["Ankle boot", "Sneaker"],
        help="the two classes (names or 0-9) of the latent interpolation (default: "
        "'Ankle boot' 'Sneaker')",
    )
    parser.add_argument(
        "--interpolate-steps",
        metavar="N",
        type=int,
        default=10,
        help="points along the interpolation (default 10)",
    )
    parser.add_argument(
        "--fid-samples",
        metavar="N",
        type=int,
        help="GAN samples scored by FID-FM (default: the checkpoint's fid_samples)",
    )
    parser.add_argument(
        "--sample-grids",
        metavar="N",
        type=int,
        default=4,
        help="epochs shown in gan_samples (default 4)",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=0,
        help="seeds the t-SNE subsample and the GAN noise (default 0)",
    )
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        default="auto",
        help="device for FID-FM: auto (default) | cpu | cuda",
    )
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.interpolate = [mf.class_index(name) for name in args.interpolate]
    except ValueError as e:
        parser.error(str(e))
    for flag in ("max_test_images", "tsne_samples", "interpolate_steps", "fid_samples"):
        value = getattr(args, flag)
        if value is not None and value < 2:
            parser.error(f"--{flag.replace('_', '-')} must be at least 2")
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    try:
        source = open_input(args.path)
        if isinstance(source, Sweep):
            source.storage_override = args.study_storage
        inputs = Inputs(args, source)
        jobs = sweep_figures(inputs) if inputs.sweep else checkpoint_curves(inputs)
        kind = inputs.kind
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    jobs += FIGURES.get(kind, lambda _: [])(inputs)
    base = inputs.sweep.root if inputs.sweep else Path(inputs.payload["path"]).parent
    out = Path(args.out) if args.out else base / "report"
    out.mkdir(parents=True, exist_ok=True)

    entries = []
    for entry, draw in jobs:
        try:
            fig, entry.caption = draw()
        except MissingInput as e:
            entry.skipped = str(e)
            print(f"skipped {entry.file}: {e}", flush=True)
        else:
            save(fig, out / entry.file)
            print(f"wrote {out / entry.file}", flush=True)
        entries.append(entry)
    for note in inputs.notes:
        print(f"note {note}", flush=True)
    page = write_html(out, inputs, entries)
    drawn = sum(not e.skipped for e in entries)
    print(f"report: {page} ({drawn} figures, {len(entries) - drawn} skipped)", flush=True)
    return page


if __name__ == "__main__":
    main()
