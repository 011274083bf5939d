"""What a model folder's ``hyperparams.yaml`` may make Python do, checked
before HyperPyYAML runs any of it.

HyperPyYAML's ``!new:``, ``!name:``, ``!apply:``, ``!applyref:`` and
``!module:`` tags import and call any dotted name, and ``!include:`` reads
another file: opening a folder from someone else would run their code
(SpeechBrain's ``from_hparams`` does exactly what the file says). So every
tag of the file is read first, without constructing anything, and only
:data:`ALLOWED_TARGETS` may stand behind those tags; ``!ref``/``!copy`` may
only name another key. Anything else is refused with the key, the target and
the opt-in (``trust_remote_code``), unless the caller trusts the folder.

Folders this package exports name nothing else (tested), and neither did
the folders of 0.1.x (their names go through :mod:`speechbrain_w2vbert.compat`).
Nothing here needs torch.

Example
-------
>>> check_hyperparams_text("blank_index: 0\\nhead: !new:torch.nn.Linear {in_features: 4, out_features: 2}\\n")
>>> check_hyperparams_text("x: !apply:os.system [touch pwned]\\n", source="model/hyperparams.yaml")
Traceback (most recent call last):
...
speechbrain_w2vbert.inference.safety.UnsafeFolderError: model/hyperparams.yaml: key 'x' runs !apply:os.system, which model folders of this package never name; it could run any code. Open it only if you trust its author: --trust-remote-code (trust_remote_code=True in Python)

Authors: speechbrain-w2vbert contributors
"""

import io
import logging
import re
from typing import List, Optional, Tuple

from speechbrain_w2vbert.compat import resolve

__all__ = ["ALLOWED_TARGETS", "UnsafeFolderError", "unsafe_targets", "check_hyperparams_text",
           "check_hyperparams", "warn_trusted"]

logger = logging.getLogger(__name__)

_P = "speechbrain_w2vbert."

#: What a model folder may construct or call: the classes and functions the
#: exported ``hyperparams.yaml`` names (``inference.folder.hyperparams_yaml``),
#: and nothing else. 0.1.x names are checked as what they stand for now.
ALLOWED_TARGETS = frozenset({
    _P + "models.w2vbert.W2VBert",
    _P + "models.wav2vec2.Wav2Vec2Encoder",
    _P + "models.ctc.EncoderCTC",
    _P + "models.ctc.greedy_decode",
    _P + "text.tokenizer.CharTokenizer",
    _P + "text.tokenizer.SentencePieceCTCTokenizer",
    _P + "lm.beam.LMBeamDecoder",
    _P + "inference.decoding.encoder_asr_decode",
    "sentencepiece.SentencePieceProcessor",
    "torch.nn.Linear",
    "torch.nn.modules.linear.Linear",
    "speechbrain.dataio.preprocess.AudioNormalizer",
    "speechbrain.utils.parameter_transfer.Pretrainer",
})

#: Tags that import or call a target named after the colon.
_TARGET_TAGS = ("!new:", "!name:", "!apply:", "!applyref:", "!module:")
#: Tags that only refer to the file's own keys (their value must be ``<key>``).
_REFERENCE_TAGS = ("!ref", "!copy")
#: Tags that construct nothing.
_PLAIN_TAGS = ("!tuple", "!PLACEHOLDER")
_KEY_REFERENCE = re.compile(r"<[A-Za-z_][A-Za-z0-9_]*>")

_OPT_IN = "Open it only if you trust its author: --trust-remote-code (trust_remote_code=True in Python)"


class UnsafeFolderError(ValueError):
    """A model folder whose ``hyperparams.yaml`` would run code this
    package does not vouch for."""


def _walk(node, path: str, found: List[Tuple[str, str, str]]) -> None:
    """Collects ``(key path, tag, value)`` of every tagged node under ``node``."""
    tag = node.tag if isinstance(node.tag, str) else getattr(node.tag, "value", str(node.tag))
    if tag and not tag.startswith("tag:yaml.org,2002:"):
        value = node.value if isinstance(node.value, str) else ""
        found.append((path, tag, value))
    if isinstance(node.value, list):
        for index, item in enumerate(node.value):
            if isinstance(item, tuple):  # a mapping's (key, value)
                key, child = item
                name = key.value if isinstance(key.value, str) else "?"
                _walk(key, f"{path}.{name}" if path else name, found)
                _walk(child, f"{path}.{name}" if path else name, found)
            else:
                _walk(item, f"{path}[{index}]", found)


def unsafe_targets(text: str) -> List[Tuple[str, str]]:
    """``(key, what)`` of every tag of a HyperPyYAML text outside what a
    model folder may use (see the module's description), in file order.

    Arguments
    ---------
    text : str
        The ``hyperparams.yaml`` text.

    Raises
    ------
    UnsafeFolderError
        The text is not YAML at all.
    """
    import ruamel.yaml

    try:
        root = ruamel.yaml.YAML(typ="rt").compose(io.StringIO(text))
    except ruamel.yaml.YAMLError as error:
        raise UnsafeFolderError(f"not a YAML file ({str(error).splitlines()[0]})") from None
    found: List[Tuple[str, str, str]] = []
    if root is not None:
        _walk(root, "", found)
    unsafe = []
    for key, tag, value in found:
        if tag.startswith(_TARGET_TAGS):
            target = tag.split(":", 1)[1]
            if resolve(target) not in ALLOWED_TARGETS:
                unsafe.append((key, tag))
        elif tag in _REFERENCE_TAGS:
            if not _KEY_REFERENCE.fullmatch(value.strip()):
                unsafe.append((key, f"{tag} {value}"))
        elif tag not in _PLAIN_TAGS:  # !include:, and any tag HyperPyYAML may add
            unsafe.append((key, tag))
    return unsafe


def check_hyperparams_text(text: str, source: str = "hyperparams.yaml") -> None:
    """Raises :class:`UnsafeFolderError` naming the first unsafe tag of a
    ``hyperparams.yaml`` text (``source`` names the file in the message)."""
    try:
        unsafe = unsafe_targets(text)
    except UnsafeFolderError as error:
        raise UnsafeFolderError(f"{source}: {error}") from None
    if unsafe:
        key, what = unsafe[0]
        more = f" (and {len(unsafe) - 1} more)" if len(unsafe) > 1 else ""
        raise UnsafeFolderError(f"{source}: key {key!r} runs {what}, which model folders of this package never name"
                                f"{more}; it could run any code. {_OPT_IN}")


def check_hyperparams(path: str) -> None:
    """:func:`check_hyperparams_text` of a file."""
    with open(path, encoding="utf-8") as f:
        check_hyperparams_text(f.read(), path)


def warn_trusted(source: str, path: Optional[str] = None) -> None:
    """The warning printed when a folder is opened with ``trust_remote_code``
    (naming what its file would have been refused for, if anything)."""
    unsafe = []
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                unsafe = unsafe_targets(f.read())
        except (OSError, UnicodeDecodeError, UnsafeFolderError):
            unsafe = [("?", "a file this package cannot read")]
    named = "; it names " + ", ".join(f"{what} ({key})" for key, what in unsafe[:5]) if unsafe else ""
    logger.warning("trust_remote_code: %s is opened without checking what its hyperparams.yaml runs%s", source, named)
