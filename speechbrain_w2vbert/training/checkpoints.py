"""Checkpoints that appear whole or not at all, recovery that skips broken
ones, and the disk space checkpoints need.

SpeechBrain's ``Checkpointer`` writes ``CKPT.yaml`` first and then each
recoverable straight to its final path: a process killed during a save
leaves a checkpoint whose meta file is there and whose parameter file is
truncated or missing, and every restart then fails to load it.
:class:`AtomicCheckpointer` is a drop-in replacement (same arguments, same
folder layout, ``save_and_keep_only`` and DDP as before) that

- writes a checkpoint into a hidden folder, ``CKPT.yaml`` (with each file's
  size) last, fsyncs it and renames it into place: a checkpoint folder is
  complete or absent, and older checkpoints are deleted only after the new
  one is complete;
- turns a write error (disk full, I/O error) into a
  :class:`~speechbrain_w2vbert.training.stops.CheckpointWriteError` naming
  the folder and its free space, the unfinished folder removed;
- on recovery, skips a checkpoint that cannot be loaded (meta unreadable, a
  file missing, truncated or unreadable: an interrupted save of an older
  version, another tool, disk corruption) with a warning naming it and the
  problem, loads the newest one that loads and moves the broken ones aside
  into ``broken/`` (never deleting them). When none loads it stops
  (:class:`~speechbrain_w2vbert.training.stops.NoLoadableCheckpoint`)
  naming them, unless ``start_over`` asks to set them aside and train
  from the start;
- estimates a checkpoint's size (parameters and optimiser state) and warns
  when the folder has room for fewer than two.

Under DDP only the main process writes and moves folders; every process
loads the checkpoint the main process chose, and they agree on load errors.

Authors: speechbrain-w2vbert contributors
"""

import errno
import logging
import os
import pathlib
import shutil
import zipfile
from typing import List, Optional, Tuple

import torch
import yaml
from speechbrain.utils.checkpoints import (
    CKPT_PREFIX,
    DEFAULT_LOAD_HOOKS,
    DEFAULT_SAVE_HOOKS,
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    Checkpointer,
    ckpt_recency,
    get_default_hook,
)
from speechbrain.utils.distributed import MainProcessContext, ddp_broadcast, if_main_process

from speechbrain_w2vbert.training.distributed import all_ranks
from speechbrain_w2vbert.training.stops import CheckpointWriteError, NoLoadableCheckpoint

__all__ = ["AtomicCheckpointer", "SAVING_PREFIX", "BROKEN_FOLDER", "SIZES_KEY", "human_bytes"]

logger = logging.getLogger(__name__)

#: A checkpoint being written is a folder named with this prefix (never a
#: checkpoint to SpeechBrain: it does not start with ``CKPT``).
SAVING_PREFIX = ".saving-"
#: Sub-folder of the checkpoints folder where unloadable checkpoints are moved.
BROKEN_FOLDER = "broken"
#: Key of ``CKPT.yaml`` holding each file's size in bytes, as written.
SIZES_KEY = "file-bytes"
#: Load errors that mean "this checkpoint is not for this model": nothing is
#: moved then (a changed configuration must not set every checkpoint aside).
MISMATCH_MARKERS = ("Error(s) in loading state_dict", "parameter group", "number of parameter groups")


def human_bytes(count: float) -> str:
    """A byte count for people (powers of 1000).

    Example
    -------
    >>> human_bytes(7.2e9), human_bytes(512)
    ('7.2 GB', '512 B')
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} PB"  # pragma: no cover


def _fsync(path: pathlib.Path) -> None:
    """Flush a file, or a folder's entries, to the disk (some file systems
    cannot fsync a folder: that is left alone)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if not (path.is_dir() and error.errno in (errno.EINVAL, errno.ENOTSUP, errno.EBADF)):
            raise
    finally:
        os.close(descriptor)


def _state_bytes(state) -> int:
    """Bytes of the tensors in a (nested) state dict."""
    if torch.is_tensor(state):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_state_bytes(v) for v in state)
    return 0


def _optimizer_bytes(optimizer: torch.optim.Optimizer) -> int:
    """The optimiser's state: measured once it exists, else the moments
    its kind keeps per parameter (Adam-like 2, 3 with amsgrad; SGD 1 with
    momentum; RMSprop and Adagrad 1, more with their options)."""
    if optimizer.state:
        return _state_bytes(dict(optimizer.state))
    kind = type(optimizer).__name__
    total = 0
    for group in optimizer.param_groups:
        if kind == "SGD":
            moments = 1 if group.get("momentum", 0) else 0
        elif kind == "RMSprop":
            moments = 1 + bool(group.get("momentum", 0)) + bool(group.get("centered", False))
        elif kind == "Adagrad":
            moments = 1
        else:  # Adam, AdamW, NAdam, RAdam, Adamax, Adadelta...
            moments = 2 + bool(group.get("amsgrad", False))
        total += moments * sum(p.numel() * p.element_size() for p in group["params"] if p.requires_grad)
    return total


class _LoadError(Exception):
    """A recoverable whose file would not load, with its name."""

    def __init__(self, name, error):
        super().__init__(f"{name}: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}")
        self.mismatch = any(marker in str(error) for marker in MISMATCH_MARKERS)


class AtomicCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer`` with atomic saves and a recovery that
    skips broken checkpoints (see the module docstring).

    Only the main process runs the save hooks (SpeechBrain's default and
    registered hooks save on the main process anyway); hooks that gather
    data from every process (FSDP-style) are not supported.

    Arguments
    ---------
    checkpoints_dir : str or pathlib.Path
        The checkpoints' folder.
    recoverables, custom_load_hooks, custom_save_hooks, allow_partial_load
        As for ``speechbrain.utils.checkpoints.Checkpointer``.
    start_over : bool
        When checkpoints exist but none of them loads: False (default)
        stops with ``NoLoadableCheckpoint`` naming them, moving nothing;
        True moves them into ``broken/`` and lets training start from the
        beginning.
    may_be_missing : mapping, optional
        Recoverables that checkpoints of earlier versions lack: loaded when
        a checkpoint has them (SpeechBrain's ``optional_load``).

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> layer = torch.nn.Linear(2, 2)
    >>> checkpointer = AtomicCheckpointer(folder, {"layer": layer})
    >>> saved = checkpointer.save_checkpoint(meta={"loss": 1.0})
    >>> sorted(p.name for p in saved.path.iterdir()), saved.meta[SIZES_KEY]["layer.ckpt"] > 0
    (['CKPT.yaml', 'layer.ckpt'], True)
    >>> with open(saved.path / "layer.ckpt", "r+b") as f:  # torn, as by a kill during a save
    ...     _ = f.truncate(100)
    >>> AtomicCheckpointer(folder, {"layer": layer}).recover_if_possible()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    speechbrain_w2vbert.training.stops.NoLoadableCheckpoint: none of the 1 checkpoint(s) in ... loads: ...
    """

    def __init__(self, checkpoints_dir, recoverables=None, custom_load_hooks=None, custom_save_hooks=None,
                 allow_partial_load=False, start_over=False, may_be_missing=None):
        super().__init__(checkpoints_dir, recoverables, custom_load_hooks, custom_save_hooks, allow_partial_load)
        for name, obj in (may_be_missing or {}).items():
            self.add_recoverable(name, obj, optional_load=True)
        self.start_over = start_over
        #: Checkpoints saved through this object (counted on every process).
        self.saves = 0

    # ------------------------------------------------------------ saving
    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):  # noqa: B006 (as SB)
        """Save a checkpoint atomically (every process calls it; the main
        process writes).

        Arguments
        ---------
        meta : mapping
            Added to ``CKPT.yaml`` (``unixtime``, ``end-of-epoch`` and
            ``file-bytes`` are added too).
        end_of_epoch : bool
            Whether the checkpoint is at the end of an epoch.
        name : str, optional
            A custom name (after the ``CKPT+`` prefix); default: the time.
        verbosity : int
            Logging level of the "Saved" line.

        Returns
        -------
        Checkpoint
            On the main process; None on the others.

        Raises
        ------
        CheckpointWriteError
            On every process, when the main one could not write the
            checkpoint (nothing of it is left; older checkpoints are intact).
        """
        checkpoint = error = None
        if if_main_process():
            try:
                checkpoint = self._write_checkpoint(meta, end_of_epoch, name)
            except (OSError, RuntimeError) as exc:  # torch's zip writer raises RuntimeError
                error = exc
        message = ddp_broadcast(None if error is None else self._write_error_message(error))
        if message is not None:
            raise CheckpointWriteError(message) from error
        self.saves += 1
        if checkpoint is not None:
            kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
            logger.log(verbosity, "Saved an %s checkpoint in %s", kind, checkpoint.path)
        return checkpoint

    def save_and_keep_only(self, meta={}, end_of_epoch=True, name=None, num_to_keep=1, keep_recent=True,  # noqa: B006
                           importance_keys=None, max_keys=None, min_keys=None, ckpt_predicate=None,
                           verbosity=logging.INFO):
        """As SpeechBrain's: save, then delete the least important
        checkpoints (only once the new one is complete). Unlike
        SpeechBrain 1.1's, it does not add a key to its default
        ``importance_keys`` list at every call (which made each save slower
        than the last), and it returns the saved checkpoint.

        Arguments
        ---------
        meta, end_of_epoch, name, verbosity
            As for :meth:`save_checkpoint`.
        num_to_keep, keep_recent, importance_keys, max_keys, min_keys, ckpt_predicate
            Which checkpoints are kept (SpeechBrain's meaning).

        Returns
        -------
        Checkpoint
            On the main process; None on the others.
        """
        saved = self.save_checkpoint(meta=meta, end_of_epoch=end_of_epoch, name=name, verbosity=verbosity)
        keys = list(importance_keys or []) + ([ckpt_recency] if keep_recent else [])
        self.delete_checkpoints(num_to_keep=num_to_keep, max_keys=max_keys, min_keys=min_keys, importance_keys=keys,
                                ckpt_predicate=ckpt_predicate, verbosity=verbosity)
        return saved

    def _write_checkpoint(self, meta, end_of_epoch, name) -> Checkpoint:
        """Write into a hidden folder, the meta file last, fsync, rename."""
        final = self._new_checkpoint_dirpath() if name is None else self._custom_checkpoint_dirpath(name)
        hooks = {}
        for key, obj in self.recoverables.items():
            hooks[key] = self.custom_save_hooks.get(key) or get_default_hook(obj, DEFAULT_SAVE_HOOKS)
            if hooks[key] is None:
                raise TypeError(f"don't know how to save {type(obj)} ({key}): register a save hook for it")
        saving = final.with_name(SAVING_PREFIX + final.name)
        if saving.exists():
            shutil.rmtree(saving)
        saving.mkdir()
        try:
            with MainProcessContext():  # the hooks' own broadcasts are skipped: the others wait for the outcome
                for key, obj in self.recoverables.items():
                    hooks[key](obj, saving / f"{key}{PARAMFILE_EXT}")
            sizes = {path.name: path.stat().st_size for path in sorted(saving.iterdir())}
            saved_meta = self._save_checkpoint_metafile(saving / METAFNAME, {**meta, SIZES_KEY: sizes}, end_of_epoch)
            for path in saving.iterdir():
                _fsync(path)
            _fsync(saving)
            os.rename(saving, final)
        except BaseException:
            shutil.rmtree(saving, ignore_errors=True)
            raise
        _fsync(self.checkpoints_dir)
        return Checkpoint(final, saved_meta, {key: final / f"{key}{PARAMFILE_EXT}" for key in self.recoverables})

    def _write_error_message(self, error: BaseException) -> str:
        """What a failed save says: the folder, the error, the free space,
        and which checkpoint is intact."""
        try:
            usage = shutil.disk_usage(self.checkpoints_dir)
            space = f"{human_bytes(usage.free)} free of {human_bytes(usage.total)}"
        except OSError as exc:
            space = f"free space unknown: {exc}"
        previous = self.find_checkpoint()
        size = sum(self.checkpoint_bytes())
        return (f"could not write a checkpoint in {self.checkpoints_dir}: {type(error).__name__}: {error} ({space}; "
                f"a checkpoint takes about {human_bytes(size)}). "
                + (f"The previous checkpoint {previous.path} is intact; " if previous else "No checkpoint was saved; ")
                + "free some space (or point save_folder elsewhere) and run the same command again.")

    # --------------------------------------------------------- listing
    def _read_folder(self, path: pathlib.Path) -> Tuple[Optional[Checkpoint], Optional[str]]:
        """A checkpoint folder as a ``Checkpoint``, or why it is none."""
        meta_path = path / METAFNAME
        if not meta_path.is_file():
            return None, f"no {METAFNAME}"
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            return None, f"{METAFNAME} unreadable: {type(error).__name__}: {error}"
        if not isinstance(meta, dict) or not {"unixtime", "end-of-epoch"} <= set(meta):
            return None, f"{METAFNAME} is incomplete (no unixtime or end-of-epoch)"
        paramfiles = {p.stem: p for p in path.iterdir() if p.suffix == PARAMFILE_EXT}
        return Checkpoint(path, meta, paramfiles), None

    def list_checkpoints(self) -> List[Checkpoint]:
        """The checkpoints whose meta file reads (the others are neither
        loaded nor deleted; recovery moves them aside)."""
        read = (self._read_folder(path) for path in self._list_checkpoint_dirs())
        return [checkpoint for checkpoint, _ in read if checkpoint is not None]

    def _unreadable(self) -> List[Tuple[pathlib.Path, str]]:
        """``CKPT+...`` folders whose meta file is missing or unreadable."""
        found = []
        for path in sorted(self.checkpoints_dir.iterdir()):
            if path.is_dir() and path.name.startswith(CKPT_PREFIX):
                checkpoint, problem = self._read_folder(path)
                if checkpoint is None:
                    found.append((path, problem))
        return found

    def problem_of(self, checkpoint: Checkpoint) -> Optional[str]:
        """Why a checkpoint cannot be loaded, from its files (without
        loading them), or None.

        A recoverable's file is missing (unless the recoverable is optional,
        a data loader, or partial loads are allowed), a file has another
        size than written, is empty, or is a zip archive (torch's format)
        whose central directory is missing or points past its end.

        Arguments
        ---------
        checkpoint : Checkpoint

        Returns
        -------
        str or None
        """
        sizes = checkpoint.meta.get(SIZES_KEY) or {}
        for key in self.recoverables:
            file = f"{key}{PARAMFILE_EXT}"
            optional = self.allow_partial_load or "dataloader" in key or self.optional_recoverables.get(key, False)
            if key not in checkpoint.paramfiles and not optional:
                return f"{file} is missing"
        for file, size in sizes.items():
            path = checkpoint.path / file
            if not path.is_file():
                return f"{file} is missing"
            if path.stat().st_size != size:
                return f"{file} has {path.stat().st_size} bytes, {size} were written"
        for path in sorted(checkpoint.paramfiles.values()):
            size = path.stat().st_size
            if size == 0:
                return f"{path.name} is empty"
            with open(path, "rb") as f:
                is_zip = f.read(4) == b"PK\x03\x04"
            if is_zip:
                try:
                    with zipfile.ZipFile(path) as archive:
                        if any(i.header_offset + i.compress_size > size for i in archive.infolist()):
                            return f"{path.name} is truncated (its zip directory points past its end)"
                except zipfile.BadZipFile as error:
                    return f"{path.name} is truncated or corrupt ({error})"
        return None

    # --------------------------------------------------------- recovery
    def _call_load_hooks(self, checkpoint):
        """As SpeechBrain's, with the failing recoverable's name in the error."""
        logger.info("Loading a checkpoint from %s", checkpoint.path)
        end_of_epoch = checkpoint.meta["end-of-epoch"]
        for key, obj in self.recoverables.items():
            path = checkpoint.paramfiles.get(key)
            if path is None:  # allowed by problem_of: optional, a data loader, or partial loads
                logger.warning("%s has no %s%s: it is not loaded", checkpoint.path, key, PARAMFILE_EXT)
                continue
            hook = self.custom_load_hooks.get(key) or get_default_hook(obj, DEFAULT_LOAD_HOOKS)
            if hook is None:
                raise TypeError(f"don't know how to load {type(obj)} ({key}): register a load hook for it")
            try:
                hook(obj, path, end_of_epoch)
            except Exception as error:
                raise _LoadError(key, error) from error

    def _load(self, checkpoint: Checkpoint) -> Optional[str]:
        """Load on every process; None, or why it failed (the same on every
        process). A state that does not fit the model raises instead."""
        try:
            self.load_checkpoint(checkpoint)
            failure = None
        except _LoadError as error:
            failure = (error.mismatch, str(error))
        failures = [f for f in all_ranks(failure) if f is not None]
        for mismatch, message in failures:
            if mismatch:
                raise RuntimeError(f"checkpoint {checkpoint.path} does not fit this model: {message}. Nothing was "
                                   "moved: resume with the configuration it was saved with, or use another "
                                   "save_folder.")
        return failures[0][1] if failures else None

    def _set_aside(self, broken: List[Tuple[pathlib.Path, str]]) -> None:
        """Move unloadable checkpoints into ``broken/`` (main process)."""
        if not if_main_process():
            return
        aside = self.checkpoints_dir / BROKEN_FOLDER
        for path, problem in broken:
            aside.mkdir(exist_ok=True)
            target, suffix = aside / path.name, 0
            while target.exists():
                suffix += 1
                target = aside / f"{path.name}.{suffix}"
            os.rename(path, target)
            logger.warning("moved %s, which cannot be loaded (%s), to %s: it is kept, not deleted",
                           path, problem, target)

    def _remove_unfinished_saves(self) -> None:
        """Remove the hidden folders of saves that never finished."""
        for path in self.checkpoints_dir.iterdir():
            if path.is_dir() and path.name.startswith(SAVING_PREFIX):
                shutil.rmtree(path)
                logger.info("removed %s: a checkpoint save that did not finish", path)

    def recover_if_possible(self, importance_key=None, max_key=None, min_key=None, ckpt_predicate=None):
        """Load the best checkpoint (by default the newest) that loads.

        Checkpoints that cannot be loaded are skipped with a warning naming
        the folder and the problem; once one loads, those tried before it
        (and folders whose meta file is unreadable) are moved into
        ``broken/``. Arguments as for SpeechBrain's ``Checkpointer``.

        Arguments
        ---------
        importance_key, max_key, min_key, ckpt_predicate
            Which checkpoints count and their order (SpeechBrain's meaning).

        Returns
        -------
        Checkpoint or None
            The loaded checkpoint; None when there is none (or none loads
            and ``start_over`` is set).

        Raises
        ------
        NoLoadableCheckpoint
            Checkpoints exist and none loads (without ``start_over``; with
            it, when a failed load already changed the model: they are then
            moved aside, and the next run starts from the beginning).
        RuntimeError
            A checkpoint's state does not fit the model (another
            configuration); nothing is moved.
        """
        plan = None
        if if_main_process():
            self._remove_unfinished_saves()
            order = self.find_checkpoints(importance_key, max_key, min_key, ckpt_predicate)
            plan = ([c.path for c in order], self._unreadable())
        paths, broken = ddp_broadcast(plan)
        broken, loads_tried = list(broken), False
        for path, problem in broken:
            logger.warning("checkpoint %s cannot be loaded: %s", path, problem)
        for path in paths:
            checkpoint, problem = self._read_folder(path)
            problem = ddp_broadcast(problem or self.problem_of(checkpoint) if if_main_process() else None)
            if problem is None:
                loads_tried = True
                problem = self._load(checkpoint)
            if problem is None:
                self._set_aside(broken)
                return checkpoint
            logger.warning("checkpoint %s cannot be loaded: %s", path, problem)
            broken.append((path, problem))
        if not broken:
            logger.info("Would load a checkpoint here, but none found yet.")
            return None
        listing = "; ".join(f"{path} ({problem})" for path, problem in broken)
        aside = self.checkpoints_dir / BROKEN_FOLDER
        if not self.start_over:
            raise NoLoadableCheckpoint(
                f"none of the {len(broken)} checkpoint(s) in {self.checkpoints_dir} loads: {listing}. Nothing was "
                f"moved. To set them aside (into {aside}) and train from the start, add --start_over=True.")
        self._set_aside(broken)
        if loads_tried:
            raise NoLoadableCheckpoint(
                f"none of the {len(broken)} checkpoint(s) in {self.checkpoints_dir} loads; they are now in {aside}. "
                "A failed load changed the model in this process: run the same command again to start from the "
                "beginning.")
        logger.warning("no checkpoint in %s loads; they are now in %s; training starts from the beginning "
                       "(start_over)", self.checkpoints_dir, aside)
        return None

    # ------------------------------------------------------------ space
    def checkpoint_bytes(self) -> Tuple[int, int]:
        """Estimated bytes of one checkpoint: (module parameters and
        buffers, optimiser state); other recoverables are small.

        Returns
        -------
        (int, int)
        """
        modules = optimizers = 0
        for obj in self.recoverables.values():
            if isinstance(obj, torch.nn.Module):
                modules += _state_bytes(obj.state_dict())
            elif isinstance(obj, torch.optim.Optimizer):
                optimizers += _optimizer_bytes(obj)
        return modules, optimizers

    def warn_if_short_of_space(self) -> Optional[str]:
        """Warn (main process) when the folder has room for fewer than two
        checkpoints; return the warning, or None.

        Returns
        -------
        str or None
        """
        if not if_main_process():
            return None
        modules, optimizers = self.checkpoint_bytes()
        free = shutil.disk_usage(self.checkpoints_dir).free
        if free >= 2 * (modules + optimizers):
            return None
        message = (f"{self.checkpoints_dir} has {human_bytes(free)} free: room for fewer than two checkpoints of "
                   f"about {human_bytes(modules + optimizers)} ({human_bytes(modules)} of parameters, "
                   f"{human_bytes(optimizers)} of optimiser state). A save that runs out of space stops training "
                   f"(exit status {CheckpointWriteError.exit_status}); the checkpoint before it stays intact.")
        logger.warning(message)
        return message
