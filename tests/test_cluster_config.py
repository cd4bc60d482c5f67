"""cluster.yaml passes Ray's own cluster-launcher validator, offline.

`ray up` does ``prepare_config`` (merge with the provider's defaults.yaml), then asks the cloud for
missing node resources, then ``validate_config`` (JSON schema in ray/autoscaler/ray-schema.json
plus a few cross-field checks). The tests run the two offline steps in that order, and also
validate the file as written. Nothing here talks to AWS or any other host: a fixture makes any
socket connection fail.
"""

from __future__ import annotations

import copy
import re
import socket
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
CLUSTER_DOC = ROOT / "docs" / "cluster.md"
HEAD = "ray.head.cpu"
GPU_WORKER = "ray.worker.gpu"
ONPREM_YAML = ROOT / "cluster-onprem.yaml"
LOOPBACK_DASHBOARD = re.compile(r"--dashboard-host[= ]127\.0\.0\.1\b")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("test_cluster_config must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def load() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def local_example() -> dict:
    """cluster-onprem.yaml: the `provider: type: local` config for machines a user has."""
    return yaml.safe_load(ONPREM_YAML.read_text())


def ray_validates(config: dict) -> dict:
    """Ray's offline path: prepare_config (fill defaults) then validate_config."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_rays_validator():
    config = load()
    validate_config(copy.deepcopy(config))  # as written
    prepared = ray_validates(config)  # as `ray up` sees it
    assert prepared["provider"]["type"] == "aws"
    assert prepared["cluster_name"] == "latentsweep"
    assert set(prepared["available_node_types"]) == {HEAD, GPU_WORKER}
    assert prepared["head_node_type"] == HEAD
    # The file replaces Ray's default head_setup_commands, so it must install boto3 itself.
    assert any("boto3" in cmd for cmd in prepared["head_setup_commands"])


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


MISSPELLINGS = {
    "max_worker": lambda c: _rename(c, "max_workers", "max_worker"),
    "availble_node_types": lambda c: _rename(c, "available_node_types", "availble_node_types"),
    "idle_timeout_minute": lambda c: _rename(c, "idle_timeout_minutes", "idle_timeout_minute"),
    "node type min_worker": lambda c: _rename(
        c["available_node_types"][GPU_WORKER], "min_workers", "min_worker"
    ),
    "node type resource": lambda c: _rename(
        c["available_node_types"][GPU_WORKER], "resources", "resource"
    ),
    "docker imag": lambda c: _rename(c["docker"], "image", "imag"),
}
# prepare_config checks the docker section before the schema is applied: a docker section with
# a container_name but no image fails there with a bare AssertionError.
PREPARE_RAISES = {"docker imag": AssertionError}


@pytest.mark.parametrize("misspelling", sorted(MISSPELLINGS))
def test_misspelled_key_is_rejected(misspelling):
    config = load()
    MISSPELLINGS[misspelling](config)
    with pytest.raises(jsonschema.ValidationError):
        validate_config(copy.deepcopy(config))
    with pytest.raises(PREPARE_RAISES.get(misspelling, jsonschema.ValidationError)):
        ray_validates(config)


def test_fractional_resources_are_rejected():
    # The schema wants integers: GPU packing is --gpus-per-trial's job, not the node's.
    config = load()
    config["available_node_types"][GPU_WORKER]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        ray_validates(config)


def test_node_types_declare_cpu_and_gpu_resources():
    # Explicit resources: the config validates, and the autoscaler plans, without asking EC2
    # what the instance types provide.
    config = load()
    for name, node_type in config["available_node_types"].items():
        resources = node_type["resources"]
        for key in ("CPU", "GPU"):
            assert isinstance(resources.get(key), int), f"{name}: resources.{key} missing"
    assert config["available_node_types"][HEAD]["resources"]["GPU"] == 0


def test_gpu_worker_autoscales_from_zero_on_spot():
    config = load()
    worker = config["available_node_types"][GPU_WORKER]
    assert worker["min_workers"] == 0
    assert 1 <= worker["max_workers"] <= config["max_workers"]
    assert worker["resources"]["GPU"] >= 1
    assert worker["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert worker["node_config"]["InstanceType"].startswith(("g4dn.", "g5.", "g6."))
    assert config["idle_timeout_minutes"] > 0


def test_dashboard_binds_to_loopback():
    config = load()
    head_start = " ".join(config["head_start_ray_commands"])
    assert LOOPBACK_DASHBOARD.search(head_start), head_start
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert "0.0.0.0" not in " ".join(config[key])


def test_ships_and_installs_this_checkout():
    config = load()
    assert config["file_mounts"] == {"~/latentsweep": "."}
    setup = config["setup_commands"]
    assert any(re.search(r"pip install .*-e ~/latentsweep\b", cmd) for cmd in setup)
    assert any("scripts/install_data.sh" in cmd for cmd in setup)


SECRET_PATTERNS = {
    "40+ hex characters (W&B API key)": re.compile(
        r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{40,}(?![0-9A-Fa-f])"
    ),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "literal WANDB_API_KEY value": re.compile(r"WANDB_API_KEY\s*[:=]\s*['\"]?[A-Za-z0-9]"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


@pytest.mark.parametrize("path", [CLUSTER_YAML, ONPREM_YAML, CLUSTER_DOC], ids=lambda p: p.name)
def test_no_secrets_in_file(path):
    if not path.exists():
        pytest.skip(f"{path.name} not present")
    text = path.read_text()
    for what, pattern in SECRET_PATTERNS.items():
        match = pattern.search(text)
        assert match is None, f"{path.name} contains what looks like a {what}: {match.group(0)!r}"


def test_placeholders_are_marked_edit():
    """Every value a user must replace (it contains "EDIT") has a `# EDIT:` note next to it."""
    lines = CLUSTER_YAML.read_text().splitlines()
    # Lines that are not comments and carry "EDIT" outside their trailing comment.
    active = [i for i, line in enumerate(lines) if "EDIT" in line.split("#")[0]]
    keys = {lines[i].split(":")[0].strip() for i in active}
    assert {"ImageId", "Arn"} <= keys, f"expected the AMI and instance-profile placeholders: {keys}"
    for i in active:
        window = lines[max(0, i - 8) : i + 1]
        assert any("# EDIT:" in line for line in window), (
            f"line {i + 1} lacks '# EDIT:': {lines[i]}"
        )
    region = next(line for line in lines if line.strip().startswith("region:"))
    assert "# EDIT:" in region


def test_local_provider_example_passes_rays_validator():
    example = local_example()
    assert example["provider"]["type"] == "local"
    prepared = ray_validates(example)
    assert prepared["max_workers"] <= len(example["provider"]["worker_ips"])
    assert LOOPBACK_DASHBOARD.search(" ".join(example["head_start_ray_commands"]))
    for key in ("head_ip", "worker_ips"):
        line = next(x for x in ONPREM_YAML.read_text().splitlines() if x.strip().startswith(key))
        assert "# EDIT:" in line, f"{key} is not marked EDIT"
