"""ONNX export of a trained model: an ``EncoderASR`` folder (or the recipe's
encoder, head and tokenizer) as a folder that
:class:`~speechbrain_w2vbert.onnx.runtime.OnnxTranscriber` runs without
torch, or that sherpa-onnx runs (``format="sherpa"``).

The folder (:func:`export_onnx_folder`)::

    <out>/model.onnx          fp32 graph (weights in model.onnx.data beside it)
    <out>/model.onnx.data
    <out>/model.int8.onnx     int8 graph, one file (with int8=True)
    <out>/vocab.json          character vocabulary (or tokenizer.model: SentencePiece)
    <out>/lm.arpa|lm.bin      the word n-gram LM, with unigrams.txt (folders with an LM)
    <out>/manifest.json       kind "onnx": every file's size and SHA-256, the graphs,
                              vocabulary, blank, sample and frame rate, normaliser
                              and LM settings; written last

The graph is the trained network as it runs in training and in
``EncoderASR`` (our lobe, with its own attention and convolution modules;
dropout off), the CTC head and an fp32 log-softmax, with dynamic batch and
length::

    inputs   input_features  float32 [batch, frames, 160]  SeamlessM4T features
             attention_mask  int64   [batch, frames]       1 on valid frames
    outputs  log_probs       float32 [batch, out_frames, vocabulary]
             log_probs_length int64  [batch]

Padding frames of ``log_probs`` are certain blanks, as
:class:`~speechbrain_w2vbert.models.ctc.EncoderCTC` makes them. The inputs
are those of transformers' ``Wav2Vec2BertForCTC`` (its feature extractor's
output), computed without torch by :mod:`speechbrain_w2vbert.onnx.frontend`.
Every export is checked against the torch model on padded batches before
the folder is written (:func:`check_parity`).

``format="sherpa"`` writes instead what sherpa-onnx's ``fire_red_asr_ctc``
model type loads (see docs/onnx.md): one file ``model.onnx`` whose graph
takes Kaldi fbank frames ([batch, frames, 80] and their count) and carries
the per-utterance normalisation and the stacking of frame pairs itself, with
the metadata sherpa-onnx reads, and ``tokens.txt``.

Authors: speechbrain-w2vbert contributors
"""

import logging
import os
import shutil
import tempfile
import unicodedata
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from speechbrain_w2vbert.inference.folder import asr_model, folder_lm_decoder
from speechbrain_w2vbert.inference.manifest import write_manifest
from speechbrain_w2vbert.lm.ngram import UNIGRAMS_NAME, NgramLM
from speechbrain_w2vbert.models.ctc import EncoderCTC
from speechbrain_w2vbert.models.w2vbert import W2VBert
from speechbrain_w2vbert.onnx import runtime
from speechbrain_w2vbert.onnx.frontend import N_MELS, STRIDE, batch_features
from speechbrain_w2vbert.text.tokenizer import CharTokenizer, SentencePieceCTCTokenizer, WORD_DELIMITER

__all__ = ["OnnxExportError", "CTCGraph", "SherpaCTCGraph", "export_onnx_folder", "export_asr_onnx",
           "export_trained_onnx", "check_parity", "OPSET"]

logger = logging.getLogger(__name__)

#: ONNX opset of the exported graphs.
OPSET = 17
#: Largest difference of log-probabilities between torch and onnxruntime an export accepts.
PARITY_TOLERANCE = 1e-4


class OnnxExportError(ValueError):
    """A model that cannot be exported, or whose export does not compute
    what the torch model computes."""


class CTCGraph(torch.nn.Module):
    """What the ONNX graph computes: the lobe's transformers encoder on
    SeamlessM4T features, the CTC head, an fp32 log-softmax, padding frames
    set to the blank (see the module docstring for inputs and outputs).

    Arguments
    ---------
    model : EncoderCTC
        A trained model whose encoder is a :class:`W2VBert` (in eval mode
        for the export: dropout off).
    """

    def __init__(self, model: EncoderCTC):
        super().__init__()
        if not isinstance(model.encoder, W2VBert):
            raise OnnxExportError(f"ONNX export supports w2v-BERT 2.0 encoders (W2VBert), not "
                                  f"{type(model.encoder).__name__}")
        if model.encoder.output_all_hiddens:
            raise OnnxExportError("ONNX export needs an encoder that returns its last layer (output_all_hiddens=False)")
        self.model = model.encoder.model
        self.head = model.head
        self.output_norm = model.encoder.output_norm
        self.blank_index = model.blank_index

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor):
        """``(log_probs [B, T'', V], log_probs_length [B])`` of features
        [B, T', 160] and their mask [B, T'] (see the module docstring)."""
        hidden = self.model(input_features=input_features, attention_mask=attention_mask).last_hidden_state
        if self.output_norm:
            hidden = F.layer_norm(hidden, hidden.shape[-1:])
        log_probs = F.log_softmax(self.head(hidden).float(), dim=-1)  # [B, T'', V]
        lengths = attention_mask.sum(dim=1)
        if self.model.config.add_adapter:
            lengths = self.model._get_feat_extract_output_lengths(lengths)
        valid = torch.arange(log_probs.shape[1], device=lengths.device)[None, :] < lengths[:, None]
        blank = torch.full_like(log_probs[:1, :1], torch.finfo(log_probs.dtype).min)
        blank[..., self.blank_index] = 0.0
        return torch.where(valid.unsqueeze(-1), log_probs, blank), lengths.long()


class SherpaCTCGraph(CTCGraph):
    """:class:`CTCGraph` on Kaldi fbank frames, for sherpa-onnx: inputs
    ``x`` float32 [batch, frames, 80] (log-mel energies of 10 ms frames,
    padded with any value) and ``x_length`` int64 [batch]; the graph
    normalises each utterance's bins over its own frames (mean, unbiased
    variance, as :func:`speechbrain_w2vbert.onnx.frontend.normalize_and_stack`)
    and stacks frame pairs before the encoder."""

    EPS = 1e-7

    def forward(self, x: torch.Tensor, x_length: torch.Tensor):
        """``(log_probs, log_probs_length)`` of fbank frames [B, N, 80] and
        their counts [B]."""
        frames = x.shape[1]
        valid = (torch.arange(frames, device=x.device)[None, :] < x_length[:, None]).unsqueeze(-1)  # [B, N, 1]
        count = x_length.to(x.dtype)[:, None, None]
        shifted = torch.where(valid, x - x[:, :1], torch.zeros_like(x))
        centered = torch.where(valid, shifted - shifted.sum(dim=1, keepdim=True) / count, torch.zeros_like(x))
        var = centered.square().sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
        normed = centered / torch.sqrt(var + self.EPS)
        out_frames = frames // STRIDE
        feats = normed[:, : out_frames * STRIDE].reshape(x.shape[0], out_frames, N_MELS * STRIDE)
        feat_lengths = torch.div(x_length, STRIDE, rounding_mode="floor")
        mask = (torch.arange(out_frames, device=x.device)[None, :] < feat_lengths[:, None]).long()
        feats = feats * mask.unsqueeze(-1).to(feats.dtype)
        return super().forward(feats, mask)


def _example_batch(lengths=(32000, 20000, 9000)):
    """A padded batch of noise-like waveforms' features (padding matters:
    the graph must keep the mask's path)."""
    generator = np.random.default_rng(0)
    wavs = [(0.1 * generator.standard_normal(n)).astype(np.float32) for n in lengths]
    return wavs, batch_features(wavs)


def _export(graph: torch.nn.Module, path: str, inputs: tuple, input_names, dynamic_axes) -> None:
    """``torch.onnx.export`` (the TorchScript exporter) of ``graph`` in eval
    mode, weights as external data beside ``path``."""
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it folds, and its deprecation
        torch.onnx.export(graph.eval(), inputs, path, input_names=list(input_names),
                          output_names=["log_probs", "log_probs_length"], dynamic_axes=dynamic_axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False,
                          external_data=True)


def _save_single_or_external(path: str, single: bool) -> None:
    """Rewrites the exported graph at ``path`` with its weights in one
    external file ``<name>.data`` (or inside the file: ``single``)."""
    import onnx

    model = onnx.load(path)  # the exporter's external files are read in
    folder = os.path.dirname(path)
    for name in os.listdir(folder):  # the exporter writes one file per tensor
        if name != os.path.basename(path):
            os.remove(os.path.join(folder, name))
    if single:
        onnx.save_model(model, path)
    else:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=os.path.basename(path) + ".data", size_threshold=1024)


def check_parity(model: EncoderCTC, onnx_path: str, tolerance: float = PARITY_TOLERANCE) -> float:
    """Runs the exported graph with onnxruntime and the torch model on the
    same padded batch; returns the largest difference of log-probabilities
    on valid frames.

    Raises
    ------
    OnnxExportError
        The difference exceeds ``tolerance``, or the frame counts differ.
    """
    import onnxruntime

    wavs, (feats, mask) = _example_batch()
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    log_probs, lengths = session.run(None, {"input_features": feats, "attention_mask": mask})
    longest = max(len(w) for w in wavs)
    batch = torch.zeros(len(wavs), longest)
    for i, w in enumerate(wavs):
        batch[i, : len(w)] = torch.from_numpy(w)
    with torch.no_grad():
        expected, out_lens = model(batch, torch.tensor([len(w) / longest for w in wavs]), return_lengths=True)
    expected_lengths = torch.round(out_lens.double() * expected.shape[1]).long().tolist()
    if lengths.tolist() != expected_lengths or log_probs.shape[1] != expected.shape[1]:
        raise OnnxExportError(f"{onnx_path}: output frames {lengths.tolist()} where torch gives {expected_lengths}")
    worst = 0.0
    for i, n in enumerate(expected_lengths):
        worst = max(worst, float(np.abs(log_probs[i, :n] - expected[i, :n].numpy()).max()))
    if worst > tolerance:
        raise OnnxExportError(f"{onnx_path}: log-probabilities differ from torch's by {worst:.2e} "
                              f"(at most {tolerance:.0e} allowed)")
    return worst


def _normalizer() -> dict:
    """What the folder's text normalisation is (LM words and references
    must be normalised the same way)."""
    from speechbrain_w2vbert import __version__

    return {"function": "speechbrain_w2vbert.text.normalize.normalize_nepali", "package_version": __version__,
            "unicode_version": unicodedata.unidata_version}


def _write_tokenizer(folder: str, tokenizer) -> dict:
    """The vocabulary's file in ``folder`` and its manifest entry."""
    if isinstance(tokenizer, CharTokenizer):
        return {"type": "char", "file": os.path.basename(tokenizer.save(folder))}
    if isinstance(tokenizer, SentencePieceCTCTokenizer):
        with open(os.path.join(folder, runtime.SENTENCEPIECE_FILE), "wb") as f:
            f.write(tokenizer.sp.serialized_model_proto())
        return {"type": "sentencepiece", "file": runtime.SENTENCEPIECE_FILE}
    raise OnnxExportError(f"cannot export a tokenizer of type {type(tokenizer).__name__}")


def _write_lm(folder: str, lm_decoder) -> Optional[dict]:
    """The LM's files in ``folder`` (ARPA or KenLM binary, and its words)
    and their manifest entry; None without an LM."""
    if lm_decoder is None or not lm_decoder.uses_lm:
        return None
    lm = NgramLM(lm_decoder.lm_path)
    name = "lm.bin" if lm.is_binary else "lm.arpa"
    lm.copy_to(folder, name)
    return {"file": name, "unigrams": UNIGRAMS_NAME, "beam_size": int(lm_decoder.beam_size),
            "lm_weight": float(lm_decoder.lm_weight), "word_bonus": float(lm_decoder.word_bonus),
            "beam_prune_logp": float(lm_decoder.beam_prune_logp),
            "token_prune_min_logp": float(lm_decoder.token_prune_min_logp)}


def export_onnx_folder(folder: str, model: EncoderCTC, tokenizer, lm_decoder=None, int8: bool = False,
                       format: str = "onnx", int8_method: Optional[str] = None) -> str:
    """Writes an ONNX folder (see the module docstring) of a trained model.

    Arguments
    ---------
    folder : str
        Output folder (created; an existing export in it is replaced).
    model : EncoderCTC
        The trained encoder and head (``asr.mods.encoder`` of a loaded
        folder); exported in eval mode and left in the mode it was in.
    tokenizer : CharTokenizer or SentencePieceCTCTokenizer
        The model's tokenizer.
    lm_decoder : speechbrain_w2vbert.lm.beam.LMBeamDecoder, optional
        Its LM, beam size, weight and word bonus go into the folder.
    int8 : bool
        Also write the int8 graph (:mod:`speechbrain_w2vbert.onnx.quantize`).
    format : str
        ``"onnx"`` (default: for :class:`~speechbrain_w2vbert.onnx.runtime.OnnxTranscriber`,
        onnxruntime, transformers.js...) or ``"sherpa"`` (sherpa-onnx's
        ``fire_red_asr_ctc``: ``model.onnx`` in one file, int8 with
        ``int8``, and ``tokens.txt``).
    int8_method : str, optional
        The quantisation (:data:`speechbrain_w2vbert.onnx.quantize.METHODS`;
        default its :data:`~speechbrain_w2vbert.onnx.quantize.DEFAULT_METHOD`).

    Returns
    -------
    str
        The manifest's path.

    Raises
    ------
    OnnxExportError
        An encoder this export does not handle, or a graph that does not
        compute what the torch model computes.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> tok = CharTokenizer.build(["राम घर"])
    >>> model = EncoderCTC(W2VBert(TINY_CONFIG_DIR, pretrained=False), torch.nn.Linear(144, tok.vocab_size))
    >>> folder = tempfile.mkdtemp()
    >>> _ = export_onnx_folder(folder, model, tok)
    >>> sorted(os.listdir(folder))
    ['manifest.json', 'model.onnx', 'model.onnx.data', 'vocab.json']
    """
    from speechbrain_w2vbert.onnx.quantize import DEFAULT_METHOD, quantize_int8

    if format not in ("onnx", "sherpa"):
        raise ValueError(f"format must be 'onnx' or 'sherpa', not {format!r}")
    if format == "sherpa" and not isinstance(tokenizer, CharTokenizer):
        raise OnnxExportError("the sherpa-onnx export needs the character tokenizer (tokens.txt of characters)")
    was_training = model.training
    model.eval()
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):  # a previous export's files (the manifest first: the folder is incomplete now)
        if name == runtime.MANIFEST or name.startswith("model.") or name == "tokens.txt":
            os.remove(os.path.join(folder, name))
    try:
        with tempfile.TemporaryDirectory(prefix="onnx-export-", dir=folder) as work:
            graph_path = os.path.join(work, "model.onnx")
            if format == "sherpa":
                parity = _export_sherpa(model, graph_path)
            else:
                _, (feats, mask) = _example_batch()
                _export(CTCGraph(model), graph_path, (torch.from_numpy(feats), torch.from_numpy(mask)),
                        ("input_features", "attention_mask"),
                        {"input_features": {0: "batch", 1: "frames"}, "attention_mask": {0: "batch", 1: "frames"},
                         "log_probs": {0: "batch", 1: "out_frames"}, "log_probs_length": {0: "batch"}})
                _save_single_or_external(graph_path, single=False)
                parity = check_parity(model, graph_path)
            models = {}
            if format == "sherpa" and not int8:
                _save_single_or_external(graph_path, single=True)
                shutil.move(graph_path, os.path.join(folder, "model.onnx"))
                models["fp32"] = "model.onnx"
            elif format == "sherpa":
                quantize_int8(graph_path, os.path.join(folder, "model.int8.onnx"), int8_method or DEFAULT_METHOD)
                models["int8"] = "model.int8.onnx"
            else:
                for name in ("model.onnx", "model.onnx.data"):
                    shutil.move(os.path.join(work, name), os.path.join(folder, name))
                models["fp32"] = "model.onnx"
                if int8:
                    quantize_int8(os.path.join(folder, "model.onnx"), os.path.join(folder, "model.int8.onnx"),
                                  int8_method or DEFAULT_METHOD)
                    models["int8"] = "model.int8.onnx"
    finally:
        model.train(was_training)
    encoder = model.encoder
    extra = {
        "format_version": runtime.FORMAT_VERSION,
        "graph_format": format,
        "models": models,
        "int8_method": (int8_method or DEFAULT_METHOD) if int8 else None,
        "parity_max_abs_diff": parity,
        "sample_rate": 16000,
        "samples_per_frame": int(encoder.samples_per_frame),
        "frame_rate": float(encoder.frame_rate),
        "min_samples": int(encoder.min_samples),
        "blank_index": int(tokenizer.blank_index),
        "vocab_size": int(tokenizer.vocab_size),
        "tokens": list(tokenizer.tokens),
        "normalizer": _normalizer(),
    }
    if format == "sherpa":
        _write_sherpa_tokens(folder, tokenizer)
        extra["tokenizer"] = {"type": "char", "file": "tokens.txt"}
        extra["lm"] = None
    else:
        extra["tokenizer"] = _write_tokenizer(folder, tokenizer)
        extra["lm"] = _write_lm(folder, lm_decoder)
    return write_manifest(folder, runtime.MANIFEST_KIND, **extra)


def _export_sherpa(model: EncoderCTC, path: str) -> float:
    """Exports :class:`SherpaCTCGraph` with sherpa-onnx's metadata to
    ``path``; returns its largest difference from the default graph's
    log-probabilities on the same log-mel frames."""
    import onnx
    import onnxruntime

    from speechbrain_w2vbert.onnx.frontend import log_mel

    wavs, (feats, mask) = _example_batch()
    mels = [log_mel(w).astype(np.float32) for w in wavs]
    longest = max(len(m) for m in mels)
    x = np.full((len(mels), longest, N_MELS), -23.025850929940457, dtype=np.float32)  # sherpa's padding value
    for i, m in enumerate(mels):
        x[i, : len(m)] = m
    x_length = np.array([len(m) for m in mels], dtype=np.int64)
    _export(SherpaCTCGraph(model), path, (torch.from_numpy(x), torch.from_numpy(x_length)), ("x", "x_length"),
            {"x": {0: "batch", 1: "frames"}, "x_length": {0: "batch"}, "log_probs": {0: "batch", 1: "out_frames"},
             "log_probs_length": {0: "batch"}})
    onnx_model = onnx.load(path)
    metadata = {"model_type": "fire-red-asr-2-ctc", "subsampling_factor": str(STRIDE),
                "cmvn_mean": ",".join(["0"] * N_MELS), "cmvn_inv_stddev": ",".join(["1"] * N_MELS),
                "vocab_size": str(model.head.out_features), "comment": "speechbrain-w2vbert w2v-BERT 2.0 CTC"}
    for key, value in metadata.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(onnx_model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=1024)
    for name in os.listdir(os.path.dirname(path)):
        if name not in ("model.onnx", "model.onnx.data"):
            os.remove(os.path.join(os.path.dirname(path), name))
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got, got_lengths = session.run(None, {"x": x, "x_length": x_length})
    with torch.no_grad():
        expected, lengths = CTCGraph(model)(torch.from_numpy(feats), torch.from_numpy(mask))
    if got_lengths.tolist() != lengths.tolist():
        raise OnnxExportError(f"{path}: output frames {got_lengths.tolist()} where torch gives {lengths.tolist()}")
    worst = max(float(np.abs(got[i, :n] - expected[i, :n].numpy()).max()) for i, n in enumerate(lengths.tolist()))
    if worst > PARITY_TOLERANCE:
        raise OnnxExportError(f"{path}: log-probabilities differ from the torch model's by {worst:.2e}")
    return worst


def _write_sherpa_tokens(folder: str, tokenizer: CharTokenizer) -> None:
    """``tokens.txt`` as sherpa-onnx reads it: ``symbol id`` per line, the
    blank as ``<blk>``, the word delimiter as ``▁`` (which sherpa-onnx
    writes as a space)."""
    lines = []
    for i, token in enumerate(tokenizer.tokens):
        if i == tokenizer.blank_index:
            token = "<blk>"
        elif token == WORD_DELIMITER:
            token = "\u2581"
        lines.append(f"{token} {i}")
    path = os.path.join(folder, "tokens.txt")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def export_asr_onnx(asr, folder: str, int8: bool = False, format: str = "onnx",
                    int8_method: Optional[str] = None) -> str:
    """:func:`export_onnx_folder` of a loaded ``EncoderASR``
    (:func:`~speechbrain_w2vbert.inference.folder.load_asr`): its model,
    tokenizer and LM."""
    return export_onnx_folder(folder, asr_model(asr), asr.tokenizer, folder_lm_decoder(asr), int8=int8,
                              format=format, int8_method=int8_method)


def export_trained_onnx(folder: str, encoder: torch.nn.Module, head: torch.nn.Linear, tokenizer, lm_decoder=None,
                        int8: bool = False) -> str:
    """:func:`export_onnx_folder` of the recipe's trained encoder lobe and
    CTC head (DDP wrappers unwrapped), as ``export_inference_folder``
    takes them: what ``train.py`` writes as ``onnx/`` with ``export_onnx: True``."""
    encoder, head = getattr(encoder, "module", encoder), getattr(head, "module", head)
    model = EncoderCTC(encoder, head, blank_index=tokenizer.blank_index)
    return export_onnx_folder(folder, model, tokenizer, lm_decoder, int8=int8)
