"""Runs ``recipes/OpenSLR54/train.py`` with test-only fault injection.

    python tests/recipe_runner.py [--kill-at-update N [--in-save NAME:WHEN]]
        [--enospc-in-save NAME --at-update N] [--signal-at-update N:SIG[:TARGET]]
        [--nan-at-batch N] [--dump-params PATH] <train.py arguments>

``--kill-at-update N``: the process SIGKILLs itself (a hard crash: nothing
is flushed or cleaned up) in the first intra-epoch checkpoint saved at or
after update N: right after it by default, or with ``--in-save NAME:WHEN``
while the checkpoint's file NAME (its stem: ``encoder``, ``CKPT`` for
``CKPT.yaml``...) is written: ``before`` it is opened, ``during`` (half of
it written) or ``after`` it is complete. ``--in-save delete:before`` dies
once the new checkpoint is saved, before the older ones are deleted.

``--enospc-in-save NAME --at-update N``: in that checkpoint, file NAME is
written to ``/dev/full`` (the kernel's ENOSPC, through the real writer).

``--signal-at-update N:SIG[:TARGET]``: while update N is being computed (in
its forward pass), signal SIG (``TERM``, ``USR1``) is sent to this process,
to rank TARGET only (``rank0``, ``rank1``), or once to the parent process
(``parent``: the torchrun agent, which forwards it to every worker).

``--nan-at-batch N``: the training loss of the N-th training batch (counted
over the whole run) is made NaN. ``--dump-params PATH``: after the run, each
process saves its parameters to ``PATH.format(rank=...)``.

The faults act on SpeechBrain's save hooks, on the meta file writer and on
checkpoint deletion, which any ``Checkpointer`` goes through. None of this
belongs in the recipe itself.
"""

import argparse
import os
import signal
import sys

import torch
from speechbrain.utils import checkpoints

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "recipes", "OpenSLR54"))  # a script: the recipe's folder

import train  # noqa: E402

from tests.helpers import die, kill_action  # noqa: E402

#: Whether the checkpoint being saved is the one the faults aim at.
ARMED = {"save": False}
#: What to install when the first intra-epoch save starts (every class with
#: save hooks is registered by then: some only when the hparams load).
PENDING = []


def arm_on_intra_epoch_save(at_update):
    """Arms the faults during the first intra-epoch checkpoint saved at or
    after update ``at_update``."""
    save = train.ASR._save_intra_epoch_ckpt

    def armed_save(self):
        while PENDING:
            PENDING.pop()()
        ARMED["save"] = self.optimizer_step >= at_update
        try:
            save(self)
        finally:
            ARMED["save"] = False

    train.ASR._save_intra_epoch_ckpt = armed_save


def file_fault(name, action):
    """Calls ``action(path, write)`` instead of writing the armed
    checkpoint's file ``name`` (a stem), where ``write()`` writes it; every
    save hook and the meta file writer go through it."""

    def targeted(path):
        return ARMED["save"] and os.path.basename(str(path)).rsplit(".", 1)[0] == name

    def wrap_hook(hook):
        def faulty_hook(obj, path, *args):
            if targeted(path):
                return action(path, lambda: hook(obj, path, *args))
            return hook(obj, path, *args)

        return faulty_hook

    def wrap_hooks():
        for cls, hook in list(checkpoints.DEFAULT_SAVE_HOOKS.items()):
            checkpoints.DEFAULT_SAVE_HOOKS[cls] = wrap_hook(hook)

    PENDING.append(wrap_hooks)
    write_meta = checkpoints.Checkpointer._save_checkpoint_metafile

    def faulty_meta(self, fpath, *args, **kwargs):
        if targeted(fpath):
            result = {}
            action(fpath, lambda: result.setdefault("meta", write_meta(self, fpath, *args, **kwargs)))
            return result["meta"]
        return write_meta(self, fpath, *args, **kwargs)

    checkpoints.Checkpointer._save_checkpoint_metafile = faulty_meta


def enospc_action(path, write):
    """Write the file to /dev/full: ENOSPC from the kernel, as on a full disk."""
    os.symlink("/dev/full", path)
    write()


def kill_before_deletion():
    """Dies after the armed checkpoint is saved, before older ones are deleted."""
    delete = checkpoints.Checkpointer.delete_checkpoints

    def faulty_delete(self, *args, **kwargs):
        if ARMED["save"]:
            die()
        return delete(self, *args, **kwargs)

    checkpoints.Checkpointer.delete_checkpoints = faulty_delete


def signal_at_update(spec):
    """Sends a signal while update N is computed (see the module docstring)."""
    update, name, *target = spec.split(":")
    sig = getattr(signal, f"SIG{name}")
    target = target[0] if target else "self"
    rank = int(os.environ.get("RANK", 0))
    forward = train.ASR.compute_forward

    def signalling_forward(self, batch, stage):
        if stage == train.sb.Stage.TRAIN and self.optimizer_step == int(update) - 1 and not sent["done"]:
            sent["done"] = True
            if target == "parent":
                if rank == 0:  # once, as a scheduler signals torchrun
                    os.kill(os.getppid(), sig)
            elif target in ("self", f"rank{rank}"):
                os.kill(os.getpid(), sig)
        return forward(self, batch, stage)

    sent = {"done": False}
    train.ASR.compute_forward = signalling_forward


def main():
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--kill-at-update", type=int)
    parser.add_argument("--in-save")
    parser.add_argument("--enospc-in-save")
    parser.add_argument("--at-update", type=int)
    parser.add_argument("--signal-at-update")
    parser.add_argument("--nan-at-batch", type=int)
    parser.add_argument("--dump-params")
    args, rest = parser.parse_known_args()

    if args.kill_at_update is not None:
        arm_on_intra_epoch_save(args.kill_at_update)
        if args.in_save is None:  # right after the checkpoint
            save = train.ASR._save_intra_epoch_ckpt

            def save_then_die(self):
                save(self)
                if self.optimizer_step >= args.kill_at_update:
                    die()

            train.ASR._save_intra_epoch_ckpt = save_then_die
        elif args.in_save == "delete:before":
            kill_before_deletion()
        else:
            name, when = args.in_save.split(":")
            file_fault(name, kill_action(when))

    if args.enospc_in_save is not None:
        arm_on_intra_epoch_save(args.at_update)
        file_fault(args.enospc_in_save, enospc_action)

    if args.signal_at_update is not None:
        signal_at_update(args.signal_at_update)

    if args.nan_at_batch is not None:
        objectives = train.ASR.compute_objectives
        seen = {"batches": 0}

        def nan_objectives(self, predictions, batch, stage):
            loss = objectives(self, predictions, batch, stage)
            if stage == train.sb.Stage.TRAIN:
                seen["batches"] += 1
                if seen["batches"] == args.nan_at_batch:
                    return loss * float("nan")
            return loss

        train.ASR.compute_objectives = nan_objectives

    done = {}
    status = train.exit_status_of(lambda: done.setdefault("brain", train.main(rest)))  # as train.py's __main__
    if args.dump_params and "brain" in done:
        rank = int(os.environ.get("RANK", 0))
        params = {name: p.detach().cpu().clone() for name, p in done["brain"].modules.named_parameters()}
        torch.save(params, args.dump_params.format(rank=rank))
    sys.exit(status)


if __name__ == "__main__":
    main()
