"""A tiny ``PreemptibleBrain`` (a linear layer, AdamW, 5 batches an epoch,
a dev set) with an ``AtomicCheckpointer``, for the preemption tests: in the
test process, or as a script under torchrun.

    python -m torch.distributed.run --nproc_per_node=2 tests/tiny_brain.py OUTPUT \\
        [--signal-at-update N:SIG[:TARGET]] [--dump PATH]

``--signal-at-update``: while update N is computed, SIG (``TERM``,
``USR1``) goes to this process, to one rank (``rank1``) or, once, to the
parent (``parent``: torchrun forwards it to every worker). ``--dump``: each
process saves its tensors (the layer, AdamW's state) to ``PATH.format(rank=...)``.
The exit status is the run's (``exit_status_of``). Test-only code.
"""

import argparse
import os
import signal
import sys

import speechbrain as sb
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from speechbrain.utils.epoch_loop import EpochCounter  # noqa: E402

from speechbrain_w2vbert.training.checkpoints import AtomicCheckpointer  # noqa: E402
from speechbrain_w2vbert.training.preemption import PreemptibleBrain  # noqa: E402
from speechbrain_w2vbert.training.stops import exit_status_of  # noqa: E402

EPOCHS, BATCH = 2, 2


class Data(torch.utils.data.Dataset):
    """Fixed (x, y) pairs: 10 for training, 4 for dev."""

    def __init__(self, size, seed):
        generator = torch.Generator().manual_seed(seed)
        self.x, self.y = torch.randn(size, 4, generator=generator), torch.randn(size, 2, generator=generator)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


class Tiny(PreemptibleBrain):
    """Linear regression; sends ``signal_at`` = (update, signal, target)
    while that update is computed, or (``"dev"``, ...) during the first dev
    batch."""

    signal_at = None
    mid_epoch_checkpoints = 0

    def compute_forward(self, batch, stage):
        if self.signal_at is not None:
            update, sig, target = self.signal_at
            due = (update == "dev" and stage == sb.Stage.VALID) or (
                stage == sb.Stage.TRAIN and update == self.optimizer_step + 1)
            rank = getattr(self, "rank", 0)
            if due and (target in ("self", f"rank{rank}") or (target == "parent" and rank == 0)):  # sent once
                os.kill(os.getppid() if target == "parent" else os.getpid(), getattr(signal, f"SIG{sig}"))
            if due:
                self.signal_at = None
        return self.modules.layer(batch[0].to(self.device))

    def compute_objectives(self, predictions, batch, stage):
        return torch.nn.functional.mse_loss(predictions, batch[1].to(self.device))

    def on_mid_epoch_valid_end(self):
        self.mid_epoch_checkpoints += 1
        self.checkpointer.save_and_keep_only(meta={"mid-epoch": self.step}, end_of_epoch=False, num_to_keep=3)


def build(output, run_opts=None, valid_interval_steps=0, grad_accumulation_factor=1):
    """(brain, epoch counter) with fresh, seeded weights."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 2)
    counter = EpochCounter(EPOCHS)
    checkpointer = AtomicCheckpointer(os.path.join(output, "save"), {"layer": layer, "counter": counter})
    options = {"noprogressbar": True, "grad_accumulation_factor": grad_accumulation_factor, **(run_opts or {})}
    brain = Tiny({"layer": layer}, lambda params: torch.optim.AdamW(params, lr=0.05), hparams={}, run_opts=options,
                 checkpointer=checkpointer, valid_interval_steps=valid_interval_steps)
    return brain, counter


def fit(brain, counter):
    """Train (and dev-evaluate) for EPOCHS epochs."""
    brain.fit(counter, Data(10, 0), Data(4, 1), train_loader_kwargs={"batch_size": BATCH},
              valid_loader_kwargs={"batch_size": BATCH})


def tensors(brain):
    """The layer's parameters and AdamW's state, by name."""
    layer = getattr(brain.modules.layer, "module", brain.modules.layer)  # DDP-wrapped or not
    found = {f"layer.{k}": v.detach().clone() for k, v in layer.state_dict().items()}
    for index, values in brain.optimizer.state_dict()["state"].items():
        found.update({f"adam.{index}.{k}": v.clone() for k, v in values.items() if torch.is_tensor(v)})
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--signal-at-update")
    parser.add_argument("--dump")
    args = parser.parse_args()
    run_opts = {"distributed_backend": "gloo"} if "RANK" in os.environ else {}
    sb.utils.distributed.ddp_init_group(run_opts)
    brain, counter = build(args.output, run_opts)
    if args.signal_at_update:
        update, sig, *target = args.signal_at_update.split(":")
        brain.signal_at = (int(update), sig, target[0] if target else "self")
    status = exit_status_of(lambda: fit(brain, counter))
    if args.dump:
        torch.save(tensors(brain), args.dump.format(rank=int(os.environ.get("RANK", 0))))
    sys.exit(status)


if __name__ == "__main__":
    main()
