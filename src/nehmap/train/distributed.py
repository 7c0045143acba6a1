"""Multi-process (multi-GPU) training under ``torchrun``.

``torchrun --nproc_per_node N -m nehmap.train ...`` starts N copies of the training
command with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set; :func:`setup` reads them,
joins the process group (NCCL on CUDA, gloo on CPU) and gives each process its device
(``cuda:LOCAL_RANK``). Without those variables (or with ``WORLD_SIZE=1``) training runs
in the one process.

Division of labour: every rank trains on its own patches (its rank is part of every
sample's seed) with ``batch_size`` patches per iteration; DistributedDataParallel
averages the gradients, so the effective batch is ``N * batch_size``. Rank 0 alone
validates, logs and writes checkpoints; the ranks meet at a barrier after each
checkpoint, and rank 0's decisions (stop early, or stop on an error) reach the others
by broadcast. Buffers (the running statistics of UNETR++'s batch-norm layers) are
rank 0's, broadcast by DistributedDataParallel at each forward pass; validation runs
on rank 0 on the unwrapped network, so it never waits for the other ranks.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

PROCESS_GROUP_TIMEOUT = _dt.timedelta(hours=2)
"""How long ranks wait for each other (preprocessing a large collection takes long)."""


@dataclass
class DistContext:
    """This process's place in the run.

    Attributes
    ----------
    rank, world_size, local_rank : int
        Global rank, number of processes, rank on this machine.
    device : torch.device
        Where this process trains.
    initialised : bool
        Whether :func:`setup` joined a process group (and :meth:`close` leaves it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised: bool = False

    @property
    def enabled(self) -> bool:
        """Whether training runs in more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes checkpoints and logs."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for all ranks (no-op in a single process)."""
        if self.enabled:
            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def mean(self, value: float) -> float:
        """Mean of ``value`` over the ranks."""
        if not self.enabled:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def broadcast_flags(self, *flags: bool) -> tuple[bool, ...]:
        """Rank 0's values of ``flags`` on every rank."""
        if not self.enabled:
            return tuple(bool(f) for f in flags)
        t = torch.tensor(
            [int(bool(f)) for f in flags], dtype=torch.int64, device=self._comm_device()
        )
        dist.broadcast(t, src=0)
        return tuple(bool(v) for v in t.tolist())

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model wrapped in DistributedDataParallel (unchanged in one process)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        """Leave the process group if :func:`setup` joined it."""
        if self.initialised and dist.is_initialized():
            dist.destroy_process_group()
            self.initialised = False

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    """True when the environment says this is one of several torchrun processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> DistContext:
    """Join the process group when started by torchrun; pick this rank's device.

    Parameters
    ----------
    device : torch.device
        The requested device; under torchrun with CUDA, each rank takes
        ``cuda:LOCAL_RANK`` instead.

    Raises
    ------
    RuntimeError
        If more processes per machine than CUDA devices are started.
    """
    if not launched_by_torchrun():
        return DistContext(device=device)
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"process {local} on this machine has no GPU: only "
                f"{torch.cuda.device_count()} CUDA device(s) visible. Start at most that many "
                "processes per machine (torchrun --nproc_per_node)."
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=PROCESS_GROUP_TIMEOUT)
        initialised = True
    else:
        initialised = False
    return DistContext(rank, world, local, device, initialised)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model
