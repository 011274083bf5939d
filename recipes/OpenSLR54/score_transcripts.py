#!/usr/bin/env python3
"""Scores every utterance of a SpeechBrain CSV under a trained model, to find
transcripts that do not match their audio (OpenSLR 54 is crowd-sourced:
"manually quality checked, but there might still be errors").

For each utterance (``ID``, ``wav``, ``wrd`` columns, as the data preparation
writes them), from one forward pass:

- ``loss_per_char``: CTC negative log-likelihood of the transcript (nats)
  per character of it; ``loss_per_frame``: the same per encoder frame;
- ``align_score``: the ``score`` of ``w2vbert-asr align`` (the mean over
  its words of their characters' posteriors on the forced alignment,
  :mod:`speechbrain_w2vbert.inference.alignment`), in [0, 1];
- ``cer``: character error rate (%) of the greedy transcript against it.

Rows are ranked worst first by ``--rank-by`` (default ``loss_per_char``,
the best of the four on the sample corpus' deliberately corrupted
transcripts: README, Cleaning a corpus), and the first ``--flag`` rows (a
count, or a fraction with ``--flag 0.02``) get ``flagged = 1``. Utterances
that cannot be scored (unreadable audio, a transcript the model cannot
write or too long for its audio) are listed first, flagged, with ``error``.
The output CSV is what ``exclude_list`` of the data preparation takes::

    python recipes/OpenSLR54/score_transcripts.py results/w2vbert/inference results/w2vbert/train.csv \\
        --output scores.csv --flag 0.02
    python recipes/OpenSLR54/train.py hparams/w2vbert_ctc.yaml --data_folder=... --exclude_list=scores.csv

Exit status 1 if any utterance could not be scored (the others are).

Authors: speechbrain-w2vbert contributors
"""

import argparse
import csv
import logging
import os
import sys
import tempfile
from typing import Dict, List, Sequence

import torch

from speechbrain_w2vbert.audio import AudioError
from speechbrain_w2vbert.inference.alignment import AlignmentError, align_ids, transcript_ids
from speechbrain_w2vbert.inference.folder import ModelFolderError, load_asr
from speechbrain_w2vbert.inference.manifest import ManifestError
from speechbrain_w2vbert.inference.quantization import quantize_asr_int8
from speechbrain_w2vbert.inference.safety import UnsafeFolderError
from speechbrain_w2vbert.inference.transcriber import Transcriber
from speechbrain_w2vbert.text.normalize import normalize_nepali
from speechbrain_w2vbert.text.scoring import error_counts

logger = logging.getLogger(__name__)

MEASURES = ("loss_per_char", "loss_per_frame", "align_score", "cer")
#: Larger is worse for every measure but ``align_score``.
WORSE_IS_LARGER = {"loss_per_char": True, "loss_per_frame": True, "align_score": False, "cer": True}
COLUMNS = ["rank", "ID", "flagged", *MEASURES, "duration", "hyp", "wrd", "wav", "error"]


def utterance_scores(transcriber, log_probs: torch.Tensor, ids: List[int], text: str, hyp: str) -> Dict:
    """The measures of one utterance from its log-probabilities [T, V] and
    its transcript's token ids (see the module's description); the alignment
    score is the ``score`` of ``w2vbert-asr align``: the mean of its words'."""
    blank_index = transcriber.tokenizer.blank_index
    log_probs = log_probs.float()  # CTC in fp32
    loss = torch.nn.functional.ctc_loss(
        log_probs[:, None], torch.tensor([ids]), torch.tensor([log_probs.shape[0]]), torch.tensor([len(ids)]),
        blank=blank_index, reduction="sum", zero_infinity=False).item()
    path, _ = align_ids(log_probs, ids, blank_index)
    words = transcriber.path_words(path, log_probs)
    return {"loss_per_char": loss / max(1, len(text)), "loss_per_frame": loss / log_probs.shape[0],
            "align_score": sum(w.confidence for w in words) / max(1, len(words)),
            "cer": 100.0 * error_counts([hyp], [text])["char_errors"] / max(1, len(text))}


def score_rows(transcriber, rows: Sequence[Dict]) -> List[Dict]:
    """One result per CSV row: the row's ``ID``, ``wav``, ``wrd``, ``duration``
    with the measures and ``hyp``, or with ``error``."""
    tokenizer = transcriber.tokenizer
    results, wavs, ready = [], [], []
    for row in rows:
        result = {"ID": row["ID"], "wav": row["wav"], "wrd": row["wrd"], "duration": row.get("duration", "")}
        try:
            result["text"] = normalize_nepali(row["wrd"])
            result["ids"] = transcript_ids(tokenizer, result["text"])
            wavs.append(transcriber.read(row["wav"]))
            ready.append(result)
        except (AlignmentError, AudioError) as error:
            result["error"] = str(error)
        results.append(result)
    for result, log_probs in zip(ready, transcriber.pieces_log_probs(wavs)):
        hyp = tokenizer.decode_ctc(log_probs.argmax(-1).tolist())
        result["hyp"] = hyp
        try:
            result.update(utterance_scores(transcriber, log_probs, result["ids"], result["text"], hyp))
        except AlignmentError as error:
            result["error"] = str(error)
    for result in results:
        result.pop("ids", None)
        result.pop("text", None)
    return results


def rank(results: List[Dict], rank_by: str = "loss_per_char", flag: float = 0.0) -> List[Dict]:
    """Results worst first (errors first, then by ``rank_by``) with ``rank``
    and ``flagged`` (the errors and the first ``flag`` scored ones; a
    ``flag`` below 1 is a fraction of the scored ones)."""
    failed = [r for r in results if "error" in r]
    scored = sorted((r for r in results if "error" not in r), key=lambda r: r[rank_by],
                    reverse=WORSE_IS_LARGER[rank_by])
    count = int(round(flag * len(scored))) if 0 < flag < 1 else int(flag)
    for k, result in enumerate(failed + scored, start=1):
        result["rank"] = k
        result["flagged"] = int(k <= len(failed) + count)
    return failed + scored


def write_csv(results: Sequence[Dict], path: str) -> None:
    """The ranked rows, written atomically (``.tmp`` then ``os.replace``)."""
    with open(path + ".tmp", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for result in results:
            row = dict(result)
            for measure in MEASURES:
                if measure in row:
                    row[measure] = f"{row[measure]:.4f}"
            writer.writerow(row)
    os.replace(path + ".tmp", path)


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module's description)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="EncoderASR folder (the recipe's inference/) or hub repository")
    parser.add_argument("csv", help="SpeechBrain CSV with ID, wav and wrd columns (e.g. train.csv)")
    parser.add_argument("--output", required=True, help="ranked CSV to write")
    parser.add_argument("--rank-by", choices=MEASURES, default="loss_per_char", help="measure to rank by")
    parser.add_argument("--flag", type=float, default=0.02,
                        help="rows to flag after the errors: a count, or a fraction below 1 (default: 0.02)")
    parser.add_argument("--batch-size", type=int, default=8, help="utterances per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--int8", action="store_true", help="int8 encoder (CPU; see README)")
    parser.add_argument("--savedir", help="where SpeechBrain links the model files (default: a temporary folder)")
    parser.add_argument("--revision", help="hub repository revision (pin a commit hash)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="open a model folder whose hyperparams.yaml names code the package's exports never name")
    return parser


def main(argv=None) -> int:
    """Scores ``argv``'s CSV and writes the ranking; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with open(args.csv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"ID", "wav", "wrd"} - set(rows[0] if rows else ())
    if missing:
        raise SystemExit(f"score_transcripts: {args.csv}: no rows or no {', '.join(sorted(missing))} column")
    with tempfile.TemporaryDirectory(prefix="score-") as tmp:
        try:
            asr = load_asr(args.model, args.savedir or tmp, args.device, trust_remote_code=args.trust_remote_code,
                           revision=args.revision)
        except (UnsafeFolderError, ManifestError, ModelFolderError) as error:
            raise SystemExit(f"score_transcripts: {error}") from None
        if args.int8:
            quantize_asr_int8(asr)
        transcriber = Transcriber(asr, batch_size=args.batch_size, segmenter=None, progress=False)
        results = rank(score_rows(transcriber, rows), args.rank_by, args.flag)
    write_csv(results, args.output)
    failed = [r for r in results if "error" in r]
    for result in failed:
        print(f"score_transcripts: {result['ID']} ({result['wav']}): {result['error']}", file=sys.stderr)
    logger.info("%d utterances scored, %d failed, %d flagged -> %s", len(results) - len(failed), len(failed),
                sum(r["flagged"] for r in results), args.output)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
