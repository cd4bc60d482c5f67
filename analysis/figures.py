"""The report's figures: which ones each kind of input gets, what draws each, and drawing them.

Every sweep gets ``sweep_figures``, a checkpoint given alone ``checkpoint_curves``; then come
the families of figures the model kind names (``ModelKind.figures``, ``trainables/kinds.py``;
``FAMILIES`` here): a new kind of model gets every family its model can draw without a line
here. A figure is a ``Job``: its ``Entry`` (file, section,
title) and a function that draws it from the ``Inputs``, returning the figure and a one-line
caption, or raising ``MissingInput`` to have it skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from analysis import model_figures as mf
from analysis import sweep_figures as sf
from analysis.inputs import Inputs
from analysis.plotting import CLASSES, Figure, save
from analysis.sweep_folder import MissingInput
from sweeps.folder import outcome
from sweeps.folder.layout import RESULTS_FILE, SWEEP_FILE
from trainables import autoencoder, gan, sampling
from trainables.fid import FID_SPREAD_SD
from trainables.kinds import kinds, module_for

UNTRAINED_SEED = 0  # initialises the untrained latent-2 network
FRONT_PICTURES = 6  # rows of pictures along a Pareto front at most


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


def figures_for(inputs: Inputs) -> list[Job]:
    """Every figure of the report on ``inputs``, in page order."""
    jobs = sweep_figures(inputs) if inputs.sweep else checkpoint_curves(inputs)
    families = kinds()[inputs.kind].figures if inputs.kind in kinds() else ()
    for family in families:
        jobs += FAMILIES[family](inputs)
    return jobs


def draw_all(jobs: list[Job], out: Path) -> list[Entry]:
    """Draw each job into ``out/<file>``, a line each on stdout (``wrote`` or ``skipped``)."""
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
    return entries


# ---------------------------------------------------------------------------------------------
# The figures of each kind of input


def sweep_figures(inputs: Inputs) -> list[Job]:
    sweep = inputs.sweep
    metric = sweep.metric
    best_id = (sweep.best or {}).get("trial_id")

    scheduler = sweep.scheduler

    def milestones() -> list[int]:
        asha = scheduler
        if sweep.perturbed:
            raise MissingInput(f"{sweep.strategy_words} has no ASHA rungs")
        max_epochs = int(sweep.record.get("max_epochs") or 0)
        if not max_epochs or not asha.get("grace_period"):
            raise MissingInput(f"{SWEEP_FILE} names no ASHA rungs (grace_period, max_epochs)")
        return sf.rungs(int(asha["grace_period"]), float(asha["reduction_factor"]), max_epochs)

    def many() -> bool:  # thousands of trials: the large-sweep figures (sweep_figures.py)
        return sf.many_trials(len(sweep.trials()))

    def history():
        fig = sf.optimization_history(sweep.trials(), metric, sweep.mode, sweep.name)
        return fig, (
            f"{metric} of every trial at the last epoch it reached (a cross: stopped early by "
            "ASHA), and the best so far among the trials that ran all their epochs."
        )

    def parallel():
        fig = sf.parallel_coordinate(sweep.trials(), metric, sweep.mode, sweep.name)
        if many():
            return fig, (
                f"Searched hyperparameters of every trial and {metric} at its last epoch: the "
                f"best tenth by {metric} coloured by it, the others faint grey (their density "
                "shows where the sweep searched); choices spread a little so lines fan out."
            )
        return fig, (
            f"Searched hyperparameters of every trial, coloured by {metric} at its last epoch "
            "(dashed: stopped early)."
        )

    def rung_view():
        fig = sf.rung_view(sweep.trials(), metric, sweep.mode, milestones())
        if many():
            return fig, (
                f"{metric} of every trial at each rung it reached, what ASHA compared: the "
                "spread (violin) and the trials (dots) that went on and that stopped there, "
                "with their counts."
            )
        return fig, f"{metric} of every trial at each rung it reached: what ASHA compared."

    def importances():
        table = sweep.trials()
        common = int(table["epoch"].min())  # every trial reached it: with ASHA, the first rung
        fig = sf.param_importances(sweep.study(), table, metric, common)
        over = "all trials"
        if len(sf.at_epoch(table, common)) > sf.IMPORTANCE_SAMPLE:
            over = f"a seeded sample of {sf.IMPORTANCE_SAMPLE} trials"
        return fig, (
            f"fANOVA importance of each searched hyperparameter for {metric} at epoch {common}, "
            f"the last epoch every trial reached (with ASHA its first rung), over {over}."
        )

    def curves():
        results = sweep.results()
        fig = sf.learning_curves(results, metric, best_id, sweep.mode)
        if sf.many_trials(results["trial_id"].nunique()):
            return fig, (
                f"{metric} per epoch of every trial: the best tenth by {metric} at its last "
                "epoch in blue (a red cross where ASHA stopped it early), the others faint grey "
                "(a dot where each ended); below, how many trials ended at each epoch."
            )
        return fig, f"{metric} per epoch of every trial; a red cross where ASHA stopped it early."

    def best_curves():
        try:
            rows = sweep.results()
            rows = rows[rows["trial_id"].astype(str) == str(best_id)]
            if best_id is None or rows.empty:
                raise MissingInput(f"the best trial is not in {RESULTS_FILE}")
            source = RESULTS_FILE
        except MissingInput:  # the best checkpoint keeps the same history
            rows, source = inputs.history(), "the best checkpoint"
        trial = f"Best trial {best_id}" if best_id else "Best trial"
        title = f"{trial} of {sweep.name}: training and validation curves"
        fig = sf.training_curves(rows, sweep.model, title)
        return fig, f"Training and validation curves of the best trial (from {source})."

    def perturbed():
        keys = list(scheduler.get("perturbations") or {})
        fig = sf.pbt_hyperparameters(sweep.results(), keys, metric)
        return fig, (
            f"Each hyperparameter PBT perturbs ({', '.join(keys)}) and {metric}, as in force at "
            "every epoch of every trial; a triangle where a trial restarted from another trial's "
            "checkpoint with a perturbed config (dotted from the donor's value)."
        )

    def front_points() -> list[dict]:
        front = (sweep.best or {}).get("front")
        if front is None:
            raise MissingInput("a one-metric sweep has no front (sweep with --objectives)")
        if not front:
            raise MissingInput("no trial ran all its epochs with every objective finite")
        return front

    def pareto():
        front, objectives = front_points(), sweep.best["objectives"]
        y, x = objectives[0][0], objectives[1][0]
        marks = []
        if (sweep.model, y, x) == ("autoencoder", "val_mse", "latent_dim"):
            report = autoencoder.PRESETS["report"]
            label = (
                f"the report: test MSE, latent {report['latent_dim']}, {report['epochs']} epochs"
            )
            marks.append((report["latent_dim"], autoencoder.REPORT_TEST_MSE, label))
        fig = sf.pareto_front(sweep.results(), front, objectives, sweep.name, marks)
        return fig, (
            f"{y} against {x} at each trial's last epoch: the {len(front)} trials no other "
            "dominates (of those that ran all their epochs) joined in blue, with their "
            f"{outcome.test_key(y)} (hollow); the rest grey, a cross where the scheduler stopped it."
        )

    def front_pictures():
        front, x = front_points(), sweep.best["objectives"][1][0]
        shown = front[:: max(1, -(-len(front) // FRONT_PICTURES))]  # at most FRONT_PICTURES
        models = []
        for point in sorted(shown, key=lambda p: p["values"][x]):
            path = Path(str(point["checkpoint"]))
            if not path.exists():
                raise MissingInput(f"the front's checkpoint {path} is not on this machine")
            model = module_for(sweep.model).load_model(path)[0]
            label = f"{x} {point['values'][x]:g}\n{point['trial_id']}"
            models.append((label, model))
        if hasattr(models[0][1], "decode"):
            x_test, y_test = inputs.test()
            originals = x_test[mf.one_per_class(y_test)]
            rows = [(label, mf.decode(m, mf.encode(m, originals))) for label, m in models]
            return mf.front_pictures(rows, originals), (
                "One test image per class (top) and its reconstruction by trials along the "
                f"front, by {x}."
            )
        rows = [(label, mf.generate(m, 10)) for label, m in models]
        return mf.front_pictures(rows, None), (
            f"Ten samples (the same noise) of trials along the front, by {x}."
        )

    s = "Sweep"
    front_jobs = [
        (Entry("pareto_front.png", s, "Pareto front of the objectives"), pareto),
        (Entry("front_pictures.png", s, "Pictures along the front"), front_pictures),
    ]
    pbt_jobs = (
        [(Entry("pbt_hyperparameters.png", s, "PBT: hyperparameters over epochs"), perturbed)]
        if sweep.perturbed
        else []
    )
    return (
        pbt_jobs
        + [
            (
                Entry("optimization_history.png", s, "Optuna optimization history (fig. 10)"),
                history,
            ),
            (Entry("parallel_coordinate.png", s, "Parallel-coordinate plot (fig. 11)"), parallel),
            (Entry("asha_rungs.png", s, "The metric at each ASHA rung"), rung_view),
            (Entry("param_importances.png", s, "Hyperparameter importances"), importances),
            (Entry("learning_curves.png", s, "Learning curves of all trials"), curves),
            (Entry("best_trial_curves.png", s, "Best trial's curves (fig. 5)"), best_curves),
        ]
        + (front_jobs if (sweep.best or {}).get("front") is not None else [])
    )


def checkpoint_curves(inputs: Inputs) -> list[Job]:
    def curves():
        payload = inputs.checkpoint()
        title = f"{payload['kind']} run {Path(payload['path']).parent.name}: training curves"
        fig = sf.training_curves(inputs.history(), payload["kind"], title)
        return fig, f"Training and validation curves over {payload['epoch']} epochs."

    return [(Entry("training_curves.png", "Training", "Training curves (fig. 5)"), curves)]


def autoencoder_figures(inputs: Inputs) -> list[Job]:
    """Reconstructions and latent codes: an autoencoder's, or any kind whose model has
    ``encode`` and ``decode`` (a VAE's: its posterior means)."""
    args, kind = inputs.args, kinds()[inputs.kind]
    net = kind.label

    def recon():
        model, (x, y) = inputs.model, inputs.test()
        fig = mf.reconstructions(model, x, y)
        return fig, "One test image per class (top) and its reconstruction (bottom)."

    def trained():
        model, path = inputs.latent2_model()
        x, y = inputs.test()
        fig = mf.latent_2d(model, x, y, f"Latent space of the trained latent-2 {net}")
        return fig, f"Test-set latent codes of the trained latent-2 {net} ({path})."

    def untrained():
        x, y = inputs.test()
        with torch.random.fork_rng():
            torch.manual_seed(UNTRAINED_SEED)
            model = kind.build(latent_dim=2).eval()
        title = f"Latent space of the same network untrained (seed {UNTRAINED_SEED})"
        fig = mf.latent_2d(model, x, y, title)
        return fig, "The same latent-2 network freshly initialised: what training adds."

    def interp():
        model, (x, y) = inputs.model, inputs.test()
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

    s = net[0].upper() + net[1:]
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


def generator_figures(inputs: Inputs) -> list[Job]:
    """FID-FM over epochs and sample grids: a GAN's, or any kind that records ``fid`` in its
    history, ``samples`` in its checkpoints and ``test_fid`` (a VAE's, from its prior)."""
    args, kind = inputs.args, kinds()[inputs.kind]

    def fid():
        test_fid = inputs.test_metrics().get("test_fid")
        fig = mf.gan_fid(inputs.history(), test_fid, FID_SPREAD_SD)
        return fig, (
            "FID-FM of generated samples against validation images, per epoch; the error bars "
            f"are one value's spread over its seeds (sd {FID_SPREAD_SD:g}, docs/fid.md): "
            "epochs whose bars overlap are not told apart."
        )

    def samples():
        fig = mf.gan_samples(inputs.checkpoint().get("samples", {}), args.sample_grids)
        return fig, f"The same fixed noise through the {kind.label}'s generator at several epochs."

    def compare():
        if not inputs.compared_gans:
            raise MissingInput(
                "nothing to compare with; pass --compare-gan runs/gan_sweep (any GAN or VAE "
                "checkpoint or sweep folder, repeatable)"
            )
        this = inputs.folder.name + (" (best)" if inputs.sweep and not args.checkpoint else "")
        given = [(this, inputs.checkpoint(), inputs.test_metrics())]
        panels = [
            (_sample_title(name, payload, test), _last_samples(name, payload))
            for name, payload, test in given + inputs.compared_gans
        ]
        return mf.gan_sample_comparison(panels), (
            "The last sample grid of each generator (the same fixed noise, "
            f"{sampling.SAMPLE_COUNT} images each), titled with its epochs and test_fid."
        )

    s, k = kind.label, kind.name
    return [
        (Entry(f"{k}_fid.png", s, "FID-FM over epochs"), fid),
        (Entry(f"{k}_samples.png", s, "Samples at several epochs (fig. 8)"), samples),
        (Entry(f"{k}_compare.png", s, "Samples beside other generators' (--compare-gan)"), compare),
    ]


def gan_figures(inputs: Inputs) -> list[Job]:
    """What only a GAN gets: its two losses, and its samples through an autoencoder."""
    args = inputs.args

    def losses():
        fig = mf.gan_losses(inputs.history())
        return fig, "Discriminator and generator losses per epoch."

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
        (Entry("gan_autoencoder.png", s, "Samples through the autoencoder (fig. 9)"), through_ae),
    ]


def _last_samples(name: str, payload: dict) -> torch.Tensor:
    samples = payload.get("samples") or {}
    if not samples:
        raise MissingInput(f"{name}: its checkpoint holds no sample grids")
    return samples[max(samples)]


def _sample_title(name: str, payload: dict, test: dict) -> str:
    """'<name>\n<epoch> epochs, test_fid <x>' (no test_fid when none was recorded)."""
    score = f", test_fid {test['test_fid']:.1f}" if "test_fid" in test else ""
    return f"{name}\n{payload['epoch']} epochs{score}"


def fid_fm_pair(inputs: Inputs, raw, cleaned, real) -> tuple[str, str]:
    """FID-FM of both sample sets against ``real`` as text; 'n/a' when FID-FM is unavailable
    (the reference weights are missing), with a note saying so."""
    from trainables import config, devices, fid

    try:
        device = devices.resolve_device(inputs.args.device)
        return tuple(f"{fid.fid_fm(s, real, device):.2f}" for s in (raw, cleaned))
    except (fid.FIDError, config.ConfigError) as e:
        inputs.notes.append(f"gan_autoencoder.png: FID-FM not computed: {e}")
        return "n/a", "n/a"


# The families of figures a model kind can name (``ModelKind.figures``), each a function of the
# inputs giving its figures.
FAMILIES: dict[str, Callable[[Inputs], list[Job]]] = {
    "autoencoder": autoencoder_figures,
    "classifier": classifier_figures,
    "generator": generator_figures,
    "gan": gan_figures,
}
