"""Command line for one trainable run without Ray: flags are generated from the typed config, so
every config field is a flag (``latent_dim`` -> ``--latent-dim``) with its default and comment.

Writes ``OUT/checkpoint.pt`` (latest epoch), ``OUT/metrics.jsonl`` (one line per epoch) and, at the
end, ``OUT/test_metrics.json`` from the test split. ``--resume`` continues from ``OUT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
import time
import typing
from pathlib import Path

from trainables import core, module_for
from trainables.data import DataError


def _field_comments(cls) -> dict[str, str]:
    """The one-line comment after each field in the config's source: the flag's help text."""
    comments = {}
    for klass in reversed(cls.__mro__):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for line in lines:
            name, _, rest = line.strip().partition(":")
            if "#" in rest and name.isidentifier():
                comments[name] = rest.split("#", 1)[1].strip()
    return comments


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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message (as the sweeps)
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr, flush=True)
        sys.exit(2)


def build_parser(kind: str) -> argparse.ArgumentParser:
    module = module_for(kind)
    cls = module.CONFIG
    parser = _Parser(
        prog=f"python -m trainables.{kind}",
        description=(module.__doc__ or "").strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default=f"runs/{kind}", help="output folder")
    parser.add_argument(
        "--preset", choices=sorted(module.PRESETS), help="start from a named preset"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument(
        "--no-test", action="store_true", help="skip the final test-split evaluation"
    )
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
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
            help=f"{comments.get(f.name, '')} (default {f.default!r})",
        )
    return parser


def main(kind: str, argv: list[str] | None = None) -> dict:
    module = module_for(kind)
    parser = build_parser(kind)
    args = parser.parse_args(argv)
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(module.CONFIG)
        if getattr(args, f.name) is not None
    }
    config = dict(module.PRESETS[args.preset]) if args.preset else {}
    config.update(given)
    out = Path(args.out)
    try:
        cfg = module.CONFIG.from_dict(config)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(
                f"cannot write to --out {out} ({e.strerror or e}); pass a folder you can write to"
            ) from None
        reporter = core.FolderReporter(out, resume=args.resume)
        print(f"{kind}: training into {out} with {json.dumps(cfg.to_dict())}", flush=True)
        t0 = time.perf_counter()
        module.TRAINABLE(cfg.to_dict(), reporter=reporter)
        result = {"train_seconds": round(time.perf_counter() - t0, 2)}
        if not args.no_test:
            result.update(module.evaluate_checkpoint(out))
            (out / "test_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{kind}: done: {json.dumps(result)}", flush=True)
        return result
    except (
        core.ConfigError,
        core.CheckpointError,
        core.DivergedError,
        DataError,
        ValueError,
        OSError,
    ) as e:
        print(f"error: {_explained(e)}", file=sys.stderr, flush=True)
        sys.exit(2)


def _explained(e: Exception) -> str:
    """``e`` on one line as 'problem; fix' (most messages name their fix already)."""
    text = " ".join(str(e).split())
    if "; " in text:
        return text
    if isinstance(e, core.ConfigError):
        flag = "--" + e.key.replace("_", "-") if e.key else "the flags"
        return f"{text}; pass a valid {flag} (see --help)"
    if isinstance(e, core.CheckpointError):
        return (
            f"{text}; pass a checkpoint of the kind named, as python -m trainables.<kind> "
            "--out DIR writes it (DIR or DIR/checkpoint.pt)"
        )
    return f"{text}; check the flags and paths given (see --help)"
