"""Trainable throughput against a plain PyTorch loop, in one process, same model, batch and device.

    python bench/throughput.py                      # autoencoder, classifier (frozen), GAN
    python bench/throughput.py --models autoencoder --device cpu --breakdown

For each model, one epoch over the 55,000 training images through the trainable's own
``train_epoch`` (data on the device, ``torch.randperm`` batches) and through the textbook loop
(``DataLoader(TensorDataset(...), shuffle=True)``), ``--rounds`` times, the two in a random order
in each round (seeded by ``--seed``); prints the median samples per second of each, and the
ratio (plain epoch / ours) of each round: its median and range. The classifier baseline runs its frozen
encoder on every batch, as a plain loop does; the trainable encodes the split once per trial.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from models import ConvAutoencoder, Discriminator, Generator, LatentClassifier
from trainables import autoencoder, classifier, devices, gan
from trainables.data import DeviceSplit, load_splits


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _rounds(loops: dict, device, rounds: int, order: random.Random) -> dict[str, list[float]]:
    """Each loop timed once per round, the loops in a random order in each round."""
    times = {name: [] for name in loops}
    for _ in range(rounds):
        names = list(loops)
        order.shuffle(names)
        for name in names:
            times[name].append(_timed(loops[name], device))
    return times


def loader(x01: torch.Tensor, y: torch.Tensor, batch_size: int) -> DataLoader:
    return DataLoader(TensorDataset(x01, y), batch_size=batch_size, shuffle=True)


# --- the three models: (ours, plain) pairs of one-epoch callables -----------------------------


def bench_autoencoder(splits, device, batch_size):
    cfg = autoencoder.AutoencoderConfig(batch_size=batch_size)
    train = DeviceSplit(splits.train_x, splits.train_y, device)
    host_x = splits.train_x.unsqueeze(1).float() / 255
    model = ConvAutoencoder(16).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def ours():
        autoencoder.train_epoch(model, opt, train, cfg, devices.seed_epoch(cfg, 1, device), device)

    def plain():
        model.train()
        for x, _ in loader(host_x, splits.train_y, batch_size):
            x = x.to(device)
            loss = F.mse_loss(model(x), x)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return ours, plain


def bench_classifier(splits, device, batch_size):
    cfg = classifier.ClassifierConfig(batch_size=batch_size, encoder_checkpoint="-")
    model = LatentClassifier(ConvAutoencoder(16).encoder, 16).to(device)
    opt = torch.optim.Adam(model.head.parameters(), 2e-4)
    train = DeviceSplit(splits.train_x, splits.train_y, device)
    host_x = splits.train_x.unsqueeze(1).float() / 255

    def ours():  # what train_classifier does per trial in frozen mode: encode once, train the head
        codes = classifier.encode_split(model.encoder, train)
        classifier.train_epoch(
            model.head, opt, codes, cfg, devices.seed_epoch(cfg, 1, device), device
        )

    def plain():
        model.train()
        for x, y in loader(host_x, splits.train_y, batch_size):
            loss = F.nll_loss(model(x.to(device)), y.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()

    return ours, plain


def bench_gan(splits, device, batch_size):
    cfg = gan.GANConfig(batch_size=batch_size)
    g, d = Generator().to(device), Discriminator().to(device)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    train = DeviceSplit(splits.train_x, splits.train_y, device)
    host_x = splits.train_x.unsqueeze(1).float() / 255

    def ours():
        gan.train_epoch(g, d, opt_g, opt_d, train, cfg, devices.seed_epoch(cfg, 1, device), device)

    def plain():  # the textbook two-step loop: D on real then fake, then G
        for x, _ in loader(host_x, splits.train_y, batch_size):
            real = x.to(device) * 2 - 1
            b = len(real)
            fake = g(torch.randn(b, 100, device=device))
            d_loss = F.binary_cross_entropy_with_logits(d(real), torch.ones(b, device=device))
            d_loss = d_loss + F.binary_cross_entropy_with_logits(
                d(fake.detach()), torch.zeros(b, device=device)
            )
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = F.binary_cross_entropy_with_logits(d(fake), torch.ones(b, device=device))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()

    return ours, plain


def data_only(splits, device, batch_size):
    """One epoch of batches and nothing else: what each loop spends on data alone."""
    train = DeviceSplit(splits.train_x, splits.train_y, device)
    host_x = splits.train_x.unsqueeze(1).float() / 255
    gen = torch.Generator(device=device)

    def ours():
        for x, _ in train.batches(batch_size, shuffle=True, generator=gen):
            x.sum()  # touch the batch

    def plain():
        for x, _ in loader(host_x, splits.train_y, batch_size):
            x.to(device).sum()

    return ours, plain


BENCHES = {"autoencoder": bench_autoencoder, "classifier": bench_classifier, "gan": bench_gan}
BATCH = {"autoencoder": 256, "classifier": 256, "gan": 128}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--models",
        nargs="+",
        choices=sorted(BENCHES),
        default=list(BENCHES),
        help="the trainables to time",
    )
    p.add_argument(
        "--rounds", type=int, default=5, help="rounds; each times both loops, in a random order"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the order within each round")
    p.add_argument("--device", default="auto", help="auto (cuda if present) | cpu | cuda")
    p.add_argument("--batch-size", type=int, default=None, help="override the per-model default")
    p.add_argument("--subset", type=int, default=None, help="training images (default: all 55,000)")
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="also time each loop's data alone (batches, no model) to show where a gap comes from",
    )
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    device = devices.resolve_device(args.device)
    splits = load_splits(subset=args.subset)
    n = len(splits.train_y)
    print(
        f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"cpu={platform.processor() or platform.machine()} images/epoch={n}"
    )
    order = random.Random(args.seed)
    results = {}
    for name in args.models:
        bs = args.batch_size or BATCH[name]
        torch.manual_seed(0)
        ours, plain = BENCHES[name](splits, device, bs)
        times = _rounds({"ours": ours, "plain": plain}, device, args.rounds, order)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratios = [p_ / o for p_, o in zip(times["plain"], times["ours"], strict=True)]
        row = {
            "batch_size": bs,
            "rounds": args.rounds,
            "epoch_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
            "ours_samples_per_s": round(n / med["ours"]),
            "plain_samples_per_s": round(n / med["plain"]),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        }
        if args.breakdown:
            data = _rounds(
                dict(zip(("ours", "plain"), data_only(splits, device, bs), strict=True)),
                device,
                args.rounds,
                order,
            )
            data_med = {k: statistics.median(v) for k, v in data.items()}
            row["data_only_s"] = {k: round(v, 3) for k, v in data_med.items()}
            # the data path's share of each loop's epoch, and the most any data path could win:
            # the plain epoch without its DataLoader time
            row["data_share"] = {k: round(data_med[k] / med[k], 3) for k in med}
            row["max_ratio_from_data"] = round(med["plain"] / (med["plain"] - data_med["plain"]), 3)
        results[name] = row
        low, high = row["ratio_range"]
        print(
            f"{name:12s} batch {bs:4d}: ours {row['ours_samples_per_s']:>8d}/s  "
            f"DataLoader {row['plain_samples_per_s']:>8d}/s  (medians of {args.rounds})  "
            f"ratio median {row['ratio']:.3f}x, range {low:.3f}-{high:.3f}",
            flush=True,
        )
        if args.breakdown:
            share = row["data_share"]
            print(
                f"{'':12s} data alone per epoch: ours {row['data_only_s']['ours']:.2f} s "
                f"({100 * share['ours']:.1f}% of its epoch), DataLoader "
                f"{row['data_only_s']['plain']:.2f} s ({100 * share['plain']:.1f}% of a "
                f"{med['plain']:.1f} s plain epoch): the data path can win at most "
                f"{row['max_ratio_from_data']:.3f}x",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"device": str(device), "torch": torch.__version__, "results": results}, f, indent=2
            )
    return results


if __name__ == "__main__":
    main()
