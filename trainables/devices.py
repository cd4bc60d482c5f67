"""Where and how reproducibly a trial computes: its device (``resolve_device``, which asks Ray what
it granted), deterministic kernels (``set_determinism``), bf16 autocast, and the seeding that makes
each epoch a function of (seed, epoch), so a resumed run replays the epochs it continues.
"""

from __future__ import annotations

import os
import sys

import torch

from trainables.config import ConfigError, TrainConfig


def ray_gpu_ids() -> list[str] | None:
    """The GPUs Ray gave this process when it is a Ray worker (a Tune trial); None outside one
    (plain Python, or the sweep's driver)."""
    ray = sys.modules.get("ray")  # a Ray worker has imported it; nothing else needs to
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return None
    return context.get_accelerator_ids().get("GPU", [])


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if a GPU is visible (Ray sets CUDA_VISIBLE_DEVICES to the trial's GPUs),
    else CPU. A Ray trial given no GPU runs on the CPU even on a GPU node: current Ray leaves
    CUDA_VISIBLE_DEVICES alone then (ray-project/ray#54868), so torch would see every GPU."""
    if name == "auto":
        granted = ray_gpu_ids()
        use_gpu = torch.cuda.is_available() and (granted is None or len(granted) > 0)
        return torch.device("cuda" if use_gpu else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA GPU is visible; use device='auto' or 'cpu'")
    return device


CUBLAS_WORKSPACE = ":4096:8"  # what cuBLAS needs for deterministic matmuls (CUDA >= 10.2)


def set_determinism(cfg: TrainConfig) -> None:
    """This process's kernels as ``cfg.deterministic`` says: with it, only deterministic
    algorithms (``torch.use_deterministic_algorithms``: an op that has none raises a
    RuntimeError naming it), cuDNN deterministic with autotuning off, and cuBLAS's workspace
    setting (``CUBLAS_WORKSPACE_CONFIG``, read when the process first uses cuBLAS: call this
    before any CUDA work; one given in the environment is kept). Without it, both flags are
    turned off again (torch's defaults), so a Ray worker reused for another trial follows that
    trial's config (keep one value for a whole sweep: cuBLAS reads its setting once per
    process)."""
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(cfg.deterministic)
    torch.backends.cudnn.deterministic = cfg.deterministic


def autocast(cfg: TrainConfig, device: torch.device):
    """bf16 autocast on CUDA when ``cfg.amp``; a no-op context otherwise."""
    return torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"
    )


def seed_epoch(cfg: TrainConfig, epoch: int, device: torch.device) -> torch.Generator:
    """Seed everything random in ``epoch`` from (seed, epoch); returns the shuffle generator.
    Epoch 0 seeds initialisation. A run resumed at epoch k replays epochs k+1.. exactly on a
    CPU, and on CUDA with ``cfg.deterministic`` (``set_determinism``); on CUDA without it the
    kernels' sums run in varying order and a replay differs in the last bits."""
    s = cfg.seed * 1_000_003 + epoch
    torch.manual_seed(s)
    gen = torch.Generator(device=device)
    gen.manual_seed(s)
    return gen
