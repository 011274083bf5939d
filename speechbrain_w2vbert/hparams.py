"""Composition of HyperPyYAML files through a top-level ``base:`` key.

HyperPyYAML has no inheritance, and ``!include`` nests the included file
under a key. A recipe's family of configurations (e.g. the wav2vec 2.0
encoders on top of the w2v-BERT 2.0 file) instead names its base file and
states only what differs; :func:`compose_hparams` writes the whole
configuration out for ``load_hyperpyyaml``.

Authors: speechbrain-w2vbert contributors
"""

import io
import os
from typing import Optional

import ruamel.yaml

__all__ = ["compose_hparams"]


def compose_hparams(hparams_file: str) -> Optional[str]:
    """The whole configuration of a file that names a ``base:`` file.

    Such a file states only what differs from its base (a path relative to
    it; bases chain): each of its keys replaces the base's key of that name
    whole (an ``encoder: !new:...`` block included) in the base's order, and
    new keys are appended. ``!ref`` resolves over the result, so a base value
    can refer to a key set here.

    Arguments
    ---------
    hparams_file : str
        A HyperPyYAML file.

    Returns
    -------
    str or None
        The composed YAML text, or None when the file has no ``base``.

    Example
    -------
    >>> import speechbrain_w2vbert
    >>> folder = os.path.join(os.path.dirname(speechbrain_w2vbert.__file__), "..", "hparams")
    >>> compose_hparams(os.path.join(folder, "w2vbert_ctc.yaml")) is None
    True
    >>> text = compose_hparams(os.path.join(folder, "xls_r_ctc.yaml"))
    >>> "facebook/wav2vec2-xls-r-300m" in text and "wav2vec2.Wav2Vec2Encoder" in text and "base:" not in text
    True
    """
    yaml = ruamel.yaml.YAML()
    with open(hparams_file, encoding="utf-8") as f:
        tree = yaml.load(f)
    if not isinstance(tree, dict) or "base" not in tree:
        return None
    base = os.path.join(os.path.dirname(os.path.abspath(hparams_file)), tree.pop("base"))
    composed = compose_hparams(base)
    if composed is None:
        with open(base, encoding="utf-8") as f:
            composed = f.read()
    merged = yaml.load(composed)
    for key, value in tree.items():
        merged[key] = value
    stream = io.StringIO()
    yaml.dump(merged, stream)
    return stream.getvalue()
