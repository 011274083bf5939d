"""``AtomicCheckpointer``: a checkpoint is complete or absent whatever the
moment a process is killed, a broken checkpoint (as SpeechBrain's own
``Checkpointer`` leaves it: meta file present, a parameter file truncated
or missing) is skipped and moved aside, a full disk stops with a clear
message and an intact previous checkpoint, and the size estimate matches
the files written. Tiny recoverables, no training through the recipe."""

import errno
import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from speechbrain.utils.checkpoints import Checkpointer, torch_save

from speechbrain_w2vbert.training import checkpoints
from speechbrain_w2vbert.training.checkpoints import BROKEN_FOLDER, SAVING_PREFIX, SIZES_KEY, AtomicCheckpointer
from speechbrain_w2vbert.training.counters import Counters
from speechbrain_w2vbert.training.stops import CheckpointWriteError, NoLoadableCheckpoint, exit_status_of
from tests.helpers import ROOT


def recoverables(seed=0, size=(4, 3)):
    """A layer, its AdamW (one step taken), and JSON counters."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(*size)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    layer(torch.ones(2, size[0])).sum().backward()
    optimizer.step()
    counters = Counters(["updates"])
    counters.add("updates", seed + 1)
    return {"layer": layer, "optimizer": optimizer, "counters": counters}


def same_layer(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def two_checkpoints(folder, checkpointer_class=Checkpointer):
    """An older and a newer checkpoint (different weights) saved by
    ``checkpointer_class`` (SpeechBrain's: the layout 0.1.x wrote)."""
    saved = []
    for seed in (1, 2):
        objects = recoverables(seed)
        saved.append(checkpointer_class(folder, objects).save_checkpoint(meta={"seed": seed}))
        saved[-1] = (saved[-1], objects)
    return saved


@pytest.mark.slow
def test_a_checkpoint_is_complete_or_absent_wherever_the_save_is_killed(tmp_path):
    """SIGKILL before, during and after each file of a checkpoint (and its
    meta file), and before the older checkpoint is deleted: the restart
    loads the newest complete checkpoint and ends bitwise like a run
    without the kill (tests/kill_in_save.py)."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "kill_in_save.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    files = ["layer", "optimizer", "counters", "schedule", "epochs", "CKPT"]
    assert [r["point"] for r in results] == [f"{f}:{w}" for f in files for w in ("before", "during", "after")] + [
        "delete:before"]
    for result in results:
        assert result["killed"], result
        completed = result["point"] == "delete:before"  # killed once the new checkpoint was in place
        unfinished = [name for name in result["left"] if name.startswith(SAVING_PREFIX)]
        assert len(unfinished) == (0 if completed else 1), result
        assert result["loaded_meta_updates"] == result["resumed_at"] == (4 if completed else 3), result
        assert result["bitwise"] and result["compared"] == 8, result
        assert all(name.startswith("CKPT+") for name in result["after_restart"]), result  # nothing aside, no leftover


def test_its_checkpoints_are_speechbrains_and_back(tmp_path):
    """The folder layout is SpeechBrain's: its own Checkpointer loads what
    AtomicCheckpointer saved, and the other way round."""
    saved_objects = recoverables(1)
    ours = AtomicCheckpointer(tmp_path / "ours", saved_objects).save_checkpoint(meta={"WER": 50.0})
    assert sorted(p.name for p in ours.path.iterdir()) == ["CKPT.yaml", "counters.ckpt", "layer.ckpt",
                                                          "optimizer.ckpt"]
    assert ours.meta[SIZES_KEY] == {p.name: p.stat().st_size for p in ours.path.iterdir() if p.suffix == ".ckpt"}
    loaded_objects = recoverables(5)
    found = Checkpointer(tmp_path / "ours", loaded_objects).recover_if_possible(min_key="WER")
    assert found.path == ours.path and same_layer(loaded_objects["layer"], saved_objects["layer"])
    assert loaded_objects["counters"]["updates"] == 2

    Checkpointer(tmp_path / "theirs", saved_objects).save_checkpoint()
    loaded_objects = recoverables(5)
    assert AtomicCheckpointer(tmp_path / "theirs", loaded_objects).recover_if_possible() is not None
    assert same_layer(loaded_objects["layer"], saved_objects["layer"])
    assert loaded_objects["optimizer"].state_dict()["state"][0]["exp_avg"].equal(
        saved_objects["optimizer"].state_dict()["state"][0]["exp_avg"])


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


TORN = {
    "truncated": (lambda p: truncate(p / "layer.ckpt"), "layer.ckpt is truncated or corrupt"),
    "missing": (lambda p: os.remove(p / "optimizer.ckpt"), "optimizer.ckpt is missing"),
    "empty JSON": (lambda p: open(p / "counters.ckpt", "w").close(), "counters.ckpt is empty"),
    "empty meta": (lambda p: open(p / "CKPT.yaml", "w").close(), "CKPT.yaml is incomplete"),
    "no meta": (lambda p: os.remove(p / "CKPT.yaml"), "no CKPT.yaml"),
    "unreadable JSON": (lambda p: open(p / "counters.ckpt", "w").write("{\"upd"), "counters: JSONDecodeError"),
}


@pytest.mark.parametrize("damage", TORN, ids=list(TORN))
def test_a_torn_checkpoint_of_the_0_1_layout_is_skipped_and_moved_aside(damage, tmp_path, caplog):
    """What SpeechBrain's Checkpointer (0.1.x) leaves when killed during a
    save: the newest checkpoint's meta is there, a file is cut or missing.
    It is skipped with a warning naming it and the problem, the older one
    loads, and the torn one is moved into broken/, its files kept."""
    (older, older_objects), (newer, _) = two_checkpoints(tmp_path)
    tear, problem = TORN[damage]
    tear(newer.path)
    kept = sorted(os.listdir(newer.path))
    objects = recoverables(7)
    with caplog.at_level(logging.WARNING):
        loaded = AtomicCheckpointer(tmp_path, objects).recover_if_possible()
    assert loaded.path == older.path and same_layer(objects["layer"], older_objects["layer"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(newer.path) in w and problem in w and "cannot be loaded" in w for w in warnings), warnings
    aside = tmp_path / BROKEN_FOLDER / newer.path.name
    assert sorted(os.listdir(aside)) == kept and not newer.path.exists()
    assert [c.path for c in AtomicCheckpointer(tmp_path, objects).list_checkpoints()] == [older.path]


def test_when_no_checkpoint_loads_it_stops_naming_them_and_moves_nothing(tmp_path):
    (older, _), (newer, _) = two_checkpoints(tmp_path)
    truncate(older.path / "layer.ckpt")
    os.remove(newer.path / "optimizer.ckpt")
    objects = recoverables(7)
    before = {k: v.clone() for k, v in objects["layer"].state_dict().items()}
    checkpointer = AtomicCheckpointer(tmp_path, objects)
    with pytest.raises(NoLoadableCheckpoint) as stop:
        checkpointer.recover_if_possible()
    message = str(stop.value)
    assert str(older.path) in message and str(newer.path) in message and "optimizer.ckpt is missing" in message
    assert "--start_over=True" in message and older.path.exists() and newer.path.exists()
    assert exit_status_of(checkpointer.recover_if_possible) == 66

    # asked to start over: both are set aside and training starts from the initial state
    assert AtomicCheckpointer(tmp_path, objects, start_over=True).recover_if_possible() is None
    assert sorted(os.listdir(tmp_path / BROKEN_FOLDER)) == sorted([older.path.name, newer.path.name])
    assert all(torch.equal(v, before[k]) for k, v in objects["layer"].state_dict().items())


def test_starting_over_after_a_failed_load_asks_for_a_fresh_process(tmp_path):
    """A file that passes the checks but does not load may have changed
    the model halfway: the checkpoints are set aside and the run stops, so
    that the next one starts from the initial state."""
    only = Checkpointer(tmp_path, recoverables(1)).save_checkpoint()
    with open(only.path / "counters.ckpt", "w") as f:
        f.write("{not json")
    with pytest.raises(NoLoadableCheckpoint, match="run the same command again"):
        AtomicCheckpointer(tmp_path, recoverables(7), start_over=True).recover_if_possible()
    assert os.listdir(tmp_path / BROKEN_FOLDER) == [only.path.name]
    assert AtomicCheckpointer(tmp_path, recoverables(7)).recover_if_possible() is None  # the next run: from scratch


def test_a_checkpoint_of_another_model_is_an_error_and_stays(tmp_path):
    """A state that does not fit (another configuration) is not "broken":
    nothing is moved."""
    (_, _), (newer, _) = two_checkpoints(tmp_path)
    with pytest.raises(RuntimeError, match="does not fit this model: layer: RuntimeError: Error"):
        AtomicCheckpointer(tmp_path, recoverables(7, size=(5, 3))).recover_if_possible()
    assert newer.path.exists() and not (tmp_path / BROKEN_FOLDER).exists()


def full_disk_hook(obj, path):
    """torch_save into /dev/full: the kernel's ENOSPC through torch's writer."""
    os.symlink("/dev/full", path)
    torch_save(obj, path)


@pytest.mark.parametrize("fault", ["ENOSPC in torch's writer", "ENOSPC in a JSON file", "EIO in fsync"])
def test_a_write_error_stops_with_the_folder_and_free_space(fault, tmp_path, monkeypatch):
    objects = recoverables(1)
    checkpointer = AtomicCheckpointer(tmp_path, objects)
    previous = checkpointer.save_checkpoint(meta={"n": 1})
    if fault == "ENOSPC in torch's writer":
        checkpointer.custom_save_hooks["optimizer"] = full_disk_hook
    elif fault == "ENOSPC in a JSON file":
        checkpointer.custom_save_hooks["counters"] = lambda obj, path: (os.symlink("/dev/full", path), obj.save(path))
    else:
        def failing_fsync(descriptor):
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(checkpoints.os, "fsync", failing_fsync)
    with pytest.raises(CheckpointWriteError) as stop:
        checkpointer.save_and_keep_only(meta={"n": 2})
    monkeypatch.undo()
    message = str(stop.value)
    free = shutil.disk_usage(tmp_path)
    assert message.startswith(f"could not write a checkpoint in {tmp_path}: ")
    assert f"free of {checkpoints.human_bytes(free.total)}" in message
    assert f"The previous checkpoint {previous.path} is intact" in message
    cause = {"ENOSPC in torch's writer": "RuntimeError: ",  # torch's zip writer does not give the errno
             "ENOSPC in a JSON file": "OSError: [Errno 28] No space left on device",
             "EIO in fsync": "OSError: [Errno 5] Input/output error"}[fault]
    assert cause in message, message
    assert sorted(os.listdir(tmp_path)) == [previous.path.name]  # the unfinished one removed, the old one kept
    assert stop.value.exit_status == 74
    objects = recoverables(7)
    assert AtomicCheckpointer(tmp_path, objects).recover_if_possible().path == previous.path
    assert objects["counters"]["updates"] == 2


def test_unfinished_saves_are_removed_at_recovery(tmp_path):
    two_checkpoints(tmp_path, AtomicCheckpointer)
    unfinished = tmp_path / f"{SAVING_PREFIX}CKPT+2099-01-01+00-00-00+00"
    unfinished.mkdir()
    (unfinished / "layer.ckpt").write_bytes(b"PK\x03\x04 half")
    assert AtomicCheckpointer(tmp_path, recoverables(7)).recover_if_possible() is not None
    assert not unfinished.exists()


def test_the_size_estimate_matches_the_files_and_warns_when_short(tmp_path, monkeypatch, caplog):
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 128)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    checkpointer = AtomicCheckpointer(tmp_path, {"layer": layer, "optimizer": optimizer})
    modules, optimizers = checkpointer.checkpoint_bytes()  # before the first step: Adam's two moments, estimated
    assert modules == 4 * (256 * 128 + 128) and optimizers == 2 * modules
    layer(torch.ones(1, 256)).sum().backward()
    optimizer.step()
    assert checkpointer.checkpoint_bytes() == (modules, optimizers + 2 * 4)  # measured: the moments and the steps
    saved = checkpointer.save_checkpoint()
    written = sum(size for name, size in saved.meta[SIZES_KEY].items())
    assert modules + optimizers < written < 1.05 * (modules + optimizers) + 10_000  # torch's zip framing

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: usage._replace(free=written * 3 // 2))
    with caplog.at_level(logging.WARNING):
        warning = checkpointer.warn_if_short_of_space()
    assert warning.startswith(f"{tmp_path} has ") and "room for fewer than two checkpoints" in warning
    assert warning in caplog.text
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: usage._replace(free=written * 3))
    assert checkpointer.warn_if_short_of_space() is None


def test_the_meta_file_records_what_speechbrain_records(tmp_path):
    saved = AtomicCheckpointer(tmp_path, recoverables(1)).save_checkpoint(meta={"WER": 12.5}, end_of_epoch=False)
    with open(saved.path / "CKPT.yaml", encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    assert meta["WER"] == 12.5 and meta["end-of-epoch"] is False and "unixtime" in meta and meta == saved.meta
