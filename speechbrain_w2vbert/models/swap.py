"""In-place replacement of transformers modules by subclasses that only
compute differently (:mod:`speechbrain_w2vbert.models.attention`,
:mod:`speechbrain_w2vbert.models.convolution`).

Authors: speechbrain-w2vbert contributors
"""

from typing import Callable, Optional

import torch
import transformers

__all__ = ["swap_class", "encoder_layers"]


def encoder_layers(model: torch.nn.Module) -> Optional[int]:
    """The number of layers of a transformers speech model
    (``model.encoder.layers``), or None for a module that has none (a lone
    layer or block).

    Example
    -------
    >>> encoder_layers(torch.nn.ReLU()) is None
    True
    """
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    return None if layers is None else len(layers)


def swap_class(
    model: torch.nn.Module,
    original: type,
    replacement: type,
    condition: Optional[Callable[[torch.nn.Module], bool]] = None,
    expected: Optional[int] = None,
    switch_off: str = "",
) -> int:
    """Gives every submodule of exact class ``original`` (that meets
    ``condition``) the class ``replacement``, keeping its parameters, buffers
    and state_dict keys: only ``forward`` changes.

    With ``expected``, finding another number of modules is an error naming
    the transformers version: a release that renames or subclasses
    ``original`` would otherwise leave transformers' own modules in place,
    silently (a slower, hungrier model).

    Arguments
    ---------
    model : torch.nn.Module
        The model to convert, in place.
    original : type
        The exact class to replace (subclasses are left alone).
    replacement : type
        A subclass of ``original`` that adds no state.
    condition : callable, optional
        Converts only the modules for which it returns True.
    expected : int, optional
        The number of modules there must be (e.g. the model's layers).
    switch_off : str
        The option that turns the swap off, for the error message.

    Returns
    -------
    int
        The number of modules converted.

    Example
    -------
    >>> class Doubled(torch.nn.ReLU):
    ...     def forward(self, x):
    ...         return 2 * super().forward(x)
    >>> model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Tanh())
    >>> swap_class(model, torch.nn.ReLU, Doubled), model(torch.ones(1))
    (1, tensor([0.9640]))
    >>> # the ReLU is a Doubled now: there is no ReLU left to replace
    >>> swap_class(model, torch.nn.ReLU, Doubled, expected=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    RuntimeError: Doubled: found 0 torch.nn.modules.activation.ReLU modules to replace where the model has 1, ...
    """
    found = [m for m in model.modules() if type(m) is original and (condition is None or condition(m))]
    if expected is not None and len(found) != expected:
        raise RuntimeError(
            f"{replacement.__name__}: found {len(found)} {original.__module__}.{original.__qualname__} modules to "
            f"replace where the model has {expected}, with transformers {transformers.__version__}: this release "
            f"renamed, subclassed or restructured them. Install the tested transformers (requirements/lock.txt)"
            + (f", or turn the replacement off ({switch_off})." if switch_off else ".")
        )
    for module in found:
        module.__class__ = replacement
    return len(found)
