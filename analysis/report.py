"""Figures and one HTML page from a sweep folder or a single checkpoint.

    python analysis/report.py runs/ae_sweep
    python analysis/report.py runs/ae_sweep --latent2-checkpoint runs/ae_latent2
    python analysis/report.py runs/gan_sweep --ae-checkpoint runs/ae_sweep/best
    python analysis/report.py runs/clf                      # one checkpoint: its figures only

A sweep folder in object storage (``s3://bucket/runs/ae_sweep``, ``gs://...``) is read through
pyarrow's file systems: the files the report needs are copied into ``OUT/sweep`` (default OUT:
``./<name>-report``).

Writes ``OUT/<figure>.png`` and ``OUT/index.html`` (default OUT: ``<input>/report``); the page
embeds every figure, so it opens from disk with no server. A figure whose input is missing (no
Optuna storage, no latent-2 run, no checkpoint, no dataset) is skipped: a line says what would
produce it and the page lists it. A path that is neither a sweep folder nor a checkpoint is an
error (one line on stderr, exit status 2). The report only reads its inputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import figures
from analysis.html_page import write_html
from analysis.inputs import Inputs
from analysis.model_figures import class_index
from analysis.sweep_folder import copy_remote_sweep
from sweeps.folder.layout import REPORT_DIR
from sweeps.folder.storage import Folder, is_remote
from trainables.errors import OneLineParser, cli_errors

REMOTE_COPY = "sweep"  # where a remote sweep's files are copied, inside the report folder


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python analysis/report.py",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "path",
        help="a sweep folder (with sweep.json; local, s3:// or gs://) or a checkpoint file/folder",
    )
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
        "--compare-gan",
        metavar="PATH",
        action="append",
        default=[],
        help="a GAN checkpoint or sweep folder whose last samples gan_compare.png draws beside "
        "this GAN's, with both test_fid values (repeatable)",
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
        args.interpolate = [class_index(name) for name in args.interpolate]
    except ValueError as e:
        parser.error(str(e))
    for flag in ("max_test_images", "tsne_samples", "interpolate_steps", "fid_samples"):
        value = getattr(args, flag)
        if value is not None and value < 2:
            parser.error(f"--{flag.replace('_', '-')} must be at least 2")
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    with cli_errors():
        if is_remote(args.path):  # s3:// or gs://: its files copied beside the report
            out = Path(args.out or f"{Folder(args.path).name}-{REPORT_DIR}").resolve()
            print(f"report: reading {args.path} into {out / REMOTE_COPY}", flush=True)
            args.path = str(copy_remote_sweep(args.path, out / REMOTE_COPY))
            args.out = str(out)
        inputs = Inputs.from_args(args)
        jobs = figures.figures_for(inputs)
    out = Path(args.out) if args.out else inputs.folder / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)

    entries = figures.draw_all(jobs, out)
    for note in inputs.notes:
        print(f"note {note}", flush=True)
    page = write_html(out, inputs, entries)
    drawn = sum(not e.skipped for e in entries)
    print(f"report: {page} ({drawn} figures, {len(entries) - drawn} skipped)", flush=True)
    return page


if __name__ == "__main__":
    main()
