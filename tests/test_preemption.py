"""Stopping on SIGTERM and SIGUSR1 (``PreemptibleBrain``, ``StopSignals``)
on the tiny Brain of tests/tiny_brain.py: the update in progress ends, a
checkpoint is saved at it, the run stops with status 75, and running it
again ends bitwise like an uninterrupted run; under torchrun every rank
stops at the same update, whichever got the signal."""

import os
import re
import signal
import subprocess
import sys

import pytest
import speechbrain as sb
import torch
import yaml

from speechbrain_w2vbert.training.checkpoints import AtomicCheckpointer
from speechbrain_w2vbert.training.preemption import QuietWorkers, StopSignals
from speechbrain_w2vbert.training.stops import exit_status_of
from tests import tiny_brain
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The tensors at the end of an uninterrupted tiny training."""
    brain, counter = tiny_brain.build(str(tmp_path_factory.mktemp("straight")))
    tiny_brain.fit(brain, counter)
    return tiny_brain.tensors(brain)


def newest(output):
    """(meta, brain.ckpt's content) of a run's newest checkpoint."""
    checkpoint = AtomicCheckpointer(os.path.join(output, "save")).find_checkpoint()
    with open(checkpoint.path / "brain.ckpt", encoding="utf-8") as f:
        return checkpoint.meta, yaml.safe_load(f)


def assert_bitwise(tensors, expected):
    assert tensors.keys() == expected.keys() and len(expected) == 8  # weight, bias; per parameter Adam's 3 tensors
    for name in expected:
        assert torch.equal(tensors[name], expected[name]), name


@pytest.mark.parametrize("update", [3, 5], ids=["mid-epoch", "last update of the epoch"])
@pytest.mark.parametrize("sig", ["TERM", "USR1"])
def test_a_stop_signal_saves_at_that_update_and_the_rerun_is_exact(sig, update, straight, tmp_path):
    before = signal.getsignal(getattr(signal, f"SIG{sig}"))
    brain, counter = tiny_brain.build(str(tmp_path))
    brain.signal_at = (update, sig, "self")
    assert exit_status_of(lambda: tiny_brain.fit(brain, counter)) == 75
    assert signal.getsignal(getattr(signal, f"SIG{sig}")) is before  # handlers restored after fit
    meta, state = newest(tmp_path)
    assert state["optimizer_step"] == update and state["step"] == update  # the update in progress was finished
    assert meta["stopped by"] == f"SIG{sig}" and meta["end-of-epoch"] is False

    brain, counter = tiny_brain.build(str(tmp_path))  # the same command again
    tiny_brain.fit(brain, counter)
    assert_bitwise(tiny_brain.tensors(brain), straight)


def test_a_signal_during_the_dev_evaluation_stops_after_the_epoch(straight, tmp_path):
    brain, counter = tiny_brain.build(str(tmp_path))
    brain.signal_at = ("dev", "TERM", "self")
    assert exit_status_of(lambda: tiny_brain.fit(brain, counter)) == 75
    meta, state = newest(tmp_path)
    assert meta["end-of-epoch"] is True and state["optimizer_step"] == 5 and counter.current == 1
    brain, counter = tiny_brain.build(str(tmp_path))
    tiny_brain.fit(brain, counter)
    assert_bitwise(tiny_brain.tensors(brain), straight)


def test_a_second_signal_during_the_save_does_not_tear_it(tmp_path, caplog):
    from speechbrain.utils.checkpoints import torch_save

    brain, counter = tiny_brain.build(str(tmp_path))
    brain.signal_at = (2, "TERM", "self")

    def signalled_again(obj, path):
        os.kill(os.getpid(), signal.SIGTERM)  # the scheduler insists while the checkpoint is written
        torch_save(obj, path)

    brain.checkpointer.custom_save_hooks["layer"] = signalled_again
    with caplog.at_level("WARNING"):
        assert exit_status_of(lambda: tiny_brain.fit(brain, counter)) == 75
    assert "SIGTERM received again: already stopping" in caplog.text
    checkpointer = AtomicCheckpointer(os.path.join(tmp_path, "save"), dict(brain.checkpointer.recoverables))
    (checkpoint,) = checkpointer.list_checkpoints()
    assert checkpointer.problem_of(checkpoint) is None and newest(tmp_path)[1]["optimizer_step"] == 2


def test_with_gradient_accumulation_it_stops_between_updates(tmp_path):
    brain, counter = tiny_brain.build(str(tmp_path), grad_accumulation_factor=2)
    brain.signal_at = (2, "USR1", "self")  # during the first of the two batches of update 2
    assert exit_status_of(lambda: tiny_brain.fit(brain, counter)) == 75
    assert newest(tmp_path)[1] == {"step": 4, "optimizer_step": 2, "avg_train_loss": brain.avg_train_loss}


def test_dev_inside_epochs_runs_before_the_stop_with_the_training_state_kept(tmp_path):
    brain, counter = tiny_brain.build(str(tmp_path), valid_interval_steps=2)
    tiny_brain.fit(brain, counter)
    assert brain.mid_epoch_checkpoints == 5  # updates 2, 4 | 6, 8, 10 (5 updates an epoch)
    brain, counter = tiny_brain.build(str(tmp_path / "stopped"), valid_interval_steps=2)
    brain.signal_at = (4, "TERM", "self")
    assert exit_status_of(lambda: tiny_brain.fit(brain, counter)) == 75
    assert brain.mid_epoch_checkpoints == 2  # the evaluation due at the stop's update ran first
    checkpoints = AtomicCheckpointer(tmp_path / "stopped" / "save").find_checkpoints()
    assert [c.meta.get("mid-epoch") for c in checkpoints[:2]] == [None, 4]  # the stop's, then the dev one at 4


def test_data_loading_workers_live_through_a_sigterm():
    """A scheduler signals every process of the job: a worker with
    QuietWorkers keeps serving while the main process handles the stop
    (PyTorch would report its death in the main process at once), and a
    second SIGTERM still ends it."""

    class Handlers(torch.utils.data.Dataset):
        def __len__(self):
            return 1000

        def __getitem__(self, index):
            return os.getpid(), signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    loader = torch.utils.data.DataLoader(Handlers(), batch_size=None, num_workers=1, worker_init_fn=QuietWorkers())
    items = iter(loader)
    worker, default = next(items)
    assert not default
    with StopSignals() as stop:
        os.kill(worker, signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # until an item made after the signal arrives
            pid, default = next(items)
            if default:
                break
    assert stop.received == "SIGTERM"
    assert default and pid == worker  # the same worker, alive, its next SIGTERM deadly
    del items


WORKERS_AT_EXIT = """
import os, signal, sys, torch
sys.path.insert(0, {root!r})
from speechbrain_w2vbert.training.preemption import QuietWorkers
loader = torch.utils.data.DataLoader(list(range(100)), batch_size=None, num_workers=2, worker_init_fn=QuietWorkers())
items = iter(loader)  # alive at exit: multiprocessing terminates and joins its workers
print(next(items), flush=True)
{kill}
"""


@pytest.mark.parametrize("kill", ["", "os.kill(items._workers[0].pid, signal.SIGTERM)"],
                         ids=["workers alive at exit", "a worker signalled alone"])
def test_a_process_with_quiet_workers_still_exits(kill):
    """A worker signalled without a stop in the main process ends (after
    its wait), and a process ending with its workers alive ends at once:
    multiprocessing's SIGTERM at exit is not taken for a scheduler's."""
    code = WORKERS_AT_EXIT.format(root=ROOT, kill=kill)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if kill:  # the worker's wait, shortened
        code = code.replace("from speechbrain_w2vbert.training.preemption import QuietWorkers",
                            "from speechbrain_w2vbert.training import preemption\n"
                            "preemption.WORKER_WAIT_S = 1.0\nQuietWorkers = preemption.QuietWorkers")
        code += "import time\ntime.sleep(3)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.stdout.split()[:1] == ["0"], proc.stderr[-2000:]
    if kill:  # the worker ended: PyTorch reports it in the main process, which fails
        assert proc.returncode != 0 and "killed by signal" in proc.stderr, proc.stderr[-2000:]
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_brains_loaders_give_their_workers_quiet_signals(tmp_path):
    brain, _ = tiny_brain.build(str(tmp_path))
    user_init = print
    loader = brain.make_dataloader(tiny_brain.Data(4, 0), sb.Stage.TRAIN, batch_size=2, num_workers=1,
                                   worker_init_fn=user_init)
    assert isinstance(loader.worker_init_fn, QuietWorkers) and loader.worker_init_fn.then is user_init
    assert brain.make_dataloader(tiny_brain.Data(4, 0), sb.Stage.VALID, batch_size=2).worker_init_fn is None


def test_stop_signals_outside_the_main_thread_change_nothing():
    import threading

    seen = {}

    def enter():
        with StopSignals():
            seen["handler"] = signal.getsignal(signal.SIGTERM)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen["handler"] is signal.getsignal(signal.SIGTERM)


def torchrun(*args, check=True):
    """tests/tiny_brain.py under torchrun, 2 gloo processes."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([*launcher, os.path.join(ROOT, "tests", "tiny_brain.py"), *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def ddp_straight(tmp_path_factory):
    """Rank 0's tensors at the end of an uninterrupted torchrun training."""
    folder = tmp_path_factory.mktemp("ddp_straight")
    torchrun(folder / "run", "--dump", folder / "straight_{rank}.pt")
    return torch.load(folder / "straight_0.pt")


@pytest.mark.slow
@pytest.mark.parametrize("target", ["rank1", pytest.param("parent", marks=pytest.mark.extended)],
                         ids=["SIGUSR1 to rank 1 only", "SIGTERM to torchrun"])
def test_under_torchrun_every_rank_stops_at_the_same_update(target, ddp_straight, tmp_path):
    """One rank signalled (SIGUSR1), or torchrun signalled (SIGTERM, which
    it forwards to each worker): both ranks stop at the same update, the
    main one writes its checkpoint, each worker exits 75, and the rerun
    ends bitwise like an uninterrupted DDP run."""
    sig = "USR1" if target == "rank1" else "TERM"
    stopped = torchrun(tmp_path / "run", f"--signal-at-update=3:{sig}:{target}", check=False)
    assert stopped.returncode != 0
    if target == "rank1":  # torchrun reports each worker's status
        assert stopped.stderr.count("exitcode  : 75") == 2 or "exitcode: 75" in stopped.stderr, stopped.stderr[-3000:]
    meta, state = newest(tmp_path / "run")
    stops = re.findall(r"stopped at update (\d+) ", stopped.stderr)  # one line per rank
    assert stops == [str(state["optimizer_step"])] * 2, stopped.stderr[-3000:]
    if target == "rank1":
        assert state["optimizer_step"] == 3 and meta["stopped by"] == "SIGUSR1 (rank 1)"
    else:  # torchrun forwards the signal when its monitoring loop sees it: at update 3 or a little later
        assert state["optimizer_step"] >= 3 and meta["stopped by"] in ("SIGTERM (rank 0)", "SIGTERM (rank 1)")
    assert len(AtomicCheckpointer(tmp_path / "run" / "save").list_checkpoints()) <= 2
    torchrun(tmp_path / "run", "--dump", tmp_path / "resumed_{rank}.pt")
    for rank in (0, 1):
        assert_bitwise(torch.load(tmp_path / f"resumed_{rank}.pt"), ddp_straight)
