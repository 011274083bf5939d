"""The dotted paths of speechbrain-w2vbert 0.1.x, which model folders and
users' code may still name: each old module is an alias whose attributes
are looked up in the module that now holds them (renamed ones through
:data:`RENAMED`). A ``hyperparams.yaml`` written by 0.1.0
(``!new:speechbrain_w2vbert.lobe.W2VBert``,
``!new:speechbrain_w2vbert.ctc.W2VBertCTC``,
``!name:speechbrain_w2vbert.decoding.encoder_asr_decode``...) loads as it did.

The aliases are made on first import (a finder on ``sys.meta_path``, which
:mod:`speechbrain_w2vbert` installs); nothing here imports torch.

Example
-------
>>> from speechbrain_w2vbert.ctc import W2VBertCTC
>>> from speechbrain_w2vbert.models.ctc import EncoderCTC
>>> W2VBertCTC is EncoderCTC
True
>>> resolve("speechbrain_w2vbert.lobe.W2VBert")
'speechbrain_w2vbert.models.w2vbert.W2VBert'

Authors: speechbrain-w2vbert contributors
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Optional

__all__ = ["MODULES", "RENAMED", "resolve", "legacy_attribute", "install"]

_P = "speechbrain_w2vbert."

#: Old module (0.1.x) -> the module that holds most of its names now.
MODULES = {
    _P + "features": _P + "models.features",
    _P + "encoder": _P + "models.encoder",
    _P + "lobe": _P + "models.w2vbert",
    _P + "wav2vec2": _P + "models.wav2vec2",
    _P + "attention": _P + "models.attention",
    _P + "convolution": _P + "models.convolution",
    _P + "swap": _P + "models.swap",
    _P + "ctc": _P + "models.ctc",
    _P + "text": _P + "text.normalize",
    _P + "tokenizer": _P + "text.tokenizer",
    _P + "ngram": _P + "lm.ngram",
    _P + "decoding": _P + "lm.beam",
    _P + "segmentation": _P + "inference.segmentation",
    _P + "chunking": _P + "inference.chunking",
    _P + "timestamps": _P + "inference.timestamps",
    _P + "alignment": _P + "inference.alignment",
    _P + "subtitles": _P + "inference.subtitles",
    _P + "quantization": _P + "inference.quantization",
    _P + "transcribe": _P + "inference.transcriber",
    _P + "export": _P + "inference.folder",
    _P + "schedulers": _P + "training.schedulers",
    _P + "plot": _P + "training.plot",
    _P + "training": _P + "training.steps",
}

#: Old dotted name -> its new dotted name, where the name or its module
#: changed beyond :data:`MODULES`.
RENAMED = {
    _P + "ctc.W2VBertCTC": _P + "models.ctc.EncoderCTC",
    _P + "ctc.abs_lengths": _P + "models.lengths.absolute_lengths",
    _P + "decoding.encoder_asr_decode": _P + "inference.decoding.encoder_asr_decode",
    _P + "decoding.error_counts": _P + "text.scoring.error_counts",
    _P + "tokenizer.read_csv_texts": _P + "text.corpus.read_csv_texts",
    _P + "ngram.build_ngram_lm": _P + "lm.ngram.NgramLM.build",
    _P + "export.to_hf_ctc": _P + "hf.to_hf_ctc",
    _P + "export.hf_processor": _P + "hf.hf_processor",
    _P + "export.save_hf_folder": _P + "hf.save_hf_folder",
    _P + "export.hf_ctc_tokenizer": _P + "hf.hf_ctc_tokenizer",
    _P + "export.from_hf_ctc": _P + "hf.from_hf_ctc",
    _P + "training.Counters": _P + "training.counters.Counters",
    _P + "training.AudioReader": _P + "training.data.AudioReader",
}


def resolve(dotted: str) -> str:
    """The current dotted name of an old (0.1.x) one; other names unchanged.

    Example
    -------
    >>> resolve("speechbrain_w2vbert.ctc.W2VBertCTC"), resolve("torch.nn.Linear")
    ('speechbrain_w2vbert.models.ctc.EncoderCTC', 'torch.nn.Linear')
    """
    if dotted in RENAMED:
        return RENAMED[dotted]
    module, _, name = dotted.rpartition(".")
    if module in MODULES:
        return f"{MODULES[module]}.{name}"
    return dotted


def _locate(dotted: str):
    """The object at a dotted path (modules imported as needed)."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


def legacy_attribute(module: str, name: str):
    """An attribute of an old module whose name is now a package
    (``speechbrain_w2vbert.text``, ``speechbrain_w2vbert.training``): the
    package's ``__getattr__`` asks here.

    Raises
    ------
    AttributeError
        The old module had no such name either.
    """
    dotted = resolve(f"{module}.{name}")
    if dotted == f"{module}.{name}" or name.startswith("__"):
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return _locate(dotted)


class _AliasModule(types.ModuleType):
    """An old module: its attributes are those of the new module(s)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return _locate(resolve(f"{self.__name__}.{name}"))
        except (ImportError, AttributeError):
            raise AttributeError(f"module {self.__name__!r} (0.1.x; now {MODULES[self.__name__]!r}) "
                                 f"has no attribute {name!r}") from None

    def __dir__(self):
        return sorted(set(dir(importlib.import_module(MODULES[self.__name__])))
                      | {k.rpartition(".")[2] for k in RENAMED if k.rpartition(".")[0] == self.__name__})


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module names of :data:`MODULES` (and only those)."""

    def find_spec(self, fullname: str, path=None, target=None) -> Optional[importlib.machinery.ModuleSpec]:
        """A spec for an old module name (None for any other name)."""
        if fullname not in MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        """The alias module of an old name."""
        return _AliasModule(spec.name, f"speechbrain-w2vbert 0.1.x name of {MODULES[spec.name]}")

    def exec_module(self, module):
        """Nothing to run: attributes are looked up on use."""


def install() -> None:
    """Puts the finder of the old module names on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
