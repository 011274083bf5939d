"""Export a trained model: a self-contained ``EncoderASR`` folder and an
optional Hugging Face ``*ForCTC`` folder (``Wav2Vec2BertForCTC`` for
w2v-BERT 2.0, ``Wav2Vec2ForCTC`` / ``HubertForCTC`` for the wav2vec 2.0 family).

:func:`export_inference_folder` writes::

    <folder>/hyperparams.yaml   EncoderASR hparams; the encoder's architecture
                                (its config.json fields) and the character
                                vocabulary are written inline
    <folder>/encoder.ckpt       the encoder lobe's state dict
    <folder>/ctc_head.ckpt      torch.nn.Linear state dict
    <folder>/tokenizer.ckpt     SentencePiece model (SentencePiece tokenizers only)
    <folder>/vocab.json         character vocabulary (character tokenizer only)
    <folder>/lm.ckpt            word n-gram LM, ARPA (with an LM decoder only)
    <folder>/unigrams.txt       its words (with an LM decoder only)
    <folder>/README.md          model card (the recipe writes it with :func:`write_model_card`)

and ``EncoderASR.from_hparams(source=<folder>, savedir=...)`` loads it with no
network access; a folder with an LM decodes by beam search with it
(``overrides={"use_lm": False}``: greedy). :func:`to_hf_ctc` maps the encoder and head 1:1 onto
``transformers.Wav2Vec2BertForCTC``; :func:`save_hf_folder` writes that model
with its tokenizer and feature extractor; :func:`from_hf_ctc` imports such
a checkpoint (ours or a community one) with its vocabulary.

Authors: speechbrain-w2vbert contributors
"""

import copy
import os
import shutil
import tempfile
import textwrap
from typing import Optional, Union

import torch
import yaml

from speechbrain_w2vbert.encoder import hub_load_kwargs
from speechbrain_w2vbert.tokenizer import (PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, CharTokenizer,
                                           SentencePieceCTCTokenizer)

__all__ = [
    "class_path",
    "encoder_config_dict",
    "export_inference_folder",
    "to_hf_ctc",
    "hf_processor",
    "save_hf_folder",
    "hf_processor_with_lm",
    "hf_ctc_tokenizer",
    "from_hf_ctc",
    "write_model_card",
]

#: config.json keys that describe the saving software, not the architecture.
_NON_ARCH_KEYS = ("transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype", "vocab_size")

Tokenizer = Union[CharTokenizer, SentencePieceCTCTokenizer]


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP/DataParallel wrapper (or the module itself)."""
    return getattr(module, "module", module)


def class_path(obj) -> str:
    """``module.qualname`` of an object's class (what ``!new:`` needs).

    Example
    -------
    >>> class_path(torch.nn.Linear(1, 1))
    'torch.nn.modules.linear.Linear'
    """
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def encoder_config_dict(encoder: torch.nn.Module) -> dict:
    """The architecture fields of an encoder lobe's transformers config."""
    config = _unwrap(encoder).model.config.to_dict()
    return {k: v for k, v in sorted(config.items()) if k not in _NON_ARCH_KEYS}


_HEADER = """\
# ############################################################################
# Inference: speech encoder (w2v-BERT 2.0 family) + linear CTC head, greedy
# decoding, or beam search with a word n-gram LM where the folder has one.
# Written by speechbrain_w2vbert.export.export_inference_folder.
#
#   from speechbrain.inference.ASR import EncoderASR
#   asr = EncoderASR.from_hparams(source="<this folder>", savedir="<any folder>")
#   asr.transcribe_file("utterance.flac")
#
# Offline: the encoder's architecture is inline below, weights are in
# encoder.ckpt and ctc_head.ckpt.
# ############################################################################

sample_rate: 16000  # Hz; EncoderASR resamples and down-mixes inputs to it
blank_index: 0  # CTC blank id ([PAD])

# Architecture of the encoder (its transformers config fields).
"""

_GREEDY = """
# Padding frames come out of asr_model as blanks: every frame is decoded.
decoding_function: !name:speechbrain_w2vbert.ctc.greedy_decode
    blank_index: !ref <blank_index>
"""

_LM = """
# Beam search with the word n-gram LM in lm.ckpt (ARPA; unigrams.txt holds its
# words). Greedy decoding: EncoderASR.from_hparams(..., overrides={{"use_lm": False}}).
use_lm: True
lm_decoder: !new:speechbrain_w2vbert.decoding.LMBeamDecoder
{decoder}
decoding_function: !name:speechbrain_w2vbert.decoding.encoder_asr_decode
    decoder: !ref <lm_decoder>
    tokenizer: !ref <tokenizer>
    use_lm: !ref <use_lm>
    blank_index: !ref <blank_index>
"""

_BODY = """
speech_encoder: !new:{encoder_class}
    config: !ref <encoder_config>
    pretrained: False  # the weights come from encoder.ckpt
    output_norm: {output_norm}

ctc_head: !new:torch.nn.Linear
    in_features: {in_features}
    out_features: {out_features}

asr_model: !new:speechbrain_w2vbert.ctc.EncoderCTC
    encoder: !ref <speech_encoder>
    head: !ref <ctc_head>
    blank_index: !ref <blank_index>

audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer
    sample_rate: !ref <sample_rate>

modules:
    encoder: !ref <asr_model>

"""


def _indented_yaml(data: dict) -> str:
    return textwrap.indent(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=None), "    ")


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
    encoder : speechbrain_w2vbert.encoder.SpeechEncoder
        Trained encoder lobe (a DDP wrapper is unwrapped).
    head : torch.nn.Linear
        Trained CTC head.
    tokenizer : CharTokenizer or SentencePieceCTCTokenizer
        The recipe's tokenizer.
    lm_decoder : speechbrain_w2vbert.decoding.LMBeamDecoder, optional
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
    >>> from speechbrain_w2vbert.lobe import W2VBert
    >>> from speechbrain.inference.ASR import EncoderASR
    >>> tok = CharTokenizer.build(["राम घर"])
    >>> tmp = tempfile.mkdtemp()
    >>> _ = export_inference_folder(os.path.join(tmp, "model"), W2VBert(TINY_CONFIG_DIR, pretrained=False),
    ...                             torch.nn.Linear(144, tok.vocab_size), tok)
    >>> asr = EncoderASR.from_hparams(source=os.path.join(tmp, "model"), savedir=os.path.join(tmp, "cache"))
    >>> words, tokens = asr.transcribe_batch(torch.randn(2, 16000) * 0.1, torch.tensor([1.0, 0.7]))
    >>> len(words)
    2
    """
    encoder, head = _unwrap(encoder), _unwrap(head)
    os.makedirs(folder, exist_ok=True)
    torch.save(encoder.state_dict(), os.path.join(folder, "encoder.ckpt"))
    torch.save(head.state_dict(), os.path.join(folder, "ctc_head.ckpt"))

    text = _HEADER + "encoder_config:\n" + _indented_yaml(encoder_config_dict(encoder))
    text += _BODY.format(encoder_class=class_path(encoder), output_norm=encoder.output_norm,
                         in_features=head.in_features, out_features=head.out_features)
    if isinstance(tokenizer, CharTokenizer):
        tokenizer.save(folder)
        text += "# Character vocabulary (also in vocab.json, loadable by transformers' Wav2Vec2CTCTokenizer).\n"
        text += "tokenizer: !new:speechbrain_w2vbert.tokenizer.CharTokenizer\n"
        text += _indented_yaml({"vocab": tokenizer.vocab})
        loadables = "    loadables:\n        encoder: !ref <speech_encoder>\n        ctc_head: !ref <ctc_head>\n"
    elif isinstance(tokenizer, SentencePieceCTCTokenizer):
        with open(os.path.join(folder, "tokenizer.ckpt"), "wb") as f:
            f.write(tokenizer.sp.serialized_model_proto())
        text += "spm: !new:sentencepiece.SentencePieceProcessor  # model in tokenizer.ckpt\n"
        text += "tokenizer: !new:speechbrain_w2vbert.tokenizer.SentencePieceCTCTokenizer\n    processor: !ref <spm>\n"
        loadables = (
            "    loadables:\n        encoder: !ref <speech_encoder>\n        ctc_head: !ref <ctc_head>\n"
            "        tokenizer: !ref <spm>\n"
        )
    else:
        raise TypeError(f"cannot export a tokenizer of type {type(tokenizer).__name__}")
    if lm_decoder is not None and lm_decoder.uses_lm:
        _copy_lm(lm_decoder.lm_path, folder)
        text += _LM.format(decoder=_indented_yaml({
            "tokens": list(tokenizer.tokens), "blank_index": tokenizer.blank_index,
            "beam_size": lm_decoder.beam_size, "lm_weight": lm_decoder.lm_weight, "word_bonus": lm_decoder.word_bonus,
        }))
        loadables += "        lm: !ref <lm_decoder>  # lm.ckpt\n"
    else:
        text += _GREEDY
    text += "\npretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n" + loadables
    path = os.path.join(folder, "hyperparams.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _copy_lm(lm_path: str, folder: str) -> None:
    """The LM file as ``lm.ckpt`` (the ``Pretrainer``'s name for the
    ``lm`` loadable) and its word list as ``unigrams.txt``."""
    from speechbrain_w2vbert.decoding import lm_unigrams
    from speechbrain_w2vbert.ngram import UNIGRAMS_NAME

    unigrams = lm_unigrams(lm_path)
    shutil.copyfile(lm_path, os.path.join(folder, "lm.ckpt"))
    with open(os.path.join(folder, UNIGRAMS_NAME), "w", encoding="utf-8") as f:
        f.write("\n".join(unigrams) + "\n")


def to_hf_ctc(encoder: torch.nn.Module, head: torch.nn.Linear, blank_index: int = 0):
    """The same model as a transformers ``*ForCTC`` (``Wav2Vec2BertForCTC``
    for ``W2VBert``; the CTC class of the encoder's config for the other
    lobes with the same interface: ``encoder.model`` is the HF base model).

    The base model (``model.<base_model_prefix>``) gets the encoder's
    weights and ``lm_head`` the head's (HF's ``dropout`` before ``lm_head``
    plays the recipe's dropout).

    Arguments
    ---------
    encoder : speechbrain_w2vbert.lobe.W2VBert (or a lobe like it)
        Trained encoder, without ``output_norm`` (HF has no such layer).
    head : torch.nn.Linear
        Trained CTC head.
    blank_index : int
        CTC blank id, HF's ``pad_token_id`` (default 0).

    Returns
    -------
    transformers.PreTrainedModel
        E.g. ``Wav2Vec2BertForCTC``, in eval mode.

    Example
    -------
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> from speechbrain_w2vbert.lobe import W2VBert
    >>> encoder, head = W2VBert(TINY_CONFIG_DIR, pretrained=False).eval(), torch.nn.Linear(144, 9)
    >>> hf = to_hf_ctc(encoder, head)
    >>> type(hf).__name__
    'Wav2Vec2BertForCTC'
    >>> feats, _ = encoder.frontend(torch.randn(1, 16000) * 0.1)
    >>> with torch.no_grad():
    ...     same = torch.allclose(hf(input_features=feats).logits, head(encoder.model(feats).last_hidden_state), atol=1e-5)
    >>> same
    True
    """
    from transformers import AutoModelForCTC

    encoder, head = _unwrap(encoder), _unwrap(head)
    if encoder.output_norm:
        raise ValueError("the transformers CTC models have no output layer norm: "
                         "export an encoder trained with output_norm=False")
    config = copy.deepcopy(encoder.model.config)
    config.vocab_size = head.out_features
    config.pad_token_id = blank_index
    config.ctc_loss_reduction = "mean"
    model = AutoModelForCTC.from_config(config)
    getattr(model, model.base_model_prefix).load_state_dict(encoder.model.state_dict())
    model.lm_head.load_state_dict(head.state_dict())
    return model.eval()


def hf_processor(encoder: torch.nn.Module, tokenizer: CharTokenizer, folder: str):
    """The transformers processor matching an encoder, with the tokenizer's
    ``vocab.json`` (written into ``folder``).

    ``Wav2Vec2BertProcessor`` (``SeamlessM4TFeatureExtractor`` +
    ``Wav2Vec2CTCTokenizer``) for w2v-BERT 2.0; ``Wav2Vec2Processor``
    (``Wav2Vec2FeatureExtractor`` + the same tokenizer) for raw-waveform
    encoders, normalising the waveform if the lobe's ``normalize_wav`` says
    so (default True) and passing the attention mask where the lobe does
    (``config.use_attention_mask``; else where the model's feature encoder
    uses layer norm, the models that take one).
    """
    from transformers import (SeamlessM4TFeatureExtractor, Wav2Vec2BertProcessor, Wav2Vec2CTCTokenizer,
                              Wav2Vec2FeatureExtractor, Wav2Vec2Processor)

    vocab = tokenizer.save(folder)
    # No <s>/</s> added after the CTC labels: the vocabulary is the head's
    # output, as pyctcdecode's alphabet must be.
    hf_tokenizer = Wav2Vec2CTCTokenizer(vocab, unk_token=UNK_TOKEN, pad_token=PAD_TOKEN,
                                        word_delimiter_token=WORD_DELIMITER, bos_token=None, eos_token=None)
    config = _unwrap(encoder).model.config
    if config.model_type == "wav2vec2-bert":
        return Wav2Vec2BertProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=hf_tokenizer)
    extractor = Wav2Vec2FeatureExtractor(
        do_normalize=bool(getattr(_unwrap(encoder), "normalize_wav", True)),
        return_attention_mask=bool(getattr(config, "use_attention_mask",
                                           getattr(config, "feat_extract_norm", "layer") == "layer")),
    )
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=hf_tokenizer)


def save_hf_folder(folder: str, encoder: torch.nn.Module, head: torch.nn.Linear, tokenizer: CharTokenizer,
                   lm_decoder=None) -> str:
    """Write a Hugging Face folder: the ``*ForCTC`` weights and config
    (:func:`to_hf_ctc`) and the processor (:func:`hf_processor`), so that
    ``AutoModelForCTC``, ``AutoProcessor`` and
    ``transformers.pipeline("automatic-speech-recognition", model=folder)``
    load it. With an LM decoder the processor is
    ``Wav2Vec2ProcessorWithLM`` and the LM is saved in pyctcdecode's own
    layout (``alphabet.json``, ``language_model/`` with the ARPA, its
    unigrams and the weights in ``attrs.json``), which
    ``pyctcdecode.BeamSearchDecoderCTC.load_from_dir`` also reads.

    Arguments
    ---------
    folder : str
        Output folder.
    encoder, head
        As in :func:`to_hf_ctc`.
    tokenizer : CharTokenizer
        Character tokenizer (its ``vocab.json`` is HF's format).
    lm_decoder : speechbrain_w2vbert.decoding.LMBeamDecoder, optional
        Its LM file, weight and word bonus (needs pyctcdecode).

    Returns
    -------
    str
        ``folder``.
    """
    if not isinstance(tokenizer, CharTokenizer):
        raise TypeError("the Hugging Face export needs the character tokenizer (vocab.json)")
    to_hf_ctc(encoder, head, tokenizer.blank_index).save_pretrained(folder)
    processor = hf_processor(encoder, tokenizer, folder)
    with tempfile.TemporaryDirectory(prefix="lm-") as workdir:
        if lm_decoder is not None and lm_decoder.uses_lm:
            processor = hf_processor_with_lm(processor, lm_decoder, workdir)
        processor.save_pretrained(folder)
    return folder


def hf_processor_with_lm(processor, lm_decoder, workdir: str):
    """``Wav2Vec2ProcessorWithLM`` of a processor (:func:`hf_processor`) and
    the pyctcdecode decoder of an :class:`~speechbrain_w2vbert.decoding.LMBeamDecoder`'s
    LM, weight and word bonus. pyctcdecode tells ARPA from binary by the
    file's extension: an LM named otherwise (an ``EncoderASR`` folder's
    ``lm.ckpt``) is linked from ``workdir`` under a name it reads, so
    ``workdir`` must outlive the processor's ``save_pretrained``."""
    import warnings

    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError as error:
        raise ImportError("exporting the LM for transformers needs pyctcdecode: "
                          f"pip install --no-deps pyctcdecode==0.5.0 ({error})") from None
    from transformers import Wav2Vec2ProcessorWithLM

    from speechbrain_w2vbert.decoding import lm_unigrams

    labels = [t for t, _ in sorted(processor.tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    lm_path = lm_decoder.lm_path
    if os.path.splitext(lm_path)[1] not in (".arpa", ".bin", ".binary"):  # pyctcdecode names by extension
        with open(lm_path, "rb") as f:
            binary = f.read(4) == b"mmap"  # KenLM binary files start "mmap lm"
        lm_path = os.path.join(workdir, "lm.bin" if binary else "lm.arpa")
        os.symlink(os.path.realpath(lm_decoder.lm_path), lm_path)
    decoder = build_ctcdecoder(labels, kenlm_model_path=lm_path, unigrams=lm_unigrams(lm_decoder.lm_path),
                               alpha=lm_decoder.lm_weight, beta=lm_decoder.word_bonus)
    with warnings.catch_warnings():  # transformers 5 marks the class deprecated for v6; the layout is pyctcdecode's
        warnings.simplefilter("ignore", FutureWarning)
        return Wav2Vec2ProcessorWithLM(feature_extractor=processor.feature_extractor,
                                       tokenizer=processor.tokenizer, decoder=decoder)


def hf_ctc_tokenizer(source: str, num_labels: int, cache_dir: Optional[str] = None):
    """A :class:`CharTokenizer` for a transformers CTC checkpoint's
    ``Wav2Vec2CTCTokenizer``, and the order of the checkpoint's label ids in it.

    Our tokenizer wants the blank (HF's pad token) at id 0, ``[UNK]`` and
    ``|``: the pad and unk tokens are renamed ``[PAD]`` / ``[UNK]``, the pad
    token moves to id 0 and the other ids keep their order; ids beyond the
    head's ``num_labels`` (``<s>``, ``</s>`` added tokens) are dropped.

    Returns
    -------
    tokenizer : CharTokenizer
    order : list of int
        ``order[new_id] = hf_id`` (permutes the rows of ``lm_head``).
    """
    from transformers import Wav2Vec2CTCTokenizer

    hf_tok = Wav2Vec2CTCTokenizer.from_pretrained(source, **hub_load_kwargs(source, cache_dir))
    by_id = {i: t for t, i in hf_tok.get_vocab().items() if i < num_labels}
    if sorted(by_id) != list(range(num_labels)):
        raise ValueError(f"{source}: the vocabulary does not cover the {num_labels} CTC labels")
    pad, unk, delimiter = hf_tok.pad_token_id, hf_tok.unk_token, hf_tok.word_delimiter_token
    if pad is None or pad >= num_labels:
        raise ValueError(f"{source}: the tokenizer's pad token (the CTC blank) is not a label")
    rename = {hf_tok.pad_token: PAD_TOKEN, unk: UNK_TOKEN, delimiter: WORD_DELIMITER}
    order = [pad] + [i for i in range(num_labels) if i != pad]
    vocab = {rename.get(by_id[hf_id], by_id[hf_id]): new_id for new_id, hf_id in enumerate(order)}
    return CharTokenizer(vocab), order


def from_hf_ctc(source: str, encoder: Optional[torch.nn.Module] = None, cache_dir: Optional[str] = None,
                **encoder_kwargs):
    """Import a transformers ``Wav2Vec2BertForCTC`` checkpoint (hub id or
    folder) with its vocabulary: ``(encoder, head, tokenizer)`` that give
    the checkpoint's greedy transcripts in this package's pipeline.

    Arguments
    ---------
    source : str
        Hub id (fetched into the HF cache) or local folder (never touches
        the network) holding ``config.json``, the weights and ``vocab.json``.
    encoder : W2VBert, optional
        An encoder of the same architecture to load the weights into (the
        recipe's, with its training options); default: a new ``W2VBert``
        built from the checkpoint's config with ``encoder_kwargs``.
    cache_dir : str, optional
        Hugging Face cache folder for a hub id.
    **encoder_kwargs
        ``W2VBert`` options for the new encoder (e.g. ``mask_time_prob``).

    Returns
    -------
    encoder : W2VBert
    head : torch.nn.Linear
        ``lm_head``, its rows reordered so that the blank is id 0.
    tokenizer : CharTokenizer

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> from speechbrain_w2vbert.lobe import W2VBert
    >>> tok = CharTokenizer.build(["राम घर"])
    >>> folder = save_hf_folder(tempfile.mkdtemp(), W2VBert(TINY_CONFIG_DIR, pretrained=False),
    ...                         torch.nn.Linear(144, tok.vocab_size), tok)
    >>> encoder, head, tokenizer = from_hf_ctc(folder)
    >>> tokenizer.vocab == tok.vocab, head.out_features
    (True, 7)
    """
    from transformers import AutoModelForCTC

    hf = AutoModelForCTC.from_pretrained(source, **hub_load_kwargs(source, cache_dir))
    base = getattr(hf, hf.base_model_prefix)
    if encoder is None:
        from speechbrain_w2vbert.lobe import W2VBert

        if hf.config.model_type != "wav2vec2-bert":
            raise ValueError(f"{source}: give an encoder for model type {hf.config.model_type!r}")
        encoder = W2VBert(config=base.config.to_dict(), pretrained=False, **encoder_kwargs)
    _unwrap(encoder).model.load_state_dict(base.state_dict())
    tokenizer, order = hf_ctc_tokenizer(source, hf.lm_head.out_features, cache_dir)
    head = torch.nn.Linear(hf.lm_head.in_features, hf.lm_head.out_features)
    with torch.no_grad():
        head.weight.copy_(hf.lm_head.weight[order])
        head.bias.copy_(hf.lm_head.bias[order])
    return encoder, head, tokenizer


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
    path = os.path.join(folder, "README.md")
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path
