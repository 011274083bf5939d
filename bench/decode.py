"""Decoding benchmark: greedy, beam search without LM, beam search + word
n-gram LM (SpeechBrain's ``CTCBeamSearcher``, what the recipe, ``EncoderASR``
and the CLI run) and pyctcdecode + the same LM (what the Hugging Face export's
``Wav2Vec2ProcessorWithLM`` runs), side by side in one run.

The model's log-probabilities of the sample corpus' test speaker are computed
once; the LM is the recipe's (``NgramLM.build`` on the sample corpus'
train.csv). For each beam size, every utterance is decoded by each method in
turn (so machine load hits them alike), and the table gives per method: ms
per utterance (median and worst), the real-time factor of decoding alone
(decode seconds per second of audio) and WER/CER against the references.

Usage::

    python bench/decode.py [--model tests/data/tiny_ne_model] [--beams 10 50 100] [--order 3]
        [--lm-weight 0.5] [--word-bonus 1.0] [--utterances 0]
"""

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time

import torch
from common import add_json_option, emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "recipes", "OpenSLR54"))

from speechbrain_w2vbert.lm.beam import LMBeamDecoder  # noqa: E402
from speechbrain_w2vbert.lm.ngram import NgramLM  # noqa: E402
from speechbrain_w2vbert.text.scoring import error_counts  # noqa: E402


def log_probs_of_test_speaker(model, workdir, limit):
    """(EncoderASR, the prepared sample corpus folder, [(log-probs [T, V], reference, seconds)])."""
    from openslr54_prepare import SAMPLE_DATA_DIR, prepare_openslr54
    from speechbrain.inference.ASR import EncoderASR

    prep = os.path.join(workdir, "prep")
    prepare_openslr54(SAMPLE_DATA_DIR, prep, extract_folder=os.path.join(workdir, "corpus"))
    asr = EncoderASR.from_hparams(source=model, savedir=os.path.join(workdir, "asr"))
    with open(os.path.join(prep, "test.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[: limit or None]
    items = []
    for row in rows:
        wav = asr.load_audio(row["wav"])
        with torch.no_grad():
            items.append((asr.encode_batch(wav[None], torch.tensor([1.0]))[0], row["wrd"], float(row["duration"])))
    return asr, prep, items


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "tests", "data", "tiny_ne_model"),
                        help="EncoderASR folder (default: the committed test model)")
    parser.add_argument("--beams", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--order", type=int, default=3, help="n-gram order of the LM (default 3)")
    parser.add_argument("--lm-weight", type=float, default=0.5)
    parser.add_argument("--word-bonus", type=float, default=1.0)
    parser.add_argument("--utterances", type=int, default=0, help="test utterances (0: all)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from pyctcdecode import build_ctcdecoder

    with tempfile.TemporaryDirectory() as workdir:
        asr, prep, items = log_probs_of_test_speaker(args.model, workdir, args.utterances)
        tokenizer = asr.tokenizer
        lm = NgramLM.build(os.path.join(prep, "train.csv"), os.path.join(workdir, "lm"), tokenizer,
                           order=args.order, estimator="auto")
        report = lm.report
        audio = sum(seconds for _, _, seconds in items)
        refs = [ref for _, ref, _ in items]
        labels = ["" if t == "[PAD]" else " " if t == "|" else t for t in tokenizer.tokens]
        pyctc = build_ctcdecoder(labels, kenlm_model_path=lm.path, unigrams=lm.words(),
                                 alpha=args.lm_weight, beta=args.word_bonus)
        rows = []
        for beam in args.beams:
            no_lm = LMBeamDecoder(tokenizer.tokens, beam_size=beam)
            with_lm = LMBeamDecoder(tokenizer.tokens, lm_path=lm.path, beam_size=beam,
                                    lm_weight=args.lm_weight, word_bonus=args.word_bonus)
            no_lm.searcher, with_lm.searcher  # built (and the LM loaded) before timing
            methods = {
                "greedy": lambda lp: tokenizer.decode_ctc(lp.argmax(-1)),
                "beam, no LM (SpeechBrain)": lambda lp: no_lm.decode([lp])[0],
                "beam + LM (SpeechBrain)": lambda lp: with_lm.decode([lp])[0],
                "pyctcdecode + LM": lambda lp: pyctc.decode(lp.numpy(), beam_width=beam),
            }
            times = {name: [] for name in methods}
            hyps = {name: [] for name in methods}
            for lp, _, _ in items:
                for name, decode in methods.items():
                    start = time.perf_counter()
                    hyps[name].append(decode(lp))
                    times[name].append(time.perf_counter() - start)
            for name in methods:
                counts = error_counts(hyps[name], refs)
                rows.append({
                    "beam": beam if name != "greedy" else "-", "method": name,
                    "ms_median": 1000 * statistics.median(times[name]), "ms_worst": 1000 * max(times[name]),
                    "rtf": sum(times[name]) / audio,
                    "WER": 100.0 * counts["word_errors"] / counts["words"],
                    "CER": 100.0 * counts["char_errors"] / counts["chars"],
                    "same_as_speechbrain_lm": sum(a == b for a, b in zip(hyps[name], hyps["beam + LM (SpeechBrain)"])),
                })
        print(f"{len(items)} utterances, {audio:.1f} s of audio, {report['order']}-gram LM ({report['estimator']}), "
              f"weight {args.lm_weight}, word bonus {args.word_bonus}, 1 thread")
        print(f"{'beam':>5} {'method':<27} {'ms/utt median':>13} {'worst':>8} {'RTF':>8} {'WER %':>6} {'CER %':>6} "
              f"{'same as SB+LM':>13}")
        for r in rows:
            print(f"{r['beam']!s:>5} {r['method']:<27} {r['ms_median']:>13.1f} {r['ms_worst']:>8.1f} {r['rtf']:>8.4f} "
                  f"{r['WER']:>6.1f} {r['CER']:>6.1f} {r['same_as_speechbrain_lm']:>8}/{len(items)}")
        emit({"bench": "decode", "utterances": len(items), "audio_seconds": audio, "order": report["order"],
              "estimator": report["estimator"], "lm_weight": args.lm_weight, "word_bonus": args.word_bonus,
              "model": os.path.relpath(os.path.abspath(args.model), ROOT), "rows": rows}, args.json, 1)
    return rows


if __name__ == "__main__":
    main()
