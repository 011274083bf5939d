"""Runs ``recipes/OpenSLR54/train.py`` with test-only fault injection.

    python tests/recipe_runner.py [--kill-at-update N] [--nan-at-batch N]
        [--dump-params PATH] <train.py arguments>

``--kill-at-update N``: the process SIGKILLs itself right after the first
intra-epoch checkpoint saved at or after update N (a hard crash: nothing is
flushed or cleaned up). ``--nan-at-batch N``: the training loss of the N-th
training batch (counted over the whole run) is made NaN.
``--dump-params PATH``: after the run, each process saves its parameters to
``PATH.format(rank=...)``. None of this belongs in the recipe itself.
"""

import argparse
import os
import signal
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "recipes", "OpenSLR54"))  # a script: the recipe's folder

import train  # noqa: E402


def main():
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--kill-at-update", type=int)
    parser.add_argument("--nan-at-batch", type=int)
    parser.add_argument("--dump-params")
    args, rest = parser.parse_known_args()

    if args.kill_at_update is not None:
        save = train.ASR._save_intra_epoch_ckpt

        def save_then_die(self):
            save(self)
            if self.optimizer_step >= args.kill_at_update:
                os.kill(os.getpid(), signal.SIGKILL)

        train.ASR._save_intra_epoch_ckpt = save_then_die

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

    brain = train.main(rest)
    if args.dump_params:
        rank = int(os.environ.get("RANK", 0))
        params = {name: p.detach().cpu().clone() for name, p in brain.modules.named_parameters()}
        torch.save(params, args.dump_params.format(rank=rank))


if __name__ == "__main__":
    main()
