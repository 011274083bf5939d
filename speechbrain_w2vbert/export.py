"""Export a trained model: a self-contained ``EncoderASR`` folder and an
optional Hugging Face ``Wav2Vec2BertForCTC`` folder.

:func:`export_inference_folder` writes::

    <folder>/hyperparams.yaml   EncoderASR hparams; the encoder's architecture
                                (its config.json fields) and the character
                                vocabulary are written inline
    <folder>/encoder.ckpt       W2VBert state dict
    <folder>/ctc_head.ckpt      torch.nn.Linear state dict
    <folder>/tokenizer.ckpt     SentencePiece model (SentencePiece tokenizers only)
    <folder>/vocab.json         character vocabulary (character tokenizer only)

and ``EncoderASR.from_hparams(source=<folder>, savedir=...)`` loads it with no
network access. :func:`to_hf_ctc` maps the encoder and head 1:1 onto
``transformers.Wav2Vec2BertForCTC``; :func:`save_hf_folder` writes that model
with its tokenizer and feature extractor.

Authors: speechbrain-w2vbert contributors
"""

import copy
import os
import textwrap
from typing import Union

import torch
import yaml

from speechbrain_w2vbert.tokenizer import CharTokenizer, SentencePieceCTCTokenizer

__all__ = ["encoder_config_dict", "export_inference_folder", "to_hf_ctc", "save_hf_folder"]

#: config.json keys that describe the saving software, not the architecture.
_NON_ARCH_KEYS = ("transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype", "vocab_size")

Tokenizer = Union[CharTokenizer, SentencePieceCTCTokenizer]


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP/DataParallel wrapper (or the module itself)."""
    return getattr(module, "module", module)


def encoder_config_dict(encoder: torch.nn.Module) -> dict:
    """The architecture fields of a ``W2VBert``'s ``Wav2Vec2BertConfig``."""
    config = _unwrap(encoder).model.config.to_dict()
    return {k: v for k, v in sorted(config.items()) if k not in _NON_ARCH_KEYS}


_HEADER = """\
# ############################################################################
# Inference: w2v-BERT 2.0 encoder + linear CTC head, greedy decoding.
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

# Architecture of the encoder (transformers' Wav2Vec2BertConfig fields).
"""

_BODY = """
w2v_bert: !new:speechbrain_w2vbert.lobe.W2VBert
    config: !ref <encoder_config>
    pretrained: False  # the weights come from encoder.ckpt
    output_norm: {output_norm}

ctc_head: !new:torch.nn.Linear
    in_features: {in_features}
    out_features: {out_features}

asr_model: !new:speechbrain_w2vbert.ctc.W2VBertCTC
    encoder: !ref <w2v_bert>
    head: !ref <ctc_head>
    blank_index: !ref <blank_index>

audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer
    sample_rate: !ref <sample_rate>

# Padding frames come out of asr_model as blanks: every frame is decoded.
decoding_function: !name:speechbrain_w2vbert.ctc.greedy_decode
    blank_index: !ref <blank_index>

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
) -> str:
    """Write a self-contained ``EncoderASR`` folder (see the module doc).

    Arguments
    ---------
    folder : str
        Output folder (created; files in it are overwritten).
    encoder : speechbrain_w2vbert.lobe.W2VBert
        Trained encoder (a DDP wrapper is unwrapped).
    head : torch.nn.Linear
        Trained CTC head.
    tokenizer : CharTokenizer or SentencePieceCTCTokenizer
        The recipe's tokenizer.

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
    text += _BODY.format(output_norm=encoder.output_norm, in_features=head.in_features, out_features=head.out_features)
    if isinstance(tokenizer, CharTokenizer):
        tokenizer.save(folder)
        text += "# Character vocabulary (also in vocab.json, loadable by transformers' Wav2Vec2CTCTokenizer).\n"
        text += "tokenizer: !new:speechbrain_w2vbert.tokenizer.CharTokenizer\n"
        text += _indented_yaml({"vocab": tokenizer.vocab})
        loadables = "    loadables:\n        encoder: !ref <w2v_bert>\n        ctc_head: !ref <ctc_head>\n"
    elif isinstance(tokenizer, SentencePieceCTCTokenizer):
        with open(os.path.join(folder, "tokenizer.ckpt"), "wb") as f:
            f.write(tokenizer.sp.serialized_model_proto())
        text += "spm: !new:sentencepiece.SentencePieceProcessor  # model in tokenizer.ckpt\n"
        text += "tokenizer: !new:speechbrain_w2vbert.tokenizer.SentencePieceCTCTokenizer\n    processor: !ref <spm>\n"
        loadables = (
            "    loadables:\n        encoder: !ref <w2v_bert>\n        ctc_head: !ref <ctc_head>\n"
            "        tokenizer: !ref <spm>\n"
        )
    else:
        raise TypeError(f"cannot export a tokenizer of type {type(tokenizer).__name__}")
    text += "\npretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n" + loadables
    path = os.path.join(folder, "hyperparams.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def to_hf_ctc(encoder: torch.nn.Module, head: torch.nn.Linear, blank_index: int = 0):
    """The same model as a ``transformers.Wav2Vec2BertForCTC``.

    ``wav2vec2_bert`` gets the encoder's weights and ``lm_head`` the head's
    (HF's ``dropout`` before ``lm_head`` plays the recipe's dropout).

    Arguments
    ---------
    encoder : speechbrain_w2vbert.lobe.W2VBert
        Trained encoder, without ``output_norm`` (HF has no such layer).
    head : torch.nn.Linear
        Trained CTC head.
    blank_index : int
        CTC blank id, HF's ``pad_token_id`` (default 0).

    Returns
    -------
    transformers.Wav2Vec2BertForCTC
        In eval mode.

    Example
    -------
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> from speechbrain_w2vbert.lobe import W2VBert
    >>> encoder, head = W2VBert(TINY_CONFIG_DIR, pretrained=False).eval(), torch.nn.Linear(144, 9)
    >>> hf = to_hf_ctc(encoder, head)
    >>> feats, _ = encoder.frontend(torch.randn(1, 16000) * 0.1)
    >>> with torch.no_grad():
    ...     same = torch.allclose(hf(input_features=feats).logits, head(encoder.model(feats).last_hidden_state))
    >>> same
    True
    """
    from transformers import Wav2Vec2BertForCTC

    encoder, head = _unwrap(encoder), _unwrap(head)
    if encoder.output_norm:
        raise ValueError(
            "Wav2Vec2BertForCTC has no output layer norm: export an encoder trained with output_norm=False"
        )
    config = copy.deepcopy(encoder.model.config)
    config.vocab_size = head.out_features
    config.pad_token_id = blank_index
    config.ctc_loss_reduction = "mean"
    model = Wav2Vec2BertForCTC(config)
    model.wav2vec2_bert.load_state_dict(encoder.model.state_dict())
    model.lm_head.load_state_dict(head.state_dict())
    return model.eval()


def save_hf_folder(folder: str, encoder: torch.nn.Module, head: torch.nn.Linear, tokenizer: CharTokenizer) -> str:
    """Write a Hugging Face folder: ``Wav2Vec2BertForCTC`` weights and config,
    ``Wav2Vec2CTCTokenizer`` and ``SeamlessM4TFeatureExtractor`` files, so
    that ``Wav2Vec2BertForCTC.from_pretrained`` and
    ``Wav2Vec2BertProcessor.from_pretrained`` load it.

    Arguments
    ---------
    folder : str
        Output folder.
    encoder, head
        As in :func:`to_hf_ctc`.
    tokenizer : CharTokenizer
        Character tokenizer (its ``vocab.json`` is HF's format).

    Returns
    -------
    str
        ``folder``.
    """
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertProcessor, Wav2Vec2CTCTokenizer

    if not isinstance(tokenizer, CharTokenizer):
        raise TypeError("the Hugging Face export needs the character tokenizer (vocab.json)")
    to_hf_ctc(encoder, head, tokenizer.blank_index).save_pretrained(folder)
    vocab = tokenizer.save(folder)
    hf_tokenizer = Wav2Vec2CTCTokenizer(vocab, unk_token="[UNK]", pad_token="[PAD]", word_delimiter_token="|")
    processor = Wav2Vec2BertProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=hf_tokenizer)
    processor.save_pretrained(folder)
    return folder
