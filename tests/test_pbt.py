"""Population Based Training (``--scheduler pbt``): a restored trial trains with the perturbed
hyperparameters, not the ones its donor's optimiser state was saved with; a real PBT sweep
(the autoencoder script, smoke-sized) exploits, keeps the lineage in results.parquet and the
checkpoints, resumes, and its report draws the hyperparameters over epochs; bad PBT flags are
one line."""

import json
import math

import pandas as pd
import pytest
import torch

from analysis import report
from sweeps import ae_sweep, classifier_sweep
from tests.helpers import pbt_checked_epochs
from tests.synthetic import synthetic_splits
from trainables import autoencoder, checkpoints, gan, optim, reporting

# ---------------------------------------------------------------------------------------------
# The classic PBT bug: the donor's lr and betas come back with its optimiser state


def _adam_step(p, grad, m, v, step, lr, beta1, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One step of Adam (torch's L2 weight decay), written out: what the restored optimiser must
    do with the restored moments and the config in force."""
    grad = grad + weight_decay * p
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    t = step + 1
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return p - lr * m_hat / (v_hat.sqrt() + eps)


def test_a_restored_trial_trains_with_the_perturbed_lr_beta1_and_decay(tmp_path):
    """A GAN trial's checkpoint (lr 1e-3, beta1 0.9) restored into a config PBT perturbed (lr
    2e-4, beta1 0.5, weight decay 0.01): the optimiser keeps the moments and step count but every
    param group holds the new values, and one step moves the weights by exactly Adam's update
    with them."""
    torch.manual_seed(0)
    old = gan.GANConfig(lr=1e-3, beta1=0.9)
    net = torch.nn.Linear(3, 2)
    opt = gan._adam(old, net.parameters(), old.lr)
    x = torch.randn(8, 3)
    for epoch in (1, 2):
        optim.set_epoch_lr(opt, old, epoch)
        opt.zero_grad()
        net(x).pow(2).sum().backward()
        opt.step()
    modules = {"net": net, "opt": opt}
    payload = checkpoints.checkpoint_payload("gan", old, {}, 2, [], checkpoints.state_of(modules))
    reporting.FolderReporter(tmp_path, verbose=False).report({}, payload)

    new = gan.GANConfig(lr=2e-4, beta1=0.5, weight_decay=0.01)
    restored_net = torch.nn.Linear(3, 2)
    restored_opt = gan._adam(new, restored_net.parameters(), new.lr)
    start, _, _ = checkpoints.restore_into(
        reporting.FolderReporter(tmp_path, resume=True),
        {"net": restored_net, "opt": restored_opt},
        "gan",
    )
    assert start == 2
    for group in restored_opt.param_groups:
        assert group["lr"] == group["base_lr"] == 2e-4
        assert group["betas"] == (0.5, 0.999) and group["weight_decay"] == 0.01
    weight = restored_net.weight
    state = restored_opt.state[weight]
    assert int(state["step"]) == 2  # the donor's moments and step count are kept

    optim.set_epoch_lr(restored_opt, new, 3)
    m, v = state["exp_avg"].clone(), state["exp_avg_sq"].clone()
    before = weight.detach().clone()
    restored_opt.zero_grad()
    restored_net(x).pow(2).sum().backward()
    grad = weight.grad.clone()
    restored_opt.step()
    expected = _adam_step(before, grad, m, v, 2, lr=2e-4, beta1=0.5, weight_decay=0.01)
    donors = _adam_step(before, grad, m, v, 2, lr=1e-3, beta1=0.9)  # what the bug trains with
    assert torch.allclose(weight.detach(), expected, rtol=1e-5, atol=1e-8)
    assert not torch.allclose(expected, donors, rtol=1e-3, atol=0)


def test_a_restored_sgd_trial_takes_the_new_lr_and_momentum(tmp_path):
    """The autoencoder's SGD: lr and momentum of the config in force, the momentum buffer kept."""
    old = autoencoder.AutoencoderConfig(optimizer="sgd", lr=1e-2, momentum=0.9)
    net = torch.nn.Linear(3, 2)
    opt = optim.make_optimizer(old, net.parameters())
    optim.set_epoch_lr(opt, old, 1)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    payload = checkpoints.checkpoint_payload(
        "autoencoder", old, {}, 1, [], checkpoints.state_of({"model": net, "optimizer": opt})
    )
    reporting.FolderReporter(tmp_path, verbose=False).report({}, payload)

    new = autoencoder.AutoencoderConfig(optimizer="sgd", lr=3e-3, momentum=0.5, weight_decay=1e-4)
    net2 = torch.nn.Linear(3, 2)
    opt2 = optim.make_optimizer(new, net2.parameters())
    checkpoints.restore_into(
        reporting.FolderReporter(tmp_path, resume=True),
        {"model": net2, "optimizer": opt2},
        "autoencoder",
    )
    (group,) = opt2.param_groups
    assert (group["lr"], group["base_lr"], group["momentum"]) == (3e-3, 3e-3, 0.5)
    assert group["weight_decay"] == 1e-4
    assert "momentum_buffer" in opt2.state[net2.weight]


@pytest.mark.parametrize("kind", ["autoencoder", "gan"])
def test_the_trainables_resume_with_the_config_they_are_given(kind, tmp_path):
    """The real trainables, one epoch, then resumed with other values (as PBT restarts a trial):
    the optimiser state saved after the resumed epoch holds the new values, and the checkpoint's
    lineage covers both epochs."""
    data = synthetic_splits(train=64, val=32)
    if kind == "gan":
        train, first = gan.train_gan, dict(lr_g=1e-3, lr_d=1e-3, beta1=0.9, fid_samples=16)
        second, keys = dict(first, lr_g=3e-4, lr_d=2e-4, beta1=0.4), ("opt_g", "opt_d")
        wanted = {"opt_g": (3e-4, 0.4), "opt_d": (2e-4, 0.4)}
    else:
        train, first = autoencoder.train_autoencoder, dict(lr=1e-3, latent_dim=4)
        second, keys = dict(first, lr=4e-4), ("optimizer",)
        wanted = {"optimizer": (4e-4, 0.9)}
    config = dict(batch_size=32, device="cpu", epochs=1, **first)
    train(config, data=data, reporter=reporting.FolderReporter(tmp_path, verbose=False))
    config = dict(config, epochs=2, **second)
    train(
        config, data=data, reporter=reporting.FolderReporter(tmp_path, resume=True, verbose=False)
    )
    payload = checkpoints.load_checkpoint(tmp_path)
    assert payload["epoch"] == 2
    assert payload["lineage"] == [{"trial_id": None, "first_epoch": 1, "last_epoch": 2}]
    for key in keys:
        (group,) = payload["state"][key]["param_groups"]
        lr, beta1 = wanted[key]
        assert group["lr"] == pytest.approx(lr) and group["base_lr"] == pytest.approx(lr)
        assert group["betas"][0] == pytest.approx(beta1)


def test_lineage_says_which_trial_trained_which_epochs():
    lineage = reporting.extend_lineage([], "a", 1)
    lineage = reporting.extend_lineage(lineage, "a", 2)
    assert reporting.clone_of(lineage) == {}
    cloned = reporting.extend_lineage(lineage, "b", 3)  # b restored a's epoch-2 checkpoint
    assert cloned == [
        {"trial_id": "a", "first_epoch": 1, "last_epoch": 2},
        {"trial_id": "b", "first_epoch": 3, "last_epoch": 3},
    ]
    assert reporting.clone_of(reporting.extend_lineage(cloned, "b", 4)) == {
        "cloned_from": "a",
        "cloned_epoch": 2,
    }
    assert lineage[-1]["last_epoch"] == 2  # not changed in place


def test_pbt_makes_no_check_at_a_trials_last_epoch(tmp_path):
    """The sweep's PBT (its strategy's scheduler, --max-epochs 4): a result before the last epoch is a
    check (PBT records the trial's score and time; a trial in the top fraction would save the
    checkpoint it offers as a donor), the last epoch's result is none, so no trial is cloned from
    a final checkpoint (it would have no epoch left to train) and none is sent back past the
    budget. Ray's own PBT records the last epoch like any other."""
    from ray.tune.schedulers import PopulationBasedTraining

    from sweeps.request import cli
    from sweeps.search.strategies import strategy_for

    argv = ["--scheduler", "pbt", "--max-epochs", "4", "--perturbation-interval", "1"]
    argv += ["--storage-path", str(tmp_path)]
    settings = cli.parse_settings(ae_sweep.SWEEP, cli.build_parser(ae_sweep.SWEEP), argv)
    mutations = {"lr": ae_sweep.PERTURBATIONS["report"]["lr"]}
    ours = strategy_for(settings).scheduler(settings, mutations)
    assert pbt_checked_epochs(ours, {"lr": 1e-3}) == [1, 2, 3, 3]
    rays = PopulationBasedTraining(
        time_attr="training_iteration", perturbation_interval=1, hyperparam_mutations=mutations
    )
    assert pbt_checked_epochs(rays, {"lr": 1e-3}) == [1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------
# Bad PBT flags: one line, exit 2, before Ray starts


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--num-samples", "1"], "a population of one has no trial to clone"),
        (["--max-epochs", "3", "--perturbation-interval", "3"], "--perturbation-interval 3 must"),
        (["--quantile-fraction", "0.7"], "--quantile-fraction 0.7 must be above 0 and at most"),
        (["--study-storage", "sqlite:///x.db"], "PBT keeps no Optuna study"),
    ],
)
def test_bad_pbt_flags_are_one_line(argv, expected, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ae_sweep.main(["--scheduler", "pbt", "--storage-path", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_without_a_perturbation_space_refuses_pbt(tmp_path, capsys):
    with pytest.raises(SystemExit):
        classifier_sweep.main(["--scheduler", "pbt", "--storage-path", str(tmp_path)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "error: --scheduler pbt: sweeps/classifier_sweep.py has no perturbation space for "
        "--space default; use --scheduler asha (this sweep has no PERTURBATIONS)"
    )


# ---------------------------------------------------------------------------------------------
# A real PBT sweep, smoke-sized


@pytest.fixture(scope="module")
def pbt_run(local_ray, tmp_path_factory):
    """The autoencoder sweep under synchronous PBT: 4 trials of 4 epochs, a decision for all
    after every epoch but the last, the bottom half cloning the top half, every trial keeping
    its checkpoints. Synchronous, so that what is asserted does not hang on which trial is
    faster: asynchronously a trial checked before the others have reported has nobody to clone,
    and a donor that was not in the top half at its own last check has no checkpoint to give
    (Ray skips that exploit), so the count of exploits depends on the trials' pace."""
    storage = tmp_path_factory.mktemp("runs")
    argv = ["--smoke-test", "--scheduler", "pbt", "--storage-path", str(storage), "--synch"]
    argv += ["--max-epochs", "4", "--max-concurrent", "4", "--quantile-fraction", "0.5"]
    argv += ["--keep-checkpoints", "all", "--wandb-mode", "disabled"]
    summary = ae_sweep.main(argv)
    return summary, storage / "ae_sweep_smoke"


@pytest.mark.slow
@pytest.mark.realdata
def test_pbt_sweep_exploits_and_results_keep_the_lineage(pbt_run, capsys):
    summary, exp = pbt_run
    assert summary["complete"] and summary["errored"] == 0 and summary["trials"] == 4
    sweep = json.loads((exp / "sweep.json").read_text())
    assert sweep["scheduler"]["name"] == "PBT" and sweep["study_storage"] is None
    assert set(sweep["scheduler"]["perturbations"]) == {"lr", "weight_decay"}
    assert not (exp / "optuna.db").exists() and not (exp / "optuna.journal").exists()
    exploits = (exp / "pbt_global.txt").read_text().splitlines()  # Ray's own record
    assert sweep["scheduler"]["synch"]
    assert len(exploits) == 6, exploits  # Ray's own record: 2 clones at each of 3 decisions

    table = pd.read_parquet(exp / "results.parquet")
    assert {"cloned_from", "cloned_epoch", "config/lr", "config/weight_decay"} <= set(table)
    assert not table.duplicated(["trial_id", "epoch"]).any()
    assert table.groupby("trial_id")["epoch"].max().eq(4).all()
    cloned = table.dropna(subset=["cloned_from"])
    lineage = cloned.drop_duplicates(["trial_id", "cloned_from", "cloned_epoch"])
    assert summary["exploits"] == len(lineage) == len(exploits)
    assert sorted(lineage["cloned_epoch"]) == [1, 1, 2, 2, 3, 3]
    ids = set(table["trial_id"])
    assert (
        set(cloned["cloned_from"]) <= ids
        and not (cloned["cloned_from"] == cloned["trial_id"]).any()
    )
    # After an exploit the trial goes on from the donor's epoch: its rows start at cloned_epoch+1,
    # and at least one exploit changed the lr in force (PBT multiplied or resampled it).
    changed = 0
    for (_trial_id, donor, k), rows in cloned.groupby(["trial_id", "cloned_from", "cloned_epoch"]):
        assert rows["epoch"].min() == k + 1
        donor_rows = table[(table["trial_id"] == donor) & (table["epoch"] == k)]
        changed += bool(len(donor_rows)) and not math.isclose(
            donor_rows["config/lr"].iloc[0], rows["config/lr"].iloc[0]
        )
    assert changed >= 1
    # Every epoch trained is counted, those run again after an exploit too.
    counted = sum(
        len((exp / p.name / "result.json").read_text().splitlines())
        for p in exp.glob("train_autoencoder_*")
    )
    assert summary["trial_epochs"] == counted >= len(table)

    # Each trial's latest checkpoint trains with the config in force at its last epoch and says
    # which trial it was cloned from, as its last row does.
    last = table.sort_values("epoch").groupby("trial_id").last()
    for trial_id, row in last.iterrows():
        (trial_dir,) = exp.glob(f"*_{trial_id}")
        payload = checkpoints.load_checkpoint(trial_dir)  # the latest checkpoint_*
        assert payload["epoch"] == 4
        (group,) = payload["state"]["optimizer"]["param_groups"]
        assert group["base_lr"] == pytest.approx(row["config/lr"])
        assert group["weight_decay"] == pytest.approx(row["config/weight_decay"])
        assert payload["lineage"][-1]["trial_id"] == trial_id
        assert reporting.clone_of(payload["lineage"]).get("cloned_from") == (
            None if pd.isna(row["cloned_from"]) else row["cloned_from"]
        )

    best = json.loads((exp / "best.json").read_text())
    assert best["trial_id"] == last["val_mse"].idxmin()
    assert best["config"]["lr"] == pytest.approx(last.loc[best["trial_id"], "config/lr"])
    assert math.isfinite(best["test"]["test_mse"]) and best["study_storage"] is None


@pytest.mark.slow
@pytest.mark.realdata
def test_pbt_report_draws_the_hyperparameters_over_epochs(pbt_run, tmp_path, capsys):
    _, exp = pbt_run
    out = tmp_path / "report"
    report.main([str(exp), "--out", str(out), "--max-test-images", "200", "--tsne-samples", "50"])
    printed = capsys.readouterr().out
    assert (out / "pbt_hyperparameters.png").stat().st_size > 10_000
    assert (
        "skipped optimization_history.png: a PBT sweep (--scheduler pbt) has no Optuna" in printed
    )
    assert (out / "learning_curves.png").is_file() and (out / "best_trial_curves.png").is_file()


@pytest.mark.slow
@pytest.mark.realdata
def test_a_finished_pbt_sweep_resumes(pbt_run, capsys):
    """--resume of a PBT sweep: no study to reopen; Tune's state restores, nothing runs again,
    and the results are rewritten the same."""
    summary, exp = pbt_run
    before = pd.read_parquet(exp / "results.parquet")
    again = ae_sweep.main(["--resume", str(exp), "--wandb-mode", "disabled"])
    assert again["complete"] and again["trials"] == 4 and again["errored"] == 0
    assert again["trial_epochs"] == summary["trial_epochs"]
    after = pd.read_parquet(exp / "results.parquet")
    pd.testing.assert_frame_equal(before, after)
    assert "Optuna has no part in Population Based Training" in capsys.readouterr().out


def test_wandb_keeps_every_result_of_a_trial_that_goes_back_to_an_earlier_epoch(tmp_path):
    """A PBT clone of a donor's earlier checkpoint (or a retried trial) reports epochs it reported
    before. W&B drops a row logged at a step below its current one; the sweep's W&B hub logs at
    W&B's own step with the epoch as the charts' x-axis, so a real offline run keeps them all."""
    import helpers

    from sweeps.fit.wandb_hub import WandbHub

    hub = WandbHub()
    init = {"mode": "offline", "dir": str(tmp_path), "project": "t", "id": "rewound"}
    hub.start(
        "rewound", str(tmp_path), exclude=["time_this_iter_s"], to_config=[], init_kwargs=init
    )
    results = [(1, 1.0), (2, 0.9), (3, 0.8), (2, 0.7), (3, 0.6), (4, 0.5)]  # cloned at epoch 1
    for epoch, loss in results:
        hub.log("rewound", {"training_iteration": epoch, "loss": loss, "time_this_iter_s": 1.0})
    assert hub.close() == 1
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    run_id, rows = helpers.wandb_history(run_file)
    assert run_id == "rewound"
    assert [(r["training_iteration"], r["loss"]) for r in rows] == results
    assert all("time_this_iter_s" not in r for r in rows)


def test_wandb_gets_a_trials_config_when_it_changes(tmp_path):
    """Tune sends the config with every result; the hub passes it to the trial's run at the
    first result and when PBT perturbs it, not at every epoch. The run's config records say so,
    and the run ends with the config in force last."""
    import helpers

    from sweeps.fit.wandb_hub import WandbHub

    hub = WandbHub()
    init = {"mode": "offline", "dir": str(tmp_path), "project": "t", "id": "perturbed"}
    hub.start("perturbed", str(tmp_path), exclude=[], to_config=[], init_kwargs=init)
    configs = [{"lr": 0.1}, {"lr": 0.1}, {"lr": 0.1}, {"lr": 0.05}, {"lr": 0.05}]
    for epoch, config in enumerate(configs, start=1):
        hub.log("perturbed", {"training_iteration": epoch, "loss": 1 / epoch, "config": config})
    assert hub.close() == 1
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    sent = [
        {item.key: json.loads(item.value_json) for item in r.config.update}
        for r in helpers.wandb_records(run_file)
        if r.HasField("config")
    ]
    lrs = [c["lr"] for c in sent if "lr" in c]
    assert lrs == [0.1, 0.05]
