"""Lengths of padded batches: SpeechBrain's relative lengths to counts and
back, and padding masks. Every module of the package converts lengths here,
so that one rounding rule holds everywhere.

A relative length ``r`` of a tensor padded to ``T`` steps stands for
``round(r * T)`` valid steps (computed in float64, ties to even, clamped to
``[0, T]``).

Authors: speechbrain-w2vbert contributors
"""

import torch

__all__ = ["absolute_lengths", "relative_lengths", "valid_mask"]


def absolute_lengths(relative: torch.Tensor, max_len: int) -> torch.Tensor:
    """Integer lengths [B] of relative lengths [B] over ``max_len`` steps.

    Example
    -------
    >>> absolute_lengths(torch.tensor([1.0, 0.5, 0.45]), 7)
    tensor([7, 4, 3])
    """
    return torch.round(relative.double() * max_len).long().clamp(min=0, max=max_len)


def relative_lengths(counts: torch.Tensor, max_len: int) -> torch.Tensor:
    """Relative lengths [B] (float32) of integer lengths [B] over ``max_len`` steps.

    Example
    -------
    >>> relative_lengths(torch.tensor([49, 24]), 49)
    tensor([1.0000, 0.4898])
    """
    return counts.float() / max_len


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Bool mask [B, max_len], True on the first ``lengths[b]`` steps of row b.

    Example
    -------
    >>> valid_mask(torch.tensor([2, 0]), 3)
    tensor([[ True,  True, False],
            [False, False, False]])
    """
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths.to(torch.long)[:, None]
