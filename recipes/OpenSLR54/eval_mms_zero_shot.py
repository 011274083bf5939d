#!/usr/bin/env python3
"""Zero-shot baseline: ``facebook/mms-1b-all`` with its Nepali adapter on the
OpenSLR 54 test set, scored like the fine-tuned models.

Nothing is trained: transformers' ``Wav2Vec2ForCTC`` loads the MMS
checkpoint with the adapter and output layer of ``--target_lang`` (``npi``,
Nepali), its processor switches the tokenizer to that language, and the
test CSV written by the recipe's data preparation is decoded greedily (frames
past each utterance's own length are left out). Hypotheses and references go
through the same ``normalize_nepali`` and ``ErrorRateStats`` (words; and
characters with ``split_tokens``) as ``train.py``, and ``wer_test.txt`` has
the same layout::

    python recipes/OpenSLR54/eval_mms_zero_shot.py \\
        --test_csv=results/w2vbert_ctc/1986/test.csv \\
        --output_folder=results/mms_1b_all_zero_shot --device=cuda

``--model`` may be a hub id or a local folder (read offline). The summary is
printed and written to ``summary.json``.

Authors: speechbrain-w2vbert contributors
"""

import argparse
import csv
import json
import os
import sys

import torch
from speechbrain.utils.metric_stats import ErrorRateStats

from speechbrain_w2vbert.models.encoder import hub_load_kwargs
from speechbrain_w2vbert.text.normalize import normalize_nepali
from speechbrain_w2vbert.training.data import AudioReader


def load_model(model: str, target_lang: str, device: str):
    """``Wav2Vec2ForCTC`` with ``target_lang``'s adapter and its processor.

    Arguments
    ---------
    model : str
        Hub id or local folder (then read with ``local_files_only``).
    target_lang : str
        ISO 639-3 code of the adapter and vocabulary (``npi``: Nepali).
    device : str
        Torch device.

    Returns
    -------
    model : transformers.Wav2Vec2ForCTC
        In eval mode, on ``device``.
    processor : transformers.Wav2Vec2Processor
        Its tokenizer set to ``target_lang``.
    """
    from transformers import AutoProcessor, Wav2Vec2ForCTC

    kwargs = hub_load_kwargs(model)
    processor = AutoProcessor.from_pretrained(model, **kwargs)
    processor.tokenizer.set_target_lang(target_lang)
    ctc = Wav2Vec2ForCTC.from_pretrained(model, target_lang=target_lang, ignore_mismatched_sizes=True, **kwargs)
    return ctc.eval().to(device), processor


def batches(rows, max_seconds: float):
    """Rows sorted longest first, grouped into batches of at most
    ``max_seconds`` of audio (one row at least)."""
    batch, total = [], 0.0
    for row in sorted(rows, key=lambda r: -float(r["duration"])):
        if batch and total + float(row["duration"]) > max_seconds:
            yield batch
            batch, total = [], 0.0
        batch.append(row)
        total += float(row["duration"])
    if batch:
        yield batch


@torch.no_grad()
def evaluate(model, processor, rows, device="cpu", max_seconds=200.0, sample_rate=16000):
    """Greedy CTC transcripts of the rows, scored after ``normalize_nepali``.

    Arguments
    ---------
    model : transformers.Wav2Vec2ForCTC
    processor : transformers.Wav2Vec2Processor
    rows : list of dict
        Test CSV rows (``ID``, ``duration``, ``wav``, ``wrd``).
    device : str
    max_seconds : float
        Seconds of audio per batch.
    sample_rate : int

    Returns
    -------
    wer, cer : ErrorRateStats
        Word and character error statistics (``summarize()``, ``write_stats``).
    """
    reader = AudioReader(sample_rate)
    wer, cer = ErrorRateStats(), ErrorRateStats(split_tokens=True)
    for batch in batches(rows, max_seconds):
        audio = [reader(row["wav"], float(row["duration"]))[0].numpy() for row in batch]
        inputs = processor(audio=audio, sampling_rate=sample_rate, padding=True, return_tensors="pt")
        mask = inputs.get("attention_mask")
        samples = mask.sum(-1) if mask is not None else torch.tensor([len(a) for a in audio])
        logits = model(**{k: v.to(device) for k, v in inputs.items()}).logits
        frames = model._get_feat_extract_output_lengths(samples).tolist()
        ids = logits.argmax(-1).cpu()
        hyps = [normalize_nepali(processor.decode(ids[i, :n])) for i, n in enumerate(frames)]
        refs = [normalize_nepali(row["wrd"]) for row in batch]
        hyp_words, ref_words = [h.split() for h in hyps], [r.split() for r in refs]
        keys = [row["ID"] for row in batch]
        wer.append(keys, hyp_words, ref_words)
        cer.append(keys, hyp_words, ref_words)
    return wer, cer


def main(argv=None):
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test_csv", required=True, help="test.csv written by the recipe's data preparation")
    parser.add_argument("--output_folder", required=True)
    parser.add_argument("--model", default="facebook/mms-1b-all", help="hub id or local folder")
    parser.add_argument("--target_lang", default="npi", help="adapter language (ISO 639-3)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max_batch_seconds", type=float, default=200.0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    with open(args.test_csv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    model, processor = load_model(args.model, args.target_lang, args.device)
    wer, cer = evaluate(model, processor, rows, args.device, args.max_batch_seconds)

    os.makedirs(args.output_folder, exist_ok=True)
    with open(os.path.join(args.output_folder, "wer_test.txt"), "w", encoding="utf-8") as w:
        w.write("CER\n")
        cer.write_stats(w)
        w.write("\nWER\n")
        wer.write_stats(w)
    summary = {
        "model": args.model, "target_lang": args.target_lang, "test_csv": args.test_csv, "utterances": len(rows),
        "WER": wer.summarize("error_rate"), "CER": cer.summarize("error_rate"),
    }
    with open(os.path.join(args.output_folder, "summary.json"), "w", encoding="utf-8") as w:
        json.dump(summary, w, indent=2)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
