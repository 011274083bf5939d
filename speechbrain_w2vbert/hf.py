"""Hugging Face interop: a trained model as a transformers ``*ForCTC``
folder (``Wav2Vec2BertForCTC`` for w2v-BERT 2.0, ``Wav2Vec2ForCTC`` /
``HubertForCTC`` for the wav2vec 2.0 family) with its processor and, with an
LM, the LM in pyctcdecode's layout; and the other way, a transformers CTC
checkpoint (ours or a community one) with its vocabulary as this package's
encoder, head and tokenizer.

The LM folder layout is pyctcdecode's own (``alphabet.json`` and
``language_model/`` with the LM file, ``unigrams.txt`` and ``attrs.json``),
written by pyctcdecode itself: ``pyctcdecode.BeamSearchDecoderCTC.load_from_dir``
reads it, and so does transformers' ``Wav2Vec2ProcessorWithLM`` while it
exists (deprecated since transformers 5.23). The processor saved is the plain
one (``AutoProcessor`` gives a ``Wav2Vec2BertProcessor``): decode its logits
with pyctcdecode directly (see :func:`save_hf_folder`).

Authors: speechbrain-w2vbert contributors
"""

import contextlib
import copy
import logging
import os
import tempfile
from typing import Iterator, Optional, Sequence

import torch

from speechbrain_w2vbert.lm.ngram import NgramLM, quiet_native_stderr
from speechbrain_w2vbert.models.encoder import hub_load_kwargs, unwrap
from speechbrain_w2vbert.models.w2vbert import W2VBert
from speechbrain_w2vbert.text.tokenizer import PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, CharTokenizer

__all__ = [
    "to_hf_ctc",
    "hf_processor",
    "pyctcdecode_decoder",
    "save_hf_folder",
    "hf_ctc_tokenizer",
    "from_hf_ctc",
]


def to_hf_ctc(encoder: torch.nn.Module, head: torch.nn.Linear, blank_index: int = 0):
    """The same model as a transformers ``*ForCTC`` (``Wav2Vec2BertForCTC``
    for ``W2VBert``; the CTC class of the encoder's config for the other
    lobes with the same interface: ``encoder.model`` is the HF base model).

    The base model (``model.<base_model_prefix>``) gets the encoder's
    weights and ``lm_head`` the head's (HF's ``dropout`` before ``lm_head``
    plays the recipe's dropout).

    Arguments
    ---------
    encoder : speechbrain_w2vbert.models.w2vbert.W2VBert (or a lobe like it)
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
    >>> from speechbrain_w2vbert.models.w2vbert import W2VBert
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

    encoder, head = unwrap(encoder), unwrap(head)
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
    config = unwrap(encoder).model.config
    if config.model_type == "wav2vec2-bert":
        return Wav2Vec2BertProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=hf_tokenizer)
    extractor = Wav2Vec2FeatureExtractor(
        do_normalize=bool(getattr(unwrap(encoder), "normalize_wav", True)),
        return_attention_mask=bool(getattr(config, "use_attention_mask",
                                           getattr(config, "feat_extract_norm", "layer") == "layer")),
    )
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=hf_tokenizer)


@contextlib.contextmanager
def _quiet_export():
    """For the block: no progress bar from transformers' ``save_pretrained``
    (one shard: nothing to follow), and pyctcdecode's loggers at ERROR: its
    notes on building a decoder over our vocabulary (``|`` read as the
    space, ``[PAD]`` as the blank, ``[UNK]``, "only N unigrams" on a small
    LM, the ARPA copied) are expected and harmless here, since the
    alphabet is our tokenizer's and the unigrams the LM's own words."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    loggers = [logging.getLogger(name) for name in ("pyctcdecode", "pyctcdecode.decoder", "pyctcdecode.alphabet",
                                                    "pyctcdecode.language_model")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def pyctcdecode_decoder(labels: Sequence[str], lm_decoder) -> Iterator:
    """pyctcdecode's ``BeamSearchDecoderCTC`` over ``labels`` (the head's
    tokens, in id order) with an :class:`~speechbrain_w2vbert.lm.beam.LMBeamDecoder`'s
    LM, weight and word bonus, for the ``with`` block.

    pyctcdecode tells ARPA from KenLM binary by the file's extension, so an
    LM named otherwise (an ``EncoderASR`` folder's ``lm.ckpt``) is linked
    under a name it reads, for as long as the block runs (the decoder's
    ``save_to_dir`` copies the file from there)."""
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError as error:
        raise ImportError("the LM in pyctcdecode's layout needs pyctcdecode: "
                          f"pip install --no-deps pyctcdecode==0.5.0 ({error})") from None
    lm = NgramLM(lm_decoder.lm_path)
    with tempfile.TemporaryDirectory(prefix="lm-") as workdir:
        path = lm.path
        if os.path.splitext(path)[1] not in (".arpa", ".bin", ".binary"):
            path = os.path.join(workdir, "lm.bin" if lm.is_binary else "lm.arpa")
            os.symlink(os.path.realpath(lm.path), path)
        with quiet_native_stderr():  # kenlm's loading progress
            decoder = build_ctcdecoder(list(labels), kenlm_model_path=path, unigrams=lm.words(),
                                       alpha=lm_decoder.lm_weight, beta=lm_decoder.word_bonus)
        yield decoder


def save_hf_folder(folder: str, encoder: torch.nn.Module, head: torch.nn.Linear, tokenizer: CharTokenizer,
                   lm_decoder=None) -> str:
    """Write a Hugging Face folder: the ``*ForCTC`` weights and config
    (:func:`to_hf_ctc`) and the processor (:func:`hf_processor`), so that
    ``AutoModelForCTC``, ``AutoProcessor`` and
    ``transformers.pipeline("automatic-speech-recognition", model=folder)``
    load it; with an LM decoder, also the LM in pyctcdecode's layout
    (``alphabet.json``, ``language_model/`` with the LM file, its unigrams
    and the weight and word bonus in ``attrs.json``)::

        from pyctcdecode import BeamSearchDecoderCTC
        decoder = BeamSearchDecoderCTC.load_from_dir(folder)
        text = decoder.decode(logits[0].numpy())

    Arguments
    ---------
    folder : str
        Output folder.
    encoder, head
        As in :func:`to_hf_ctc`.
    tokenizer : CharTokenizer
        Character tokenizer (its ``vocab.json`` is HF's format).
    lm_decoder : speechbrain_w2vbert.lm.beam.LMBeamDecoder, optional
        Its LM file, weight and word bonus (needs pyctcdecode).

    Returns
    -------
    str
        ``folder``.
    """
    if not isinstance(tokenizer, CharTokenizer):
        raise TypeError("the Hugging Face export needs the character tokenizer (vocab.json)")
    with _quiet_export():
        to_hf_ctc(encoder, head, tokenizer.blank_index).save_pretrained(folder)
        hf_processor(encoder, tokenizer, folder).save_pretrained(folder)
        if lm_decoder is not None and lm_decoder.uses_lm:
            with pyctcdecode_decoder(tokenizer.tokens, lm_decoder) as decoder:
                decoder.save_to_dir(folder)
    return folder


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
    >>> from speechbrain_w2vbert.models.w2vbert import W2VBert
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
        if hf.config.model_type != "wav2vec2-bert":
            raise ValueError(f"{source}: give an encoder for model type {hf.config.model_type!r}")
        encoder = W2VBert(config=base.config.to_dict(), pretrained=False, **encoder_kwargs)
    unwrap(encoder).model.load_state_dict(base.state_dict())
    tokenizer, order = hf_ctc_tokenizer(source, hf.lm_head.out_features, cache_dir)
    head = torch.nn.Linear(hf.lm_head.in_features, hf.lm_head.out_features)
    with torch.no_grad():
        head.weight.copy_(hf.lm_head.weight[order])
        head.bias.copy_(hf.lm_head.bias[order])
    return encoder, head, tokenizer
