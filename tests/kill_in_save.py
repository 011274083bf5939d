"""Kills a process inside an ``AtomicCheckpointer`` save, at every file of
the checkpoint in turn, and restarts from what is left on disk.

    python tests/kill_in_save.py FOLDER     # one JSON line per kill point

A tiny training (a linear layer, AdamW, the package's ``Counters`` and
``WarmupLinearDecay``, SpeechBrain's ``EpochCounter``: torch, JSON and text
files) saves a checkpoint after each of 6 updates. For each kill point a
forked child trains and SIGKILLs itself during the save after update 4:
before a file is opened, with half of it written, or right after it
(``CKPT.yaml`` included), or once the checkpoint is saved and before the
older one is deleted. The parent then restarts as a rerun would: recovers,
trains to update 6, and compares every tensor with an uninterrupted run.
Test-only fault injection, kept out of the package.
"""

import json
import os
import signal
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from speechbrain.utils.checkpoints import DEFAULT_SAVE_HOOKS, get_default_hook  # noqa: E402
from speechbrain.utils.epoch_loop import EpochCounter  # noqa: E402

from speechbrain_w2vbert.training.checkpoints import SAVING_PREFIX, AtomicCheckpointer  # noqa: E402
from speechbrain_w2vbert.training.counters import Counters  # noqa: E402
from speechbrain_w2vbert.training.schedulers import WarmupLinearDecay  # noqa: E402
from tests.helpers import die, kill_action  # noqa: E402

UPDATES, KILLED_SAVE = 6, 4
FILES = ["layer", "optimizer", "counters", "schedule", "epochs", "CKPT"]


def setup(folder):
    """The training state, freshly initialised, and its checkpointer."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 4)
    state = {"layer": layer, "optimizer": torch.optim.AdamW(layer.parameters(), lr=0.1),
             "counters": Counters(["updates"]), "schedule": WarmupLinearDecay(0.1, 2), "epochs": EpochCounter(3)}
    return state, AtomicCheckpointer(folder, dict(state))


def train(state, checkpointer, kill=None):
    """Updates from where the state is to UPDATES, a checkpoint after each."""
    while state["counters"]["updates"] < UPDATES:
        update = state["counters"]["updates"]
        generator = torch.Generator().manual_seed(update)
        x, y = torch.randn(16, 8, generator=generator), torch.randn(16, 4, generator=generator)
        state["schedule"](state["optimizer"], update, UPDATES)
        torch.nn.functional.mse_loss(state["layer"](x), y).backward()
        state["optimizer"].step()
        state["optimizer"].zero_grad()
        state["counters"].add("updates")
        if kill is not None and update + 1 == KILLED_SAVE:
            arm(checkpointer, *kill)
        checkpointer.save_and_keep_only(meta={"updates": update + 1}, end_of_epoch=False)


def arm(checkpointer, name, when):
    """Make this process die at (name, when) of the next save."""
    fault = kill_action(when)
    if name == "delete":
        checkpointer.delete_checkpoints = lambda **kwargs: die()
    elif name == "CKPT":
        write_meta = checkpointer._save_checkpoint_metafile

        def faulty_meta(path, *args):
            result = {}
            fault(path, lambda: result.setdefault("meta", write_meta(path, *args)))
            return result["meta"]

        checkpointer._save_checkpoint_metafile = faulty_meta
    else:
        hook = get_default_hook(checkpointer.recoverables[name], DEFAULT_SAVE_HOOKS)
        checkpointer.custom_save_hooks[name] = lambda obj, path: fault(path, lambda: hook(obj, path))


def tensors(state):
    """Every tensor of the training state, by name."""
    found = {f"layer.{k}": v for k, v in state["layer"].state_dict().items()}
    for index, values in state["optimizer"].state_dict()["state"].items():
        found.update({f"optimizer.{index}.{k}": v for k, v in values.items() if torch.is_tensor(v)})
    return found


def main(root):
    torch.set_num_threads(1)
    straight, checkpointer = setup(os.path.join(root, "straight"))
    train(straight, checkpointer)
    expected = tensors(straight)
    points = [(name, when) for name in FILES for when in ("before", "during", "after")] + [("delete", "before")]
    for name, when in points:
        folder = os.path.join(root, f"{name}-{when}")
        pid = os.fork()
        if pid == 0:  # the run that is killed
            try:
                train(*setup(folder), kill=(name, when))
            finally:
                os._exit(3)  # not killed: a failure
        _, status = os.waitpid(pid, 0)
        left = sorted(p for p in os.listdir(folder))
        state, checkpointer = setup(folder)  # the rerun
        loaded = checkpointer.recover_if_possible()
        resumed_at = state["counters"]["updates"]
        train(state, checkpointer)
        final = tensors(state)
        print(json.dumps({
            "point": f"{name}:{when}", "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
            "left": left, "loaded_meta_updates": loaded.meta["updates"] if loaded else None, "resumed_at": resumed_at,
            "after_restart": sorted(os.listdir(folder)), "compared": len(expected),
            "bitwise": final.keys() == expected.keys() and all(torch.equal(final[k], expected[k]) for k in expected),
        }), flush=True)
    assert not any(p.startswith(SAVING_PREFIX) for p in os.listdir(os.path.join(root, "straight")))


if __name__ == "__main__":
    main(sys.argv[1])
