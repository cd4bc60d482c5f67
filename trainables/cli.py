"""Command line for one trainable run without Ray: flags are generated from the typed config, so
every config field is a flag (``latent_dim`` -> ``--latent-dim``) with its default and the help
text the field declares (``config.param``).

Writes ``OUT/checkpoint.pt`` (latest epoch), ``OUT/metrics.jsonl`` (one line per epoch) and, at the
end, ``OUT/test_metrics.json`` from the test split. ``--resume`` continues from ``OUT`` with the
config saved in its checkpoint; a preset, then the flags given, override it (``resumed_config``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import typing
from pathlib import Path
from typing import Any

from trainables import module_for
from trainables.best import TEST_METRICS_FILE, best_config
from trainables.checkpoints import CheckpointError, check_resumes
from trainables.config import ConfigError, help_of
from trainables.errors import OneLineParser, UsageError, cli_errors
from trainables.reporting import FolderReporter
from trainables.training import DivergedError


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parse_optional(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _literal(text: str) -> str:
    """``text`` as argparse help, which is %-formatted: a literal % must be written %%."""
    return text.replace("%", "%%")


def build_parser(kind: str) -> argparse.ArgumentParser:
    module = module_for(kind)
    cls = module.CONFIG
    out = f"runs/{kind}"
    parser = OneLineParser(
        prog=f"python -m trainables.{kind}",
        description=(module.__doc__ or "").strip().splitlines()[0],
    )
    parser.add_argument("--out", default=out, help=f"output folder (default {out!r})")
    parser.add_argument(
        "--preset", choices=sorted(module.PRESETS), help="start from a named preset"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument(
        "--from",
        dest="from_sweep",
        metavar="SWEEP",
        help="start from the best trial's config of a sweep (its folder or best.json); flags "
        "given override it, e.g. --from runs/ae_sweep --epochs 60",
    )
    parser.add_argument(
        "--no-test", action="store_true", help="skip the final test-split evaluation"
    )
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        optional = type(None) in typing.get_args(hint)
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        parse = _parse_bool if base is bool else base
        if optional:
            parse = _parse_optional(parse)
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=parse,
            default=None,  # None = not given: preset, then the config default applies
            metavar=base.__name__.upper(),
            help=_literal(f"{help_of(f)} (default {f.default!r})"),
        )
    return parser


def _fix_for(e: BaseException) -> str:
    """The fix that ends the error line when the message does not name one."""
    if isinstance(e, ConfigError):
        flag = "--" + e.key.replace("_", "-") if e.key else "the flags"
        return f"pass a valid {flag} (see --help)"
    if isinstance(e, CheckpointError):
        return (
            "pass a checkpoint of the kind named, as python -m trainables.<kind> "
            "--out DIR writes it (DIR or DIR/checkpoint.pt)"
        )
    return "check the flags and paths given (see --help)"


def resumed_config(
    kind: str, out: Path, preset: str | None, given: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The config a ``--resume`` continues with, and the line that says so: the checkpoint's own
    config in ``out``, then ``preset``, then the flags ``given``. A key the checkpoint fixes
    (``CONFIG.FIXED_ON_RESUME``: the model's shape, the optimiser whose state it holds) given
    another value is a ConfigError naming it."""
    module = module_for(kind)
    payload = FolderReporter(out, resume=True).checkpoint()
    check_resumes(payload, kind)
    saved = payload["config"]
    wanted = dict(saved, **(module.PRESETS[preset] if preset else {}), **given)
    resolved = module.CONFIG.from_dict(wanted).to_dict()
    changed = {k: v for k, v in resolved.items() if k not in saved or saved[k] != v}
    for key in [k for k in changed if k in saved and k in module.CONFIG.FIXED_ON_RESUME]:
        flag = "--" + key.replace("_", "-")
        if key in given:
            source, without = f"{flag} {given[key]}", flag
        else:
            source, without = f"--preset {preset} sets {key}={changed[key]!r}", "--preset"
        raise ConfigError(
            f"--resume: {source}, but the checkpoint in {out} was trained with "
            f"{key}={saved[key]!r}, and its weights and optimiser state fit only that; "
            f"resume without {without}, or train a new run into another --out",
            key=key,
        )
    overridden = ", ".join(f"{k} {saved.get(k)} -> {v}" for k, v in changed.items())
    line = f"{kind}: resuming {out} from epoch {payload['epoch']}; " + (
        f"overridden: {overridden}" if overridden else "nothing overridden"
    )
    return resolved, line


def swept_config(kind: str, sweep: str, given: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The config ``--from SWEEP`` trains with, and the line that says so: the sweep's best
    trial's, then the flags ``given`` (each change named)."""
    module = module_for(kind)
    saved, best = best_config(kind, sweep)
    resolved = module.CONFIG.from_dict({**saved, **given}).to_dict()
    base = module.CONFIG.from_dict(saved).to_dict()
    changed = ", ".join(f"{k} {base[k]} -> {v}" for k, v in resolved.items() if base[k] != v)
    metric = best.get("metric")
    value = (best.get("val") or {}).get(metric)
    scored = f", {metric} {value:.6g}" if isinstance(value, float) else ""
    line = f"{kind}: the config of {sweep}'s best trial {best.get('trial_id')}{scored}; " + (
        f"overridden: {changed}" if changed else "nothing overridden"
    )
    return resolved, line


def main(kind: str, argv: list[str] | None = None) -> dict:
    module = module_for(kind)
    parser = build_parser(kind)
    args = parser.parse_args(argv)
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(module.CONFIG)
        if getattr(args, f.name) is not None
    }
    out = Path(args.out)
    # Besides any UsageError, a diverged run and a bad value or path are the user's to fix.
    with cli_errors(also=(DivergedError, ValueError, OSError), default_fix=_fix_for):
        if args.from_sweep and (args.resume or args.preset):
            flag = "--resume" if args.resume else "--preset"
            raise UsageError(
                f"--from and {flag} both say where the config starts",
                f"give one of them (--from {args.from_sweep} takes the sweep's best trial's)",
            )
        if args.resume:
            config, line = resumed_config(kind, out, args.preset, given)
            print(line, flush=True)
        elif args.from_sweep:
            config, line = swept_config(kind, args.from_sweep, given)
            print(line, flush=True)
        else:
            config = dict(module.PRESETS[args.preset]) if args.preset else {}
            config.update(given)
        cfg = module.CONFIG.from_dict(config)
        check_inputs = getattr(module, "check_inputs", None)  # e.g. the classifier's encoder
        if check_inputs is not None:
            check_inputs(cfg)  # before --out is made: a refused run leaves nothing behind
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(
                f"cannot write to --out {out} ({e.strerror or e}); pass a folder you can write to"
            ) from None
        reporter = FolderReporter(out, resume=args.resume)
        print(f"{kind}: training into {out} with {json.dumps(cfg.to_dict())}", flush=True)
        t0 = time.perf_counter()
        module.TRAINABLE(cfg.to_dict(), reporter=reporter)
        result = {"train_seconds": round(time.perf_counter() - t0, 2)}
        if not args.no_test:
            result.update(module.evaluate_checkpoint(out))
            (out / TEST_METRICS_FILE).write_text(json.dumps(result, indent=2) + "\n")
        print(f"{kind}: done: {json.dumps(result)}", flush=True)
        return result
