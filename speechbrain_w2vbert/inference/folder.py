"""The ``EncoderASR`` folder: what a trained model is once exported, how it
is written, and how the project opens one.

:func:`export_inference_folder` writes::

    <folder>/hyperparams.yaml   EncoderASR hparams (:func:`hyperparams_yaml`): the
                                encoder's architecture (its config.json fields) and
                                the character vocabulary inline
    <folder>/encoder.ckpt       the encoder lobe's state dict
    <folder>/ctc_head.ckpt      torch.nn.Linear state dict
    <folder>/tokenizer.ckpt     SentencePiece model (SentencePiece tokenizers only)
    <folder>/vocab.json         character vocabulary (character tokenizer only)
    <folder>/lm.ckpt            word n-gram LM, ARPA (with an LM decoder only)
    <folder>/unigrams.txt       its words (with an LM decoder only)
    <folder>/README.md          model card (:func:`write_model_card`; the recipe writes it)
    <folder>/manifest.json      each file's size and SHA-256, written last

``EncoderASR.from_hparams(source=<folder>, savedir=...)`` loads it with no
network access; :func:`load_asr` is how this project's own tools open one.
A folder with an LM decodes by beam search with it; ``overrides={"use_lm":
False}`` decodes greedily.

Authors: speechbrain-w2vbert contributors
"""

import logging
import os
import re
from typing import Dict, Optional, Union

import torch
import yaml

from speechbrain_w2vbert.inference.decoding import encoder_asr_decode
from speechbrain_w2vbert.inference.manifest import MANIFEST, verify_manifest, write_manifest
from speechbrain_w2vbert.inference.safety import ALLOWED_TARGETS, check_hyperparams, warn_trusted
from speechbrain_w2vbert.lm.ngram import NgramLM
from speechbrain_w2vbert.models.ctc import EncoderCTC
from speechbrain_w2vbert.models.encoder import unwrap
from speechbrain_w2vbert.text.tokenizer import CharTokenizer, SentencePieceCTCTokenizer

__all__ = [
    "HYPERPARAMS",
    "ENCODER_CKPT",
    "HEAD_CKPT",
    "TOKENIZER_CKPT",
    "LM_CKPT",
    "MODEL_CARD",
    "class_path",
    "encoder_config_dict",
    "hyperparams_yaml",
    "export_inference_folder",
    "ModelFolderError",
    "check_weights_only",
    "load_asr",
    "asr_model",
    "folder_lm_decoder",
    "write_model_card",
]

#: The files of a folder (the ``Pretrainer`` names a loadable's file ``<loadable>.ckpt``).
HYPERPARAMS = "hyperparams.yaml"
ENCODER_CKPT = "encoder.ckpt"
HEAD_CKPT = "ctc_head.ckpt"
TOKENIZER_CKPT = "tokenizer.ckpt"
LM_CKPT = "lm.ckpt"
MODEL_CARD = "README.md"

#: config.json keys that describe the saving software, not the architecture.
_NON_ARCH_KEYS = ("transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype", "vocab_size")

Tokenizer = Union[CharTokenizer, SentencePieceCTCTokenizer]

logger = logging.getLogger(__name__)


def class_path(obj) -> str:
    """``module.qualname`` of a class, or of an object's class or function
    (what ``!new:`` and ``!name:`` need).

    Example
    -------
    >>> class_path(torch.nn.Linear(1, 1)), class_path(EncoderCTC)
    ('torch.nn.modules.linear.Linear', 'speechbrain_w2vbert.models.ctc.EncoderCTC')
    """
    target = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    return f"{target.__module__}.{target.__qualname__}"


def encoder_config_dict(encoder: torch.nn.Module) -> dict:
    """The architecture fields of an encoder lobe's transformers config."""
    config = unwrap(encoder).model.config.to_dict()
    return {k: v for k, v in sorted(config.items()) if k not in _NON_ARCH_KEYS}


# ---------------------------------------------------------------- the YAML
class _Tagged:
    """A HyperPyYAML tagged node for ``yaml.dump``: ``!new:``/``!name:``
    with a mapping of arguments, or ``!ref`` with a scalar."""

    def __init__(self, tag: str, value):
        self.tag, self.value = tag, value


def _new(target: str, **arguments) -> _Tagged:
    return _Tagged(f"!new:{target}", arguments)


def _name(target: str, **arguments) -> _Tagged:
    return _Tagged(f"!name:{target}", arguments)


def _ref(key: str) -> _Tagged:
    return _Tagged("!ref", f"<{key}>")


def _tagged(value):
    """Every :class:`_Tagged` node with a target inside ``value``."""
    if isinstance(value, _Tagged):
        if ":" in value.tag:
            yield value
        value = value.value
    if isinstance(value, dict):
        for item in value.values():
            yield from _tagged(item)


class _Dumper(yaml.SafeDumper):
    """Writes :class:`_Tagged` nodes with their tags."""


def _represent_tagged(dumper: yaml.SafeDumper, node: _Tagged):
    if isinstance(node.value, dict):  # the arguments one a line
        return dumper.represent_mapping(node.tag, node.value, flow_style=False)
    return dumper.represent_scalar(node.tag, node.value)


_Dumper.add_representer(_Tagged, _represent_tagged)

_HEADER = """\
# ############################################################################
# Inference: speech encoder (w2v-BERT 2.0 family) + linear CTC head; greedy
# decoding, or beam search with the word n-gram LM in lm.ckpt where the folder
# has one. Written by speechbrain_w2vbert.inference.folder.export_inference_folder.
#
#   from speechbrain.inference.ASR import EncoderASR
#   asr = EncoderASR.from_hparams(source="<this folder>", savedir="<any folder>")
#   asr.transcribe_file("utterance.flac")
#
# Offline: the encoder's architecture is inline below, its weights are in
# encoder.ckpt and ctc_head.ckpt.
# ############################################################################
"""

#: The comment on each top-level key of the written YAML.
_COMMENTS = {
    "sample_rate": "Hz; EncoderASR resamples and down-mixes inputs to it",
    "blank_index": "CTC blank id",
    "encoder_config": "the encoder's architecture (its transformers config fields)",
    "speech_encoder": "pretrained: False: the weights come from encoder.ckpt",
    "asr_model": "encoder, CTC head, fp32 log-softmax; padding frames come out as blanks",
    "tokenizer": "label ids <-> text",
    "spm": "the SentencePiece model in tokenizer.ckpt",
    "use_lm": "null: beam search with the LM when the folder has one; false: greedy",
    "lm_decoder": "beam search with the word n-gram LM in lm.ckpt (its words in unigrams.txt)",
    "decoding_function": "label ids of each utterance (every frame: padding frames are blanks)",
    "pretrainer": "loads <loadable>.ckpt into each object",
}


def hyperparams_yaml(encoder: torch.nn.Module, head: torch.nn.Linear, tokenizer: Tokenizer,
                     lm_decoder=None) -> str:
    """The ``hyperparams.yaml`` of an ``EncoderASR`` folder: a dict of the
    objects and their arguments, written by ``yaml.dump`` with HyperPyYAML's
    tags, plus comments.

    Arguments
    ---------
    encoder, head, tokenizer, lm_decoder
        As :func:`export_inference_folder`.

    Returns
    -------
    str
    """
    encoder, head = unwrap(encoder), unwrap(head)
    data: Dict[str, object] = {
        "sample_rate": 16000,
        "blank_index": tokenizer.blank_index,
        "encoder_config": encoder_config_dict(encoder),
        "speech_encoder": _new(class_path(encoder), config=_ref("encoder_config"), pretrained=False,
                               output_norm=bool(encoder.output_norm)),
        "ctc_head": _new("torch.nn.Linear", in_features=head.in_features, out_features=head.out_features),
        "asr_model": _new(class_path(EncoderCTC), encoder=_ref("speech_encoder"),
                          head=_ref("ctc_head"), blank_index=_ref("blank_index")),
        "audio_normalizer": _new("speechbrain.dataio.preprocess.AudioNormalizer", sample_rate=_ref("sample_rate")),
        "modules": {"encoder": _ref("asr_model")},
    }
    loadables = {"encoder": _ref("speech_encoder"), "ctc_head": _ref("ctc_head")}
    if isinstance(tokenizer, CharTokenizer):
        data["tokenizer"] = _new(class_path(tokenizer), vocab=tokenizer.vocab)
    elif isinstance(tokenizer, SentencePieceCTCTokenizer):
        data["spm"] = _new("sentencepiece.SentencePieceProcessor")
        data["tokenizer"] = _new(class_path(tokenizer), processor=_ref("spm"))
        loadables["tokenizer"] = _ref("spm")
    else:
        raise TypeError(f"cannot export a tokenizer of type {type(tokenizer).__name__}")
    data["use_lm"] = None
    if lm_decoder is not None and lm_decoder.uses_lm:
        data["lm_decoder"] = _new(class_path(lm_decoder), tokens=list(tokenizer.tokens),
                                  blank_index=tokenizer.blank_index, beam_size=lm_decoder.beam_size,
                                  lm_weight=float(lm_decoder.lm_weight), word_bonus=float(lm_decoder.word_bonus))
        loadables["lm"] = _ref("lm_decoder")
    else:
        data["lm_decoder"] = None
    data["decoding_function"] = _name(class_path(encoder_asr_decode), decoder=_ref("lm_decoder"),
                                      tokenizer=_ref("tokenizer"), use_lm=_ref("use_lm"),
                                      blank_index=_ref("blank_index"))
    data["pretrainer"] = _new("speechbrain.utils.parameter_transfer.Pretrainer", loadables=loadables)
    named = {node.tag.split(":", 1)[1] for node in _tagged(data)}
    assert named <= ALLOWED_TARGETS, f"the export names what loading refuses: {sorted(named - ALLOWED_TARGETS)}"
    text = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, default_flow_style=None, width=120)
    text = re.sub(r"!ref '(<\w+>)'", r"!ref \1", text)  # PyYAML quotes explicitly tagged scalars
    lines = []
    for line in text.splitlines():
        key = line.split(":", 1)[0]
        if line[:1] not in (" ", "") and key in data:  # a top-level key: a blank line before, its comment after
            lines += ["", f"{line}  # {_COMMENTS[key]}" if key in _COMMENTS else line]
        else:
            lines.append(line)
    return _HEADER + "\n".join(lines) + "\n"


def export_inference_folder(
    folder: str,
    encoder: torch.nn.Module,
    head: torch.nn.Linear,
    tokenizer: Tokenizer,
    lm_decoder=None,
) -> str:
    """Write a self-contained ``EncoderASR`` folder (see the module doc).

    Arguments
    ---------
    folder : str
        Output folder (created; files in it are overwritten).
    encoder : speechbrain_w2vbert.models.encoder.SpeechEncoder
        Trained encoder lobe (a DDP wrapper is unwrapped).
    head : torch.nn.Linear
        Trained CTC head.
    tokenizer : CharTokenizer or SentencePieceCTCTokenizer
        The recipe's tokenizer.
    lm_decoder : speechbrain_w2vbert.lm.beam.LMBeamDecoder, optional
        With an LM: its file, word list, beam size, weight and word bonus
        go into the folder (None: greedy decoding).

    Returns
    -------
    str
        Path of ``hyperparams.yaml``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> from speechbrain_w2vbert.models.w2vbert import W2VBert
    >>> tok = CharTokenizer.build(["राम घर"])
    >>> tmp = tempfile.mkdtemp()
    >>> _ = export_inference_folder(os.path.join(tmp, "model"), W2VBert(TINY_CONFIG_DIR, pretrained=False),
    ...                             torch.nn.Linear(144, tok.vocab_size), tok)
    >>> asr = load_asr(os.path.join(tmp, "model"), os.path.join(tmp, "cache"))
    >>> words, tokens = asr.transcribe_batch(torch.randn(2, 16000) * 0.1, torch.tensor([1.0, 0.7]))
    >>> len(words)
    2
    """
    encoder, head = unwrap(encoder), unwrap(head)
    text = hyperparams_yaml(encoder, head, tokenizer, lm_decoder)
    os.makedirs(folder, exist_ok=True)
    written = [ENCODER_CKPT, HEAD_CKPT, HYPERPARAMS]
    torch.save(encoder.state_dict(), os.path.join(folder, ENCODER_CKPT))
    torch.save(head.state_dict(), os.path.join(folder, HEAD_CKPT))
    if isinstance(tokenizer, CharTokenizer):
        written.append(os.path.basename(tokenizer.save(folder)))
    else:
        with open(os.path.join(folder, TOKENIZER_CKPT), "wb") as f:
            f.write(tokenizer.sp.serialized_model_proto())
        written.append(TOKENIZER_CKPT)
    if lm_decoder is not None and lm_decoder.uses_lm:
        lm = NgramLM(lm_decoder.lm_path).copy_to(folder, LM_CKPT)
        written += [LM_CKPT, os.path.relpath(lm.unigrams_path, folder)]
    path = os.path.join(folder, HYPERPARAMS)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    write_manifest(folder, "encoder_asr", sorted(written))  # last: a folder with a manifest is complete
    return path


# ---------------------------------------------------------------- loading
class ModelFolderError(ValueError):
    """A model folder that cannot be opened (missing, incomplete, or a
    checkpoint that is not plain tensors); the message names the file."""


def check_weights_only(path: str) -> None:
    """Raises :class:`ModelFolderError` unless ``path`` loads with
    ``torch.load(weights_only=True)``: tensors and plain containers only, no
    object whose unpickling could run code (memory-mapped: nothing is read
    into memory but the pickle)."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # UnpicklingError, RuntimeError of a torn zip, ...
        lines = str(error).strip().splitlines()
        raise ModelFolderError(f"{path}: not a checkpoint of plain tensors ({lines[0] if lines else type(error).__name__}); "
                               "it is refused, as it could run code or is damaged: re-download or re-export the folder"
                               ) from None


def _fetched_folder(source: str, savedir: Optional[str], revision: Optional[str], check) -> str:
    """The local folder of ``source``: itself, or, for a hub repository id,
    ``savedir`` after fetching ``hyperparams.yaml`` (checked by ``check``
    before anything runs), then the manifest and the files the YAML names."""
    if os.path.isdir(source):
        return source
    from speechbrain.inference.ASR import EncoderASR
    from speechbrain.utils.fetching import FetchConfig, fetch

    if savedir is None:
        raise ValueError(f"{source}: a hub repository needs a savedir to fetch into")
    config = FetchConfig(revision=revision)
    check(str(fetch(HYPERPARAMS, source=source, savedir=savedir, fetch_config=config)))
    try:
        fetch(MANIFEST, source=source, savedir=savedir, fetch_config=config)
    except (ValueError, OSError):  # folders written before 0.2.0 have none
        pass
    EncoderASR.from_hparams(source=source, savedir=savedir, fetch_config=config, download_only=True)
    return savedir


def load_asr(source: str, savedir: Optional[str] = None, device: str = "cpu", overrides: Optional[dict] = None,
             trust_remote_code: bool = False, revision: Optional[str] = None):
    """Opens a model folder safely: the ``EncoderASR`` of a folder (the
    recipe's ``inference/``) or hub repository, on ``device``. The CLI, the
    scripts and the service all open models here.

    Before SpeechBrain runs anything of it: its ``hyperparams.yaml`` may
    only name what this package's exports name
    (:mod:`speechbrain_w2vbert.inference.safety`); the files its
    ``manifest.json`` lists must have their exported size and SHA-256
    (:mod:`speechbrain_w2vbert.inference.manifest`; folders written before
    0.2.0 have none and load with a note); its checkpoints must load as
    plain tensors (:func:`check_weights_only`).

    Arguments
    ---------
    source : str
        A folder, or a hub repository id (pin ``revision`` to a commit: a
        repository can change under the same name).
    savedir : str, optional
        Where SpeechBrain links or fetches the files (needed for a hub id).
    device : str
        Torch device (default ``cpu``).
    overrides : dict, optional
        HyperPyYAML overrides (e.g. ``{"use_lm": False}``).
    trust_remote_code : bool
        Skip the check of ``hyperparams.yaml`` for a folder whose author you
        trust (a warning names what it runs); the files are still verified.
    revision : str, optional
        Hub revision (branch, tag or commit) of a repository id.

    Returns
    -------
    speechbrain.inference.ASR.EncoderASR

    Raises
    ------
    UnsafeFolderError
        ``hyperparams.yaml`` names something else (the key and the target).
    ManifestError, ModelFolderError
        A missing, truncated or replaced file, or a checkpoint that is not
        plain tensors (the file, and re-download or re-export).
    """
    from speechbrain.inference.ASR import EncoderASR

    def check(path):
        """Refuses a missing hyperparams.yaml, or one naming what the exports never name (unless trusted)."""
        if not os.path.isfile(path):
            raise ModelFolderError(f"{source}: no {HYPERPARAMS}: not a model folder (the recipe writes one as inference/)")
        if trust_remote_code:
            warn_trusted(source, path)
        else:
            check_hyperparams(path)

    folder = _fetched_folder(source, savedir, revision, check)
    if os.path.isdir(source):
        check(os.path.join(folder, HYPERPARAMS))
    manifest = verify_manifest(folder)
    if manifest is None:
        logger.info("%s has no %s (written before 0.2.0): its files are not verified", source, MANIFEST)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".ckpt") and name not in (LM_CKPT, TOKENIZER_CKPT):  # tensors (not ARPA or SentencePiece)
            check_weights_only(os.path.join(folder, name))
    return EncoderASR.from_hparams(source=folder, savedir=savedir, run_opts={"device": device},
                                   overrides=overrides or {})


def asr_model(asr) -> EncoderCTC:
    """The ``EncoderCTC`` of a loaded folder (its encoder lobe is ``.encoder``,
    its head ``.head``)."""
    return asr.mods.encoder


def folder_lm_decoder(asr):
    """The ``LMBeamDecoder`` of a loaded folder, or None when it has no LM."""
    decoder = getattr(asr.hparams, "lm_decoder", None)
    return decoder if decoder is not None and decoder.uses_lm else None


# ---------------------------------------------------------------- model card
def write_model_card(folder: str, title: str, sections: dict) -> str:
    """Write ``folder/README.md``: a title and one ``## heading`` per entry
    of ``sections`` (text, or a dict shown as a two-column table).

    Example
    -------
    >>> import tempfile
    >>> path = write_model_card(tempfile.mkdtemp(), "m", {"Results": {"test WER": "12.5%"}, "Command": "`x`"})
    >>> print(open(path).read())
    # m
    <BLANKLINE>
    ## Results
    <BLANKLINE>
    | | |
    | --- | --- |
    | test WER | 12.5% |
    <BLANKLINE>
    ## Command
    <BLANKLINE>
    `x`
    <BLANKLINE>
    """
    lines = [f"# {title}", ""]
    for heading, body in sections.items():
        lines += [f"## {heading}", ""]
        if isinstance(body, dict):
            lines += ["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in body.items()]
        else:
            lines.append(str(body))
        lines.append("")
    path = os.path.join(folder, MODEL_CARD)
    os.makedirs(folder, exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)
    return path
