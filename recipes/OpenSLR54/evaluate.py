#!/usr/bin/env python3
"""Evaluate a model on standard Nepali test sets, scored as the recipe
scores: one results table per model (markdown and JSON).

::

    python recipes/OpenSLR54/evaluate.py results/w2vbert_ctc/1986/inference \\
        --test_set "fleurs: fleurs:/data/fleurs/data/ne_np" \\
        --test_set "cv17: cv:/data/cv-corpus-17.0-2024-03-15" \\
        --test_set "openslr54_test: tsv:results/w2vbert_ctc/1986/test.csv" \\
        --train-text results/w2vbert_ctc/1986/train.csv --output_folder results/eval/w2vbert_ctc

Each ``--test_set`` is ``name: layout:path?option=value`` (layouts
``fleurs``, ``fleurs_hf``, ``cv``, ``openslr43``, ``tsv``: see
docs/test-sets.md). It is prepared by ``prepare_test_sets.py`` into
``--prepared-folder`` (what the preparation dropped, by reason, is in the
table), its audio run through the model once, decoded greedily and, where
the model has one, with its LM, and scored by
:class:`~speechbrain_w2vbert.text.scoring.ScoringRule` (``--digits``). The
output folder gets ``test_results.md`` / ``test_results.json`` and, per set,
``wer_<set>.txt`` / ``wer_<set>_lm.txt`` (per-utterance alignments).

Models (``--kind``; ``auto`` tells a local folder by its files):

``encoder_asr``
    An ``EncoderASR`` folder (the recipe's ``inference/``) or hub
    repository, opened by :func:`~speechbrain_w2vbert.inference.folder.load_asr`
    (``--trust-remote-code``, ``--revision``). With ``lm.ckpt`` it is also
    decoded by beam search with its LM and tuned weights (``--beam-size``,
    ``--lm-weight``, ``--word-bonus`` change them; ``--no-lm``: greedy only).
``hf``
    A transformers CTC folder (``Wav2Vec2BertForCTC``, ``Wav2Vec2ForCTC``...)
    with its processor, as ``AutoModelForCTC`` / ``AutoProcessor`` load it;
    greedy is its tokenizer's CTC decoding. With pyctcdecode's layout in the
    folder (``alphabet.json``, ``language_model/``: what the recipe's
    ``hf_model/`` holds) it is also decoded by pyctcdecode with that LM.
``mms``
    The zero-shot baseline: ``facebook/mms-1b-all`` (or a folder laid out
    like it) with the adapter and vocabulary of ``--target-lang`` (``npi``,
    Nepali); greedy. ``eval_mms_zero_shot.py`` runs this.

The overlap report beside the LM figures: how many of a set's sentences occur
verbatim in ``--train-text`` (the training/LM text: CSVs' ``wrd`` column or
text files), and the fraction of its words outside the LM's vocabulary.
Exit status 1 when a set could not be prepared or evaluated (the others are).

Authors: speechbrain-w2vbert contributors
"""

import argparse
import csv
import logging
import os
import sys
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from speechbrain_w2vbert.audio import AudioError, read_audio
from speechbrain_w2vbert.inference.decoding import select_decoder
from speechbrain_w2vbert.inference.folder import ModelFolderError, asr_model, folder_lm_decoder, load_asr
from speechbrain_w2vbert.inference.manifest import ManifestError
from speechbrain_w2vbert.inference.safety import UnsafeFolderError
from speechbrain_w2vbert.lm.ngram import LMError, NgramLM, quiet_native_stderr
from speechbrain_w2vbert.models.encoder import hub_load_kwargs
from speechbrain_w2vbert.models.features import SeamlessFbank
from speechbrain_w2vbert.models.wav2vec2 import receptive_field
from speechbrain_w2vbert.text.overlap import text_overlap
from speechbrain_w2vbert.text.scoring import DIGIT_RULES, ScoringRule

from evaluation import (  # the recipe folder is on sys.path
    OVERLAP_NOTE,
    alignment_paths,
    lm_note,
    preparation_summary,
    read_texts,
    results_row,
    score_set,
    write_results,
)
from prepare_test_sets import SPLIT, parse_test_set, prepare_test_set

logger = logging.getLogger(__name__)

KINDS = ("auto", "encoder_asr", "hf", "mms")
SAMPLE_RATE = 16000


# --------------------------------------------------------------------------
# Models: log-probabilities, greedy and LM decoding
# --------------------------------------------------------------------------
class EncoderASRModel:
    """An ``EncoderASR`` folder (opened by ``load_asr``) as the evaluation
    uses it.

    Arguments
    ---------
    asr : speechbrain.inference.ASR.EncoderASR
        The loaded folder.
    use_lm : bool, optional
        None: the folder's LM when it has one; False: greedy only.
    **beam_options
        ``beam_size``, ``lm_weight``, ``word_bonus`` (None: the folder's).
    """

    def __init__(self, asr, use_lm: Optional[bool] = None, **beam_options):
        self.asr = asr
        self.encoder = asr_model(asr).encoder
        self.min_samples = self.encoder.min_samples
        self.tokenizer = asr.tokenizer
        self.decoder = select_decoder(folder_lm_decoder(asr), use_lm, **beam_options)
        self.lm_words = NgramLM(self.decoder.lm_path).words() if self.decoder is not None else None
        self.lm_description = lm_note(self.decoder) if self.decoder is not None else ""

    @torch.no_grad()
    def log_probs(self, wavs: Sequence[torch.Tensor]) -> List[np.ndarray]:
        """Log-probabilities [T_i, V] of each waveform's valid frames, from
        one padded batch."""
        batch = torch.nn.utils.rnn.pad_sequence(list(wavs), batch_first=True)
        lens = torch.tensor([w.shape[0] / batch.shape[1] for w in wavs])
        out = self.asr.encode_batch(batch, lens).float().cpu()
        frames = self.encoder.output_frames(torch.tensor([w.shape[0] for w in wavs])).tolist()
        return [out[i, :n].numpy() for i, n in enumerate(frames)]

    def greedy(self, log_probs: Sequence[np.ndarray]) -> List[str]:
        """Greedy transcripts, as ``EncoderASR.transcribe_batch`` gives them."""
        return [self.tokenizer.decode_ctc(lp.argmax(-1).tolist()) for lp in log_probs]

    @property
    def lm_decode(self):
        """Beam search with the folder's LM, or None."""
        return self.decoder.decode if self.decoder is not None else None


class HFCTCModel:
    """A transformers ``*ForCTC`` model with its processor (``hf``), or MMS
    with a language's adapter (``mms``), as the evaluation uses it.

    Arguments
    ---------
    source : str
        Folder or hub id.
    device : str
        Torch device.
    target_lang : str, optional
        MMS: ISO 639-3 code of the adapter and vocabulary to load.
    revision : str, optional
        Hub revision.
    trust_remote_code : bool
        Passed to transformers (code in a hub repository).
    cache_dir : str, optional
        Hugging Face cache folder for a hub id.
    use_lm : bool, optional
        None: pyctcdecode with the folder's LM when it has pyctcdecode's
        layout; False: greedy only; True: an error without one.
    beam_size : int, optional
        pyctcdecode's beam width (default 100, pyctcdecode's).
    lm_weight, word_bonus : float, optional
        Override the LM's alpha and beta from its ``attrs.json``.
    """

    def __init__(self, source: str, device: str = "cpu", target_lang: Optional[str] = None,
                 revision: Optional[str] = None, trust_remote_code: bool = False, cache_dir: Optional[str] = None,
                 use_lm: Optional[bool] = None, beam_size: Optional[int] = None, lm_weight: Optional[float] = None,
                 word_bonus: Optional[float] = None):
        from transformers import AutoModelForCTC, AutoProcessor

        kwargs = dict(hub_load_kwargs(source, cache_dir, revision), trust_remote_code=trust_remote_code)
        self.processor = AutoProcessor.from_pretrained(source, **kwargs)
        if target_lang:
            self.processor.tokenizer.set_target_lang(target_lang)
            kwargs.update(target_lang=target_lang, ignore_mismatched_sizes=True)
        self.model = AutoModelForCTC.from_pretrained(source, **kwargs).eval().to(device)
        self.device = device
        self.min_samples = hf_min_samples(self.model.config)
        self.beam_size = beam_size or 100
        self.pyctc = None
        has_lm = os.path.isdir(source) and os.path.isdir(os.path.join(source, "language_model"))
        if use_lm and not has_lm:
            raise ValueError(f"{source}: no language model in pyctcdecode's layout (alphabet.json, language_model/)")
        self.lm_words = None
        self.lm_description = ""
        if has_lm and use_lm is not False:
            from pyctcdecode import BeamSearchDecoderCTC

            with quiet_native_stderr():  # kenlm's loading progress
                self.pyctc = BeamSearchDecoderCTC.load_from_dir(source)
            if lm_weight is not None or word_bonus is not None:
                self.pyctc.reset_params(alpha=lm_weight, beta=word_bonus)
            language_model = self.pyctc.model_container[self.pyctc._model_key]
            self.lm_words = sorted(language_model._unigram_set)
            self.lm_description = (f"LM: pyctcdecode beam search ({self.beam_size} beams) with the folder's LM, "
                                   f"weight {language_model.alpha}, word bonus {language_model.beta}.")

    @torch.no_grad()
    def log_probs(self, wavs: Sequence[torch.Tensor]) -> List[np.ndarray]:
        """Log-probabilities [T_i, V] of each waveform's valid frames, from
        one padded batch through the processor and the model."""
        inputs = self.processor(audio=[w.numpy() for w in wavs], sampling_rate=SAMPLE_RATE, padding=True,
                                return_tensors="pt")
        mask = inputs.get("attention_mask")
        lengths = mask.sum(-1) if mask is not None else torch.tensor([w.shape[0] for w in wavs])
        logits = self.model(**{k: v.to(self.device) for k, v in inputs.items()}).logits
        frames = self.model._get_feat_extract_output_lengths(lengths).tolist()
        out = logits.float().log_softmax(-1).cpu()
        return [out[i, :n].numpy() for i, n in enumerate(frames)]

    def greedy(self, log_probs: Sequence[np.ndarray]) -> List[str]:
        """Greedy transcripts: the tokenizer's CTC decoding of each frame's best label."""
        return [self.processor.tokenizer.decode(lp.argmax(-1).tolist()) for lp in log_probs]

    @property
    def lm_decode(self):
        """pyctcdecode's beam search with the folder's LM, or None."""
        if self.pyctc is None:
            return None
        return lambda log_probs: [self.pyctc.decode(lp, beam_width=self.beam_size) for lp in log_probs]


def hf_min_samples(config) -> int:
    """The fewest input samples that give a transformers CTC model one
    output frame: the convolution stack's receptive field (wav2vec 2.0
    family), or two 25 ms filterbank windows (w2v-BERT 2.0: ``SeamlessFbank``'s)."""
    return receptive_field(config) if hasattr(config, "conv_kernel") else SeamlessFbank().min_samples


def model_kind(source: str, kind: str = "auto", target_lang: Optional[str] = None) -> str:
    """The kind of model ``source`` is: ``kind`` unless ``auto``; then
    ``mms`` with a target language, else a local folder's by its files
    (``hyperparams.yaml``: ``encoder_asr``; ``config.json``: ``hf``).

    Raises
    ------
    ValueError
        ``auto`` on a hub id or a folder with neither file.

    Example
    -------
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> model_kind(TINY_CONFIG_DIR), model_kind("facebook/mms-1b-all", target_lang="npi")
    ('hf', 'mms')
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind != "auto":
        return kind
    if target_lang:
        return "mms"
    if os.path.isfile(os.path.join(source, "hyperparams.yaml")):
        return "encoder_asr"
    if os.path.isfile(os.path.join(source, "config.json")):
        return "hf"
    where = "a hub id" if not os.path.isdir(source) else "a folder without hyperparams.yaml or config.json"
    raise ValueError(f"{source}: {where}: name its kind with --kind encoder_asr|hf|mms")


def open_model(args, savedir: str):
    """The model of the command line's arguments (see :func:`model_kind`)."""
    kind = model_kind(args.model, args.kind, args.target_lang)
    beam = {"beam_size": args.beam_size, "lm_weight": args.lm_weight, "word_bonus": args.word_bonus}
    if kind == "encoder_asr":
        asr = load_asr(args.model, args.savedir or savedir, args.device, trust_remote_code=args.trust_remote_code,
                       revision=args.revision)
        return kind, EncoderASRModel(asr, args.lm, **beam)
    if kind == "mms" and args.lm:
        raise ValueError("the MMS baseline decodes greedily (it has no LM)")
    return kind, HFCTCModel(args.model, args.device, args.target_lang or ("npi" if kind == "mms" else None),
                            args.revision, args.trust_remote_code, args.savedir,
                            use_lm=False if kind == "mms" else args.lm, **beam)


# --------------------------------------------------------------------------
# A test set through a model
# --------------------------------------------------------------------------
def batches(rows: Sequence[Dict], max_seconds: float):
    """Rows sorted longest first, grouped into batches of at most
    ``max_seconds`` of audio (one row at least).

    Example
    -------
    >>> rows = [{"duration": d} for d in ("1.0", "3.0", "2.5")]
    >>> [[r["duration"] for r in b] for b in batches(rows, 4.0)]
    [['3.0'], ['2.5', '1.0']]
    """
    batch, total = [], 0.0
    for row in sorted(rows, key=lambda r: -float(r["duration"])):
        if batch and total + float(row["duration"]) > max_seconds:
            yield batch
            batch, total = [], 0.0
        batch.append(row)
        total += float(row["duration"])
    if batch:
        yield batch


def kept_log_probs(model, rows: Sequence[Dict], max_seconds: float = 200.0):
    """Run a set's utterances through the model.

    Arguments
    ---------
    model : EncoderASRModel or HFCTCModel
    rows : sequence of dict
        Recipe CSV rows (``ID``, ``duration``, ``wav``, ``wrd``).
    max_seconds : float
        Seconds of audio per forward pass.

    Returns
    -------
    kept : dict
        Id -> (log-probabilities [T, V], reference), in the rows' order.
    unreadable : dict
        Id -> error of the files that could not be read (counted in the
        table, not scored).
    """
    kept, unreadable = {}, {}
    for batch in batches(rows, max_seconds):
        ready, wavs = [], []
        for row in batch:
            try:
                wavs.append(read_audio(row["wav"], SAMPLE_RATE, model.min_samples))
                ready.append(row)
            except AudioError as error:
                unreadable[row["ID"]] = str(error)
                logger.warning("%s: %s: not scored", row["wav"], error)
        if wavs:
            for row, lp in zip(ready, model.log_probs(wavs)):
                kept[row["ID"]] = (lp, row["wrd"])
    order = [row["ID"] for row in rows if row["ID"] in kept]
    return {uid: kept[uid] for uid in order}, unreadable


def evaluate_set(model, name: str, csv_path: str, report: Optional[Dict], rule: ScoringRule, folder: str,
                 training: Optional[List[str]], max_seconds: float) -> Dict:
    """One prepared set through the model: decoded, scored, alignments
    written into ``folder``; returns its row of the results table."""
    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    kept, unreadable = kept_log_probs(model, rows, max_seconds)
    paths = alignment_paths(folder, name)
    greedy, lm = score_set(kept, model.greedy, model.lm_decode, rule, paths, model.lm_description)
    overlap = text_overlap([ref for _, ref in kept.values()], training, model.lm_words, rule.normalize)
    durations = {row["ID"]: float(row["duration"]) for row in rows if row["ID"] in kept}
    return results_row(name, durations, greedy, lm, overlap, preparation_summary(report),
                       unreadable_at_decoding=unreadable,
                       alignments={"greedy": paths["greedy"], "lm": paths["lm"] if lm else None})


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module's description)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="EncoderASR folder, transformers CTC folder, or hub id (see --kind)")
    parser.add_argument("--test-set", "--test_set", dest="test_sets", action="append", required=True,
                        metavar="SPEC", help="'name: layout:path?option=value' (repeat for several sets)")
    parser.add_argument("--output-folder", "--output_folder", dest="output_folder",
                        help="results folder (default: results/evaluate/<model folder name>)")
    parser.add_argument("--prepared-folder", help="where the sets are prepared (default: <output folder>/test_sets;"
                        " share it between models: a prepared set is not redone)")
    parser.add_argument("--kind", choices=KINDS, default="auto", help="model kind (default: from the folder's files)")
    parser.add_argument("--target-lang", "--target_lang", dest="target_lang",
                        help="MMS adapter language, ISO 639-3 (npi: Nepali; implies --kind mms)")
    parser.add_argument("--train-text", action="append", default=[], metavar="FILE",
                        help="the model's training/LM text (CSV with a wrd column, or text), for the overlap report")
    parser.add_argument("--digits", choices=DIGIT_RULES, default="devanagari",
                        help="devanagari (default): ASCII digits scored as Devanagari ones; distinct: kept apart")
    parser.add_argument("--lm", action=argparse.BooleanOptionalAction, default=None,
                        help="decode with the model's LM too (default: when it has one); --no-lm: greedy only")
    parser.add_argument("--beam-size", type=int, help="beams per frame (default: the folder's; pyctcdecode: 100)")
    parser.add_argument("--lm-weight", type=float, help="LM weight, alpha >= 0 (default: the folder's)")
    parser.add_argument("--word-bonus", type=float, help="score added per word, beta (default: the folder's)")
    parser.add_argument("--batch-seconds", type=float, default=200.0, help="seconds of audio per forward pass")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    parser.add_argument("--savedir", help="EncoderASR: where SpeechBrain links the files; HF hub ids: cache folder")
    parser.add_argument("--revision", help="hub repository revision (pin a commit hash)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="open a folder whose hyperparams.yaml names code the package's exports never name; "
                             "transformers: run a hub repository's own code")
    return parser


def main(argv=None) -> int:
    """Evaluates the model on each set; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    output = args.output_folder or os.path.join("results", "evaluate",
                                                os.path.basename(os.path.normpath(args.model)) or "model")
    prepared = args.prepared_folder or os.path.join(output, "test_sets")
    rule = ScoringRule(args.digits)
    try:
        specs = [parse_test_set(spec) for spec in args.test_sets]
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"test set names must be unique: {names}")
        training = read_texts(args.train_text) if args.train_text else None
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"evaluate: {error}") from None
    with tempfile.TemporaryDirectory(prefix="evaluate-") as tmp:
        try:
            kind, model = open_model(args, tmp)
        except (UnsafeFolderError, ManifestError, ModelFolderError, LMError, ValueError, OSError) as error:
            raise SystemExit(f"evaluate: {error}") from None
        os.makedirs(output, exist_ok=True)
        rows, failed = [], {}
        for spec in specs:
            try:
                report = prepare_test_set(spec, prepared)
                csv_path = os.path.join(prepared, spec.name, f"{SPLIT}.csv")
                rows.append(evaluate_set(model, spec.name, csv_path, report, rule, output, training,
                                         args.batch_seconds))
            except (OSError, ValueError, LMError) as error:  # this set only; the others go on
                failed[spec.name] = str(error)
                print(f"evaluate: {spec.name}: {error}", file=sys.stderr)
    notes = [f"Model: {os.path.basename(os.path.normpath(args.model))} ({kind})", f"Scoring: {rule.describe()}",
             OVERLAP_NOTE + ("" if training is not None else " (no --train-text given: n/a)")]
    if model.lm_description:
        notes.append(model.lm_description)
    notes += [f"Not evaluated: {name}: {error}" for name, error in failed.items()]
    markdown = write_results(output, rows, notes, model=args.model, kind=kind, failed=failed)
    print(markdown)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
