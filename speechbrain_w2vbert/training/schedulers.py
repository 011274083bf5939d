"""Learning-rate schedule of the recipe: linear warm-up, then linear decay.

The learning rate is a pure function of the number of optimiser updates
done so far, which the ``Brain`` checkpoints (``optimizer_step``), so a
resumed run gets exactly the learning rate of an uninterrupted one. The
scheduler object is still a checkpoint recoverable: it records the
schedule and the last rate it set, and warns on resume if the schedule
changed.

Authors: speechbrain-w2vbert contributors
"""

import json
import logging
from typing import Optional

import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

__all__ = ["WarmupLinearDecay"]

logger = logging.getLogger(__name__)


@register_checkpoint_hooks
class WarmupLinearDecay:
    """Linear warm-up from 0 to ``lr``, then linear decay to
    ``lr * final_lr_ratio`` at the last update of training.

    Update ``k`` (0-based, counted over the whole training) uses::

        k < start_step:                 0 (this optimiser is not stepped yet)
        j = k - start_step < warmup:    lr * (j + 1) / warmup_steps
        afterwards:                     linear from lr to lr * final_lr_ratio
                                        at k = total_steps - 1

    Arguments
    ---------
    lr : float
        Peak learning rate (> 0).
    warmup_steps : int
        Updates of linear warm-up (>= 0), counted from ``start_step``.
    final_lr_ratio : float
        Learning rate at the end of training, as a fraction of ``lr``, in
        [0, 1] (default 0.05).
    start_step : int
        First update at which this optimiser steps (>= 0): the encoder's
        schedule starts when its head-only warm-up ends (default 0).

    Example
    -------
    >>> sched = WarmupLinearDecay(lr=1.0, warmup_steps=2, final_lr_ratio=0.0)
    >>> [round(sched.lr_at(k, total_steps=6), 3) for k in range(6)]
    [0.5, 1.0, 1.0, 0.667, 0.333, 0.0]
    >>> opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    >>> sched(opt, step=0, total_steps=6)
    0.5
    >>> opt.param_groups[0]["lr"]
    0.5
    """

    def __init__(self, lr: float, warmup_steps: int, final_lr_ratio: float = 0.05, start_step: int = 0):
        if lr <= 0 or warmup_steps < 0 or start_step < 0 or not 0.0 <= final_lr_ratio <= 1.0:
            raise ValueError(
                f"need lr > 0, warmup_steps >= 0, start_step >= 0 and final_lr_ratio in [0, 1]; got "
                f"lr={lr}, warmup_steps={warmup_steps}, start_step={start_step}, final_lr_ratio={final_lr_ratio}"
            )
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.final_lr_ratio = final_lr_ratio
        self.start_step = start_step
        self.current_lr: Optional[float] = None

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate of update ``step`` (0-based) in a training of
        ``total_steps`` updates."""
        j = step - self.start_step
        if j < 0:
            return 0.0
        if j < self.warmup_steps:
            return self.lr * (j + 1) / self.warmup_steps
        decay = max(1, total_steps - 1 - self.start_step - self.warmup_steps)
        progress = min(1.0, (j - self.warmup_steps) / decay)
        return self.lr * (1.0 - (1.0 - self.final_lr_ratio) * progress)

    def __call__(self, optimizer: torch.optim.Optimizer, step: int, total_steps: int) -> float:
        """Set the learning rate of every parameter group of ``optimizer``
        for update ``step``; return it."""
        lr = self.lr_at(step, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        self.current_lr = lr
        return lr

    def _config(self) -> dict:
        return {
            "lr": self.lr,
            "warmup_steps": self.warmup_steps,
            "final_lr_ratio": self.final_lr_ratio,
            "start_step": self.start_step,
        }

    @mark_as_saver
    def save(self, path):
        """Write the schedule and the last learning rate set (JSON)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump({**self._config(), "current_lr": self.current_lr}, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restore the last learning rate; warn if the schedule changed."""
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        self.current_lr = saved.pop("current_lr")
        if saved != self._config():
            logger.warning("the learning-rate schedule changed since the checkpoint: %s -> %s", saved, self._config())
