"""Named counters the recipe saves in its checkpoints: infeasible CTC
utterances, skipped non-finite updates, unreadable files.

Authors: speechbrain-w2vbert contributors
"""

import json
from typing import Dict, Iterable

from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

__all__ = ["Counters"]


@register_checkpoint_hooks
class Counters:
    """Named integer counters saved in checkpoints (e.g. infeasible CTC
    utterances, skipped non-finite updates, unreadable files).

    Arguments
    ---------
    names : iterable of str
        The counters, all starting at 0.

    Example
    -------
    >>> counters = Counters(["infeasible", "nonfinite"])
    >>> counters.add("infeasible", 2)
    >>> counters.as_dict()
    {'infeasible': 2, 'nonfinite': 0}
    """

    def __init__(self, names: Iterable[str]):
        self.counts: Dict[str, int] = {name: 0 for name in names}

    def add(self, name: str, value: int = 1) -> None:
        """Add ``value`` to counter ``name``."""
        self.counts[name] += int(value)

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def as_dict(self) -> Dict[str, int]:
        """A copy of the counts."""
        return dict(self.counts)

    @mark_as_saver
    def save(self, path):
        """Write the counts (JSON)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.counts, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Read the counts."""
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            self.counts.update(json.load(f))
