"""Noticing a CTC model that has collapsed to blanks: after warm-up, dev
greedy output that stays empty (or one character repeated) evaluation
after evaluation. It is one of the most reported fine-tuning failures
(speechbrain#2067, transformers#10884); the warning names its usual
causes, and ``stop_on_collapse`` ends the run there (exit status 78).

Authors: speechbrain-w2vbert contributors
"""

import json
import logging
from typing import Iterable, Optional

from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from speechbrain_w2vbert.training.distributed import all_ranks
from speechbrain_w2vbert.training.stops import CollapsedToBlanks

__all__ = ["CollapseMonitor", "is_degenerate", "USUAL_CAUSES"]

logger = logging.getLogger(__name__)

#: What the warning says about the usual causes of a collapse.
USUAL_CAUSES = (
    "Usual causes: (1) the learning rate: too high, or too short a warm-up (lr_encoder, lr_head, warmup_steps); "
    "(2) too few frames per token: CTC needs at least one encoder frame per label (two for a repeated one), "
    "and the adapter (add_adapter: True) halves w2v-BERT's 50 frames/s while SentencePiece units "
    "(tokenizer_type) put more labels in each second; (3) the vocabulary: transcripts that map mostly to [UNK] "
    "(tokenizer_min_count) or a vocabulary that does not fit the text; (4) a frozen encoder: "
    "freeze_encoder_steps, frozen_layers or freeze_feature_projection leave only the head to learn."
)


def is_degenerate(text: str) -> bool:
    """Whether a hypothesis is empty or one character repeated (spaces
    aside).

    Example
    -------
    >>> [is_degenerate(t) for t in ("", "  ", "ा ा ा", "नमस्ते")]
    [True, True, True, False]
    """
    return len(set(text.replace(" ", ""))) <= 1


@register_checkpoint_hooks
class CollapseMonitor:
    """Counts dev evaluations in a row whose greedy hypotheses are all
    degenerate (:func:`is_degenerate`), from the end of warm-up; at
    ``patience`` of them it warns (naming the usual causes), or with
    ``stop`` raises ``CollapsedToBlanks``. Under DDP the processes' counts
    are summed, so they all decide alike. A checkpoint recoverable: the
    count survives a resumption.

    Arguments
    ---------
    patience : int
        Evaluations in a row after warm-up (>= 1; default 3).
    after_updates : int
        Updates of warm-up; evaluations before this count are ignored
        (>= 0; default 0).
    stop : bool
        Raise ``CollapsedToBlanks`` instead of warning (default False).

    Example
    -------
    >>> monitor = CollapseMonitor(patience=2, after_updates=100)
    >>> for updates in (50, 150, 250):
    ...     monitor.observe(["", "ा"])
    ...     warning = monitor.end_evaluation(updates)
    >>> monitor.streak, warning.split(" (")[0]
    (2, 'dev greedy output has been empty or one repeated character for 2 evaluations in a row after warm-up')
    >>> monitor.observe(["नमस्ते", ""]); monitor.end_evaluation(350), monitor.streak
    (None, 0)
    """

    def __init__(self, patience: int = 3, after_updates: int = 0, stop: bool = False):
        if patience < 1 or after_updates < 0:
            raise ValueError(f"need patience >= 1 and after_updates >= 0; got {patience}, {after_updates}")
        self.patience = patience
        self.after_updates = after_updates
        self.stop = stop
        self.streak = 0
        self._seen = self._degenerate = 0

    def observe(self, hypotheses: Iterable[str]) -> None:
        """Count a batch of dev hypotheses (normalised text)."""
        for text in hypotheses:
            self._seen += 1
            self._degenerate += is_degenerate(text)

    def end_evaluation(self, updates: int) -> Optional[str]:
        """Close a dev evaluation done after ``updates`` updates (every
        process calls it): the warning when the model has collapsed, else
        None.

        Arguments
        ---------
        updates : int
            Optimiser updates so far.

        Returns
        -------
        str or None

        Raises
        ------
        CollapsedToBlanks
            When collapsed and ``stop`` is set.
        """
        counts = all_ranks((self._seen, self._degenerate))
        seen, degenerate = sum(c[0] for c in counts), sum(c[1] for c in counts)
        self._seen = self._degenerate = 0
        if updates < self.after_updates or seen == 0:
            return None
        self.streak = self.streak + 1 if degenerate == seen else 0
        if self.streak < self.patience:
            return None
        message = (f"dev greedy output has been empty or one repeated character for {self.streak} evaluations in a "
                   f"row after warm-up (all {seen} utterances, update {updates}): the model has collapsed to blanks. "
                   + USUAL_CAUSES)
        if self.stop:
            status = CollapsedToBlanks.exit_status
            raise CollapsedToBlanks(f"{message} Stopped (stop_on_collapse; exit status {status}).")
        logger.warning("%s stop_on_collapse: True would end the run here.", message)
        return message

    @mark_as_saver
    def save(self, path):
        """Write the count of collapsed evaluations (JSON)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"streak": self.streak}, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Read the count."""
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            self.streak = json.load(f)["streak"]
