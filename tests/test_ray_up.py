"""``ray up`` itself, for real: the on-premise config (cluster-onprem.yaml, Ray's "local" provider)
pointed at this machine over SSH (a throwaway sshd on 127.0.0.1, tests/ssh_server.py), ``ray up
-y``, a smoke sweep sent with ``ray submit``, its results checked, ``ray down -y``.

What ``ray down`` does on machines a user owns (docs/cluster.md): it runs ``ray stop`` on the head
over SSH and records the nodes as terminated; when that ``ray stop`` fails it only warns, and the
head's Ray keeps running. The test checks the first, and whatever happens it stops every process
this head's Ray started itself, by process id (found by their ``RAY_TMPDIR``), and its sshd.
Because ``ray stop`` on the "head" (this machine) stops every Ray process here, this test must not
run beside other tests that use Ray (pytest runs tests one at a time, as CI does).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from ray.autoscaler._private.local import config as local_config
from ray_head import BIN, free_port, kill_all, listening_beyond_loopback, processes_of
from ssh_server import SSHServer

REPO = Path(__file__).resolve().parents[1]
RAY = str(BIN / "ray")


def onprem_config(ssh: SSHServer, name: str, port: int, dashboard: int, agent: int) -> dict:
    """cluster-onprem.yaml as a user would edit it for one machine (127.0.0.1, no workers), and:
    our sshd through a ProxyCommand (Ray always dials port 22); setup that activates this test's
    virtual environment instead of installing torch a second time; and the shipped `ray start`
    with free ports, without the `ray stop` before it (which would stop every Ray here)."""
    config = yaml.safe_load((REPO / "cluster-onprem.yaml").read_text())
    config["cluster_name"] = name
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {
        "ssh_user": ssh.user,
        "ssh_private_key": str(ssh.key),
        "ssh_proxy_command": ssh.proxy_command,
    }
    config["max_workers"] = 0
    config["file_mounts"] = {"~/latentsweep": str(REPO)}
    config["setup_commands"] = [f"echo 'source {BIN}/activate' >> ~/.bashrc"]
    (start,) = [c for c in config["head_start_ray_commands"] if "ray start --head" in c]
    assert "--port=6379" in start and "--dashboard-host=127.0.0.1" in start
    start = start.replace("--port=6379", f"--port={port}")
    start += f" --num-cpus=2 --dashboard-port={dashboard} --dashboard-agent-listen-port={agent}"
    config["head_start_ray_commands"] = [start]
    return config


@pytest.mark.slow
@pytest.mark.realdata
def test_ray_up_runs_a_sweep_on_the_onprem_config_and_ray_down_leaves_the_head_running(
    real_data_dir, tmp_path
):
    ray_dir = tempfile.mkdtemp(prefix="ray-up-")  # short: Ray's socket paths must fit
    env = {
        "RAY_TMPDIR": ray_dir,  # every Ray process the head starts carries it: found by it below
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # one machine: Ray on 127.0.0.1 only
    }
    name = f"latentsweep-test-{uuid.uuid4().hex[:8]}"
    # the local provider's record of its nodes, on this machine (the CLI's side)
    state = Path(local_config.get_state_path(name))
    storage = tmp_path / "runs"
    with SSHServer(env=env) as ssh:
        config = tmp_path / "cluster.yaml"
        ports = free_port(), free_port(8400), free_port(52400, 52999)
        config.write_text(yaml.safe_dump(onprem_config(ssh, name, *ports)))
        run = lambda *cmd, timeout=600: ssh_run([RAY, *cmd], timeout)  # noqa: E731
        try:
            up = run("up", "-y", "--no-config-cache", str(config))
            assert up.returncode == 0, f"ray up failed:\n{tail(up)}\nsshd:\n{ssh.log()[-2000:]}"
            assert processes_of(ray_dir), "ray up started no Ray on the head"
            sweep = ["--smoke-test", "--address", "auto", "--storage-path", str(storage)]
            sweep += ["--name", "up_smoke", "--wandb-mode", "disabled"]
            submitted = run("submit", str(config), "sweeps/ae_sweep.py", "--", *sweep)
            assert submitted.returncode == 0, tail(submitted)
            exp = storage / "up_smoke"
            assert f"results in {exp}" in submitted.stdout + submitted.stderr
            wide = listening_beyond_loopback(processes_of(ray_dir))
            assert not wide, f"the head's Ray listens beyond 127.0.0.1: {wide}"
            # the checkout was copied to the head, without what .gitignore lists
            copy = ssh.home / "latentsweep"
            assert (copy / "sweeps" / "ae_sweep.py").is_file()
            assert not (copy / ".venv").exists() and not (copy / "runs").exists()

            # ray down runs `ray stop` on the head over SSH (which stops every Ray process of
            # that machine, whoever started it), then marks the nodes terminated in the local
            # provider's state file; it turns no machine off.
            down = run("down", "-y", str(config))
            assert down.returncode == 0, tail(down)
            assert "Exception occurred when stopping" not in down.stdout + down.stderr, tail(down)
            left = processes_of(ray_dir)
            assert not left, f"ray down left {len(left)} of the head's Ray processes running"
            nodes = json.loads(state.read_text())
            assert {n["state"] for n in nodes.values()} == {"terminated"}, nodes
        finally:
            kill_all(processes_of(ray_dir))  # what ray down leaves, by process id
            state.unlink(missing_ok=True)
            state.with_suffix(".lock").unlink(missing_ok=True)
    assert not processes_of(ray_dir)
    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert table["trial_id"].nunique() == 4
    assert json.loads((exp / "best.json").read_text())["test"]["test_mse"] > 0
    assert json.loads((exp / "sweep.json").read_text())["args"]["address"] == "auto"


def ssh_run(cmd: list[str], timeout: float):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def tail(done) -> str:
    return (done.stdout + done.stderr)[-4000:]
