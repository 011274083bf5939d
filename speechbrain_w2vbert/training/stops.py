"""Why a training run stops before its end, and the exit status that says
so: the one table of the recipe's exit statuses (docs/training.md).

====  ==================================================================
  0   done (or an ordinary error: 1, with Python's traceback)
 66   checkpoints exist but none of them loads (``NoLoadableCheckpoint``)
 74   a checkpoint could not be written: disk full, I/O error
      (``CheckpointWriteError``); the previous checkpoint is intact
 75   stopped by SIGTERM or SIGUSR1 after saving a checkpoint
      (``Preempted``): run the same command again to continue
 78   the model collapsed to blanks and ``stop_on_collapse`` is set
      (``CollapsedToBlanks``)
====  ==================================================================

The statuses are those of BSD's ``sysexits.h`` that mean the same thing
(``EX_NOINPUT``, ``EX_IOERR``, ``EX_TEMPFAIL``, ``EX_CONFIG``), so that a
job script can tell "run me again" (75) from a failure.

Authors: speechbrain-w2vbert contributors
"""

import logging
from typing import Callable

__all__ = ["TrainingStop", "NoLoadableCheckpoint", "CheckpointWriteError", "Preempted", "CollapsedToBlanks",
           "exit_status_of"]

logger = logging.getLogger(__name__)


class TrainingStop(Exception):
    """A training run ending early on purpose, with a message for the user
    and the process exit status that tells a job script what happened."""

    #: The process's exit status.
    exit_status = 1
    #: How the message is logged when the process ends.
    log_level = logging.ERROR


class NoLoadableCheckpoint(TrainingStop):
    """Checkpoints exist, none of them loads; nothing was moved."""

    exit_status = 66


class CheckpointWriteError(TrainingStop):
    """A checkpoint could not be written (disk full, I/O error); the
    checkpoints saved before it are intact."""

    exit_status = 74


class Preempted(TrainingStop):
    """Stopped by a signal, after saving a checkpoint to continue from."""

    exit_status = 75
    log_level = logging.WARNING


class CollapsedToBlanks(TrainingStop):
    """Dev output collapsed to blanks and the run was asked to stop then."""

    exit_status = 78


def exit_status_of(main: Callable[[], object]) -> int:
    """Run ``main()`` and return the process exit status: 0, or the
    ``TrainingStop``'s, after logging its message (the traceback of any
    other exception propagates, as Python reports it: status 1).

    A stopped DDP process also leaves its process group, so that every
    rank ends without waiting for the others.

    Arguments
    ---------
    main : callable
        The program, without arguments.

    Returns
    -------
    int

    Example
    -------
    >>> def preempted():
    ...     raise Preempted("SIGTERM: checkpoint saved")
    >>> exit_status_of(preempted), exit_status_of(lambda: None)
    (75, 0)
    """
    try:
        main()
    except TrainingStop as stop:
        logger.log(stop.log_level, "%s", stop)
        import torch.distributed

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        return stop.exit_status
    return 0
