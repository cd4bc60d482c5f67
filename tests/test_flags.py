"""The sweep flags are declared once, on ``Settings``' fields (``sweeps.request.settings.flag``): the
parser, the bound checks and what ``--resume`` accepts are generated from that declaration, so a
flag added there is a flag, is checked and is refused on resume without another edit. (The
``--help`` text itself is pinned through the scripts in tests/test_help.py.)"""

import argparse

import pytest

from sweeps import ae_sweep, classifier_sweep, gan_sweep
from sweeps.request import cli
from sweeps.request.settings import Settings
from trainables.errors import UsageError

SPECS = [ae_sweep.SWEEP, classifier_sweep.SWEEP, gan_sweep.SWEEP]


def dests(parser: argparse.ArgumentParser) -> list[str]:
    return [a.dest for a in parser._actions if a.dest != "help"]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_setting_is_a_flag_and_every_flag_a_setting(spec):
    names = Settings.flag_names()
    assert tuple(Settings.flags()) == names  # every field but extra declares its flag
    parser = cli.build_parser(spec)
    # in the order of the fields, but --smoke-test, which --help has always listed last
    assert dests(parser) == [n for n in names if n != "smoke_test"] + ["smoke_test"]
    defaults = vars(parser.parse_args([]))
    assert defaults["space"] == next(iter(spec.spaces))
    for name in ("num_samples", "max_epochs", "grace_period", "max_concurrent"):
        assert defaults[name] == spec.defaults[name]  # the script's, where it declares one
    assert defaults["perturbation_interval"] == spec.defaults.get("perturbation_interval", 4)


def test_the_parser_follows_the_declaration():
    actions = {a.dest: a for a in cli.build_parser(ae_sweep.SWEEP)._actions}
    assert actions["lr_range"].nargs == 2 and actions["lr_range"].type is float
    assert actions["lr_range"].metavar == ("LOW", "HIGH")
    assert isinstance(actions["asha_revise"], argparse.BooleanOptionalAction)
    assert actions["asha_revise"].default is True
    assert actions["verbose"].default is False and actions["verbose"].nargs == 0
    assert actions["num_samples"].type is int and actions["cpus_per_trial"].type is float
    assert actions["name"].type is None and actions["name"].default is None
    for name, choices in cli.CHOICES.items():
        assert actions[name].choices == choices


def test_resume_accepts_exactly_the_flags_declared_for_it():
    assert cli.RESUME_FLAGS == (
        "resume",
        "num_samples",  # to grow the sweep (cli.check_growth)
        "address",
        "num_cpus",
        "wandb_mode",
        "verbose",
        "study_storage",
    )
    declared = {name for name, (f, _) in Settings.flags().items() if f.on_resume is not None}
    assert declared == set(cli.RESUME_FLAGS) - {"resume"}


# Each declared bound, a value just outside it, and the problem it says (the fix follows).
BOUNDS = {
    "num_samples": ("0", "--num-samples 0 must be at least 1"),
    "time_budget": ("0", "--time-budget 0 must be positive"),
    "max_epochs": ("0", "--max-epochs 0 must be at least 1"),
    "reduction_factor": ("1", "--reduction-factor 1 must be above 1"),
    "report_every": ("0", "--report-every 0 must be at least 1"),
    "max_concurrent": ("0", "--max-concurrent 0 must be at least 1"),
    "cpus_per_trial": ("0", "--cpus-per-trial 0 must be positive"),
    "gpus_per_trial": ("-1", "--gpus-per-trial -1.0 is negative"),
    "num_cpus": ("0", "--num-cpus 0 must be at least 1"),
    "max_failures": ("-1", "--max-failures -1 is negative"),
    "val_size": (
        "60000",
        "--val-size 60000 is not between 1 and 59999 (validation is what trials are selected on)",
    ),
    "subset": ("0", "--subset 0 must be positive"),
}


def test_the_table_covers_every_declared_bound():
    declared = {name for name, (f, _) in Settings.flags().items() if f.bound is not None}
    assert declared == set(BOUNDS)


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_each_bound_is_one_usage_error_line(name, tmp_path):
    value, problem = BOUNDS[name]
    flag, fix = "--" + name.replace("_", "-"), Settings.flags()[name][0].fix
    parser = cli.build_parser(ae_sweep.SWEEP)
    argv = [flag, value, "--storage-path", str(tmp_path)]
    with pytest.raises(UsageError) as e:
        cli.parse_settings(ae_sweep.SWEEP, parser, argv)
    assert str(e.value) == f"{problem}; {fix}" and fix and "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())  # refused before any path is opened
