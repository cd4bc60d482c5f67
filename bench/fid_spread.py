"""How much one FID-FM value moves with its seeds, and how far ``fid`` (validation images) sits from
``test_fid`` (test images) for the same generator (docs/fid.md, "How noisy is one value").

    python bench/fid_spread.py                       # 3 epochs of each config, 5 seeds
    python bench/fid_spread.py --epochs 2 --seeds 3 --json runs/fid_spread.json
    python bench/fid_spread.py --epochs 0 --checkpoint runs/gan_sweep/best   # a trained generator

Generators: one untrained (the default GAN's networks, ``torch.manual_seed(0)``) and, after each
of ``--epochs`` epochs on all 55,000 training images, the default config's (lr 2e-4, beta1 0.5)
and the report's settings' (``--preset report``) generator (``--epochs 0``: none), and the generator
of each ``--checkpoint`` (a GAN checkpoint or folder; its weight average if it has one). For every generator and each of
``--seeds`` noise seeds (the first is ``FID_SEED``, what sweeps use) the 5,000 generated images'
FID-FM statistics are computed once and compared with:

  test     5,000 test images, seeded by the same list of seeds (the first: ``test_fid``'s);
  val      the 5,000 validation images (all of them: ``fid`` during a sweep);

giving, for the untrained, the last trained default and each checkpoint's generator, the spread over noise seeds
(real side fixed), over real-sample seeds (noise fixed) and over both; the floor (5,000 training
images against 5,000 test images, over the seeds) and the ceiling (5,000 uniform-noise images
against the test images); and for every generator ``fid`` - ``test_fid`` at the standard seed,
with whether ordering the generators by ``fid`` gives the same order as by ``test_fid``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch

from models import Generator
from trainables import fid, gan
from trainables.data import load_splits


class EpochGenerators:
    """A reporter for ``train_gan`` that keeps a copy of the generator after every epoch."""

    def __init__(self) -> None:
        self.states: list[dict] = []

    def restore(self) -> None:
        return None

    def report(self, metrics: dict, payload: dict) -> None:
        self.states.append(copy.deepcopy(payload["state"]["generator"]))


def spread(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "range": max(values) - min(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=3, help="training epochs per config (%(default)s)")
    p.add_argument("--seeds", type=int, default=5, help="noise and real-sample seeds (%(default)s)")
    p.add_argument("--data-dir", default=None, help="FashionMNIST folder (default: found)")
    p.add_argument("--subset", type=int, default=None, help="training images (a quick check)")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="also measure the generator of this GAN checkpoint (repeatable)",
    )
    args = p.parse_args()
    t0 = time.time()
    data = load_splits(args.data_dir, subset=args.subset)
    n = fid.FID_SAMPLES
    seeds = [fid.FID_SEED + k for k in range(args.seeds)]
    latent, hidden = gan.GANConfig.latent_size, gan.GANConfig.hidden_size

    generators: dict[str, torch.nn.Module] = {}
    torch.manual_seed(0)
    generators["untrained"] = Generator(latent, hidden)
    train_seconds = {}
    for name, overrides in (("default", {}), ("report", gan.PRESETS["report"])):
        if args.epochs == 0:
            break
        cfg = {**overrides, "epochs": args.epochs, "fid_every": 10**6, "sample_every": 10**6}
        keep = EpochGenerators()
        start = time.time()
        gan.train_gan(cfg, data, keep)
        train_seconds[name] = time.time() - start
        for epoch, state in enumerate(keep.states, 1):
            g = Generator(latent, hidden)
            g.load_state_dict(state)
            generators[f"{name}@{epoch}"] = g
        print(f"trained {name}: {args.epochs} epochs in {train_seconds[name]:.0f} s", flush=True)
    checkpoints = []  # the names of the --checkpoint generators
    for path in args.checkpoint:
        g, payload = gan.load_model(path)
        name = f"checkpoint@{payload['epoch']}:{path}"
        generators[name] = g
        checkpoints.append(name)

    start = time.time()
    test = {s: fid.real_stats(data.test_x, n=n, seed=s) for s in seeds}
    val = fid.real_stats(data.val_x, n=n)  # the whole 5,000-image validation split
    train = {s: fid.real_stats(data.train_x, n=n, seed=s) for s in seeds}
    fake = {
        (name, s): fid.generator_stats(g, g.latent_size, n, seed=s)
        for name, g in generators.items()
        for s in seeds
    }
    eval_seconds = time.time() - start
    std = fid.FID_SEED

    def d(a, b) -> float:
        return fid.frechet_distance(*a, *b)

    last = f"default@{args.epochs}"
    measured = ["untrained", *([last] if args.epochs else []), *checkpoints]
    out: dict = {"epochs": args.epochs, "seeds": seeds, "samples": n, "measured": measured}
    for name in measured:
        out[name] = {
            "noise_seeds": spread([d(fake[name, s], test[std]) for s in seeds]),
            "real_seeds": spread([d(fake[name, std], test[s]) for s in seeds]),
            "both": spread([d(fake[name, s], test[s]) for s in seeds]),
        }
    out["floor_train_vs_test"] = spread([d(train[s], test[s]) for s in seeds])
    out["floor_val_vs_test"] = spread([d(val, test[s]) for s in seeds])
    gen = torch.Generator().manual_seed(std)
    uniform = torch.rand(n, 1, 28, 28, generator=gen)
    out["ceiling_uniform_noise"] = d(
        fid.activation_stats(fid.features(uniform, fid.load_reference())), test[std]
    )
    rows = {
        name: {"fid": d(fake[name, std], val), "test_fid": d(fake[name, std], test[std])}
        for name in generators
    }
    for r in rows.values():
        r["offset"] = r["fid"] - r["test_fid"]
    out["generators"] = rows
    by_fid = sorted(rows, key=lambda k: rows[k]["fid"])
    by_test = sorted(rows, key=lambda k: rows[k]["test_fid"])
    out["same_order"] = by_fid == by_test
    out["order_by_fid"], out["order_by_test_fid"] = by_fid, by_test
    # Orders of pairs closer than the spread over both seeds decide nothing: count them.
    noise = max(out[name]["both"]["range"] for name in measured)
    out["pairs_within_spread"] = sum(
        abs(rows[a]["test_fid"] - rows[b]["test_fid"]) < noise
        for i, a in enumerate(by_test)
        for b in by_test[i + 1 :]
    )
    out["train_seconds"], out["eval_seconds"] = train_seconds, eval_seconds
    out["fid_eval_seconds_each"] = eval_seconds / (len(fake) + 2 * len(seeds) + 1)
    out["wall_seconds"] = time.time() - t0
    out["threads"] = torch.get_num_threads()
    out["load_average"] = os.getloadavg()

    print(f"\nFID-FM spread over {len(seeds)} seeds, {n} samples a side (median [min, max], sd)")
    for name in measured:
        for kind in ("noise_seeds", "real_seeds", "both"):
            s = out[name][kind]
            print(
                f"  {name:12s} {kind:12s} {s['median']:9.2f} [{s['min']:.2f}, {s['max']:.2f}] sd {s['sd']:.2f}"
            )
    for kind in ("floor_train_vs_test", "floor_val_vs_test"):
        s = out[kind]
        print(f"  {kind:25s} {s['median']:9.2f} [{s['min']:.2f}, {s['max']:.2f}]")
    print(f"  ceiling (uniform noise)   {out['ceiling_uniform_noise']:9.2f}")
    print("\nfid (val) - test_fid (test), standard seeds")
    for name in by_test:
        r = rows[name]
        print(
            f"  {name:12s} fid {r['fid']:9.2f}  test_fid {r['test_fid']:9.2f}  offset {r['offset']:+.2f}"
        )
    print(
        f"same order by fid and by test_fid: {out['same_order']}; "
        f"pairs closer than the spread: {out['pairs_within_spread']}"
    )
    print(
        f"one FID-FM evaluation: {out['fid_eval_seconds_each']:.2f} s; wall {out['wall_seconds']:.0f} s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
