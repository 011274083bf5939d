"""What the processes of a DDP run must decide together: whether any of
them saw a flag (a stop signal), and each one's small findings (a load
error, dev output counts). Without DDP each is the process's own answer.

Authors: speechbrain-w2vbert contributors
"""

from typing import Any, List

import torch
from speechbrain.utils.distributed import ddp_prevent_block

__all__ = ["any_rank", "all_ranks"]


def _collective() -> bool:
    """Whether a collective call is needed (and safe) here: DDP is on and
    this is not code that only the main process runs."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() and not ddp_prevent_block()


def any_rank(flag: bool) -> bool:
    """True on every process when ``flag`` is true on any of them.

    One all-reduce of one integer, on the device the backend needs (CUDA
    for NCCL), cheap enough to run at every update.

    Example
    -------
    >>> any_rank(True), any_rank(False)
    (True, False)
    """
    if not _collective():
        return bool(flag)
    device = torch.device("cuda", torch.cuda.current_device()) if torch.distributed.get_backend() == "nccl" else "cpu"
    value = torch.tensor([int(bool(flag))], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def all_ranks(value: Any) -> List[Any]:
    """Every process's ``value`` (picklable), in rank order, on every process.

    Example
    -------
    >>> all_ranks({"empty": 3})
    [{'empty': 3}]
    """
    if not _collective():
        return [value]
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered
