"""Stopping a training run cleanly when it is told to: SIGTERM (clusters,
spot machines, ``kill``) or SIGUSR1 (SLURM's ``--signal``) ends the update
in progress, saves an intra-epoch checkpoint and exits with status 75
(:class:`~speechbrain_w2vbert.training.stops.Preempted`); running the same
command again continues from there exactly.

:class:`StopSignals` turns the signals into a flag (a second signal while
the checkpoint is written changes nothing). :class:`PreemptibleBrain` is a
``speechbrain.core.Brain`` that checks the flag after every update, all
processes of a DDP run together, and also keeps its intra-epoch
checkpoints and dev evaluations on update boundaries.

Authors: speechbrain-w2vbert contributors
"""

import atexit
import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Callable, Optional

import speechbrain as sb
from speechbrain.core import INTRA_EPOCH_CKPT_FLAG
from speechbrain.utils.distributed import if_main_process

from speechbrain_w2vbert.training.distributed import all_ranks, any_rank
from speechbrain_w2vbert.training.stops import Preempted

__all__ = ["STOP_SIGNALS", "StopSignals", "QuietWorkers", "PreemptibleBrain"]

logger = logging.getLogger(__name__)

#: The signals that stop training with a checkpoint.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

#: What the main process tells its data-loading workers about a SIGTERM
#: (:func:`worker_flag`): nothing yet, a stop is being handled (hold on),
#: or the process is ending (go).
UNDECIDED, HOLD, RELEASE = 0, 1, 2
#: Seconds a worker waits for the main process to say which, after a SIGTERM.
WORKER_WAIT_S = 30.0
_FLAG = None


def worker_flag():
    """The flag shared with this process's data-loading workers (created on
    first use, before the workers fork; set to :data:`RELEASE` when the
    process exits, so that the SIGTERM multiprocessing sends its workers
    at exit ends them at once)."""
    global _FLAG
    if _FLAG is None:
        _FLAG = multiprocessing.Value("i", UNDECIDED, lock=False)
        atexit.register(_release_workers)  # runs before multiprocessing's own exit hook, registered earlier
    return _FLAG


def _release_workers():
    if _FLAG is not None:
        _FLAG.value = RELEASE


class StopSignals:
    """While active (a context manager, in the main thread), SIGTERM and
    SIGUSR1 only record that training should stop; the previous handlers
    come back on exit.

    Arguments
    ---------
    signals : tuple of signal.Signals
        The signals to catch (default: SIGTERM and SIGUSR1).

    Example
    -------
    >>> import os
    >>> stop = StopSignals()
    >>> with stop:
    ...     os.kill(os.getpid(), signal.SIGUSR1)
    ...     os.kill(os.getpid(), signal.SIGUSR1)  # a second one changes nothing
    ...     stop.received, stop.requested()
    ('SIGUSR1', True)
    >>> signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    True
    """

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        #: Name of the first stop signal received, or None.
        self.received: Optional[str] = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        if _FLAG is not None and _FLAG.value == HOLD:  # the stop is handled: a later SIGTERM ends the workers
            _FLAG.value = UNDECIDED
        return False

    def _handle(self, signum, frame):
        """Record the signal; never interrupt what is running."""
        del frame
        name = signal.Signals(signum).name
        if self.received is None:
            if _FLAG is not None and _FLAG.value == UNDECIDED:
                _FLAG.value = HOLD  # the workers got the scheduler's SIGTERM too: they hold on
            self.received = name
            logger.warning("%s received: stopping after the update in progress, with a checkpoint", name)
        else:
            logger.warning("%s received again: already stopping (the checkpoint is being saved)", name)

    def requested(self) -> bool:
        """Whether any process received a stop signal. Under DDP every
        process must call it at the same point (an all-reduce)."""
        return any_rank(self.received is not None)


def _worker_sigterm(signum, frame):
    """A data-loading worker's SIGTERM handler. A stop the main process
    handles (the scheduler signals every process of a job): the worker
    lives on, and the next SIGTERM ends it. Otherwise (the main process
    ending, or no stop within :data:`WORKER_WAIT_S`): it ends now, as by
    the signal."""
    del frame
    deadline = time.monotonic() + WORKER_WAIT_S
    flag = _FLAG
    while flag is not None and flag.value == UNDECIDED and time.monotonic() < deadline:
        time.sleep(0.02)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if flag is None or flag.value != HOLD:
        os.kill(os.getpid(), signum)


class QuietWorkers:
    """``worker_init_fn`` of data-loading workers: they ignore SIGUSR1 and
    the first SIGTERM of a stop, which a scheduler sends to every process
    of a job.

    Otherwise a worker dies at once and PyTorch raises its death in the
    main process (its SIGCHLD handler), wherever training is, before the
    checkpoint is written. A worker tells that SIGTERM from the one
    multiprocessing sends its workers when the main process exits through
    :func:`worker_flag` (create it in the main process before the workers
    start, as the constructor does); a second SIGTERM always ends a worker.

    Arguments
    ---------
    then : callable, optional
        The ``worker_init_fn`` to call afterwards (with the worker id).

    Example
    -------
    >>> QuietWorkers(print)(3)
    3
    >>> signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    True
    >>> _ = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    >>> _ = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    """

    def __init__(self, then: Optional[Callable[[int], None]] = None):
        self.then = then
        worker_flag()

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _worker_sigterm)
        if self.then is not None:
            self.then(worker_id)


class PreemptibleBrain(sb.Brain):
    """A ``Brain`` whose training stops cleanly on SIGTERM and SIGUSR1.

    During ``fit``, a stop signal lets the update in progress finish (and
    a dev evaluation due at that update); then every process saves an
    intra-epoch checkpoint and raises ``Preempted`` (exit status 75 through
    :func:`~speechbrain_w2vbert.training.stops.exit_status_of`). A signal
    during a dev evaluation at the end of an epoch stops after that epoch's
    checkpoint. Under DDP the flag is all-reduced after every update, so
    all processes stop at the same one even when only one was signalled.

    Beside that, intra-epoch checkpoints are saved only between updates
    (accumulated gradients are not checkpointed), dev is also evaluated
    every ``valid_interval_steps`` updates (``mid_epoch_batch`` holds the
    batch index meanwhile; ``on_mid_epoch_valid_end`` is called after it,
    with the training state restored), data-loading workers ignore the stop
    signals (:class:`QuietWorkers`), and at the start of ``fit`` a
    checkpointer with ``warn_if_short_of_space`` (``AtomicCheckpointer``)
    checks the free space.

    Arguments
    ---------
    *args, **kwargs
        As for ``sb.Brain``.
    valid_interval_steps : int
        Also evaluate dev every this many updates inside an epoch (>= 0;
        default 0: at the end of each epoch only).

    Example
    -------
    >>> import torch
    >>> class Fit(PreemptibleBrain):
    ...     def compute_forward(self, batch, stage):
    ...         return self.modules.layer(batch[0])
    ...     def compute_objectives(self, predictions, batch, stage):
    ...         return torch.nn.functional.mse_loss(predictions, batch[1])
    >>> brain = Fit({"layer": torch.nn.Linear(1, 1)}, lambda params: torch.optim.SGD(params, 0.1))
    >>> data = [(torch.ones(1, 1), torch.zeros(1, 1))] * 4
    >>> brain.fit(range(1), data, progressbar=False)
    >>> brain.optimizer_step, brain.stop_signals.received
    (4, None)
    """

    def __init__(self, *args, valid_interval_steps: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        if valid_interval_steps < 0:
            raise ValueError(f"valid_interval_steps must be >= 0, got {valid_interval_steps}")
        self.valid_interval_steps = valid_interval_steps
        self.stop_signals = StopSignals()
        self.epoch = 0
        self.valid_loader = None
        self.mid_epoch_batch = None  # batch index while dev runs inside an epoch
        self._stopping = False
        self._last_valid_update = None

    def fit(self, *args, **kwargs):
        """As ``sb.Brain.fit``, with SIGTERM and SIGUSR1 turned into a stop
        with a checkpoint (see the class docstring)."""
        with self.stop_signals:
            return super().fit(*args, **kwargs)

    def on_fit_start(self):
        """As ``sb.Brain``'s (recovery included); then warns when the
        checkpoints' folder has room for fewer than two."""
        super().on_fit_start()
        if hasattr(self.checkpointer, "warn_if_short_of_space"):
            self.checkpointer.warn_if_short_of_space()

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """As ``sb.Brain``'s; workers ignore the stop signals; the dev
        loader is kept for the evaluations inside epochs."""
        if loader_kwargs.get("num_workers", 0) > 0:
            loader_kwargs["worker_init_fn"] = QuietWorkers(loader_kwargs.get("worker_init_fn"))
        loader = super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)
        if stage == sb.Stage.VALID:
            self.valid_loader = loader
        return loader

    def _fit_train(self, train_set, epoch, enable):
        self.epoch = epoch
        super()._fit_train(train_set, epoch, enable)

    def _should_save_intra_epoch_ckpt(self, last_ckpt_time, steps_since_ckpt):
        """After each update (the loss average included): the dev
        evaluation when due, then the stop check, then ``sb.Brain``'s
        interval; never inside an update."""
        if self.step % self.grad_accumulation_factor:
            return False
        interval = self.valid_interval_steps
        if (interval and self.optimizer_step % interval == 0 and self.valid_loader is not None
                and self._last_valid_update != self.optimizer_step):
            self._last_valid_update = self.optimizer_step
            self._valid_inside_epoch()
        if self.stop_signals.requested():
            self._stopping = True
            return True
        return super()._should_save_intra_epoch_ckpt(last_ckpt_time, steps_since_ckpt)

    def _valid_inside_epoch(self):
        """Dev evaluation inside an epoch (``_fit_valid`` resets ``step``
        and the model's mode, so the training state is kept aside)."""
        step, avg_loss = self.step, self.avg_train_loss
        self.step, self.mid_epoch_batch = 0, step
        try:
            self._fit_valid(self.valid_loader, self.epoch, not self.noprogressbar and if_main_process())
        finally:
            self.step, self.avg_train_loss, self.mid_epoch_batch = step, avg_loss, None
            self.modules.train()
        self.on_mid_epoch_valid_end()

    def on_mid_epoch_valid_end(self):
        """Called after a dev evaluation inside an epoch, the training state
        restored: where a checkpoint with the dev scores is saved. Default:
        nothing."""

    def _save_intra_epoch_ckpt(self):
        """As ``sb.Brain``'s; when stopping, then raises ``Preempted``."""
        if not self._stopping:
            return super()._save_intra_epoch_ckpt()
        by = self._stop_reason()
        if self.checkpointer is not None:
            self.checkpointer.save_and_keep_only(
                end_of_epoch=False, num_to_keep=1, ckpt_predicate=lambda c: INTRA_EPOCH_CKPT_FLAG in c.meta,
                meta={INTRA_EPOCH_CKPT_FLAG: True, "stopped by": by})
        raise self._preempted(by, f"update {self.optimizer_step} (epoch {self.epoch}, batch {self.step})")

    def _fit_valid(self, valid_set, epoch, enable):
        """As ``sb.Brain``'s; at the end of an epoch, then stops if asked
        (saving an end-of-epoch checkpoint unless one was saved meanwhile)."""
        saves = getattr(self.checkpointer, "saves", None)
        super()._fit_valid(valid_set, epoch, enable)
        if self.mid_epoch_batch is None and self.stop_signals.requested():
            by = self._stop_reason()
            if self.checkpointer is not None and (saves is None or self.checkpointer.saves == saves):
                self.checkpointer.save_checkpoint(end_of_epoch=True)
            raise self._preempted(by, f"the end of epoch {epoch} (update {self.optimizer_step})")

    def _stop_reason(self) -> str:
        """The first stop signal received, and by which process under DDP
        (every process calls this at the same point)."""
        received = all_ranks(self.stop_signals.received)
        rank, name = next((r, n) for r, n in enumerate(received) if n is not None)
        return name if len(received) == 1 else f"{name} (rank {rank})"

    def _preempted(self, by: str, where: str) -> Preempted:
        """The stop, with what to do next."""
        folder = getattr(self.checkpointer, "checkpoints_dir", None)
        saved = f"with a checkpoint in {folder}" if folder is not None else "without a checkpointer"
        return Preempted(f"{by}: stopped at {where} {saved} (exit status {Preempted.exit_status}); run the same "
                         "command again to continue from it")
