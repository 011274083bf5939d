#!/usr/bin/env python3
"""Zero-shot baseline: ``facebook/mms-1b-all`` with its Nepali adapter,
scored like the fine-tuned models: ``evaluate.py --kind mms``.

Nothing is trained: transformers' ``Wav2Vec2ForCTC`` loads the MMS
checkpoint with the adapter and output layer of ``--target_lang`` (``npi``,
Nepali), its processor switches the tokenizer to that language, and each
test set is decoded greedily (frames past each utterance's own length left
out) and scored by the recipe's rule (``ScoringRule``). ``--test_csv`` is the
test CSV written by the recipe's data preparation (the ``openslr54_test``
row); any other ``evaluate.py`` option is passed on, e.g. more sets::

    python recipes/OpenSLR54/eval_mms_zero_shot.py \\
        --test_csv=results/w2vbert_ctc/1986/test.csv \\
        --output_folder=results/mms_1b_all_zero_shot --device=cuda \\
        --test_set "fleurs: fleurs:/data/fleurs/data/ne_np"

``--model`` may be a hub id or a local folder (read offline). The output
folder gets ``test_results.md`` / ``test_results.json`` and
``wer_<set>.txt`` per set (before 0.2.0 this script wrote ``wer_test.txt``
and ``summary.json``; the set is now named ``openslr54_test``).

Authors: speechbrain-w2vbert contributors
"""

import argparse
import os
import sys

import torch

import evaluate  # the recipe folder is on sys.path


def main(argv=None) -> int:
    """Command line (see the module docstring); returns evaluate.py's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Other options are evaluate.py's (e.g. --test_set, --train-text).")
    parser.add_argument("--test_csv", help="test.csv written by the recipe's data preparation")
    parser.add_argument("--output_folder", required=True)
    parser.add_argument("--model", default="facebook/mms-1b-all", help="hub id or local folder")
    parser.add_argument("--target_lang", default="npi", help="adapter language (ISO 639-3)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max_batch_seconds", type=float, default=200.0)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    sets = ["--test_set", f"openslr54_test: tsv:{os.path.abspath(args.test_csv)}"] if args.test_csv else []
    return evaluate.main([args.model, "--kind", "mms", "--target_lang", args.target_lang, *sets,
                          "--output_folder", args.output_folder, "--device", args.device,
                          "--batch-seconds", str(args.max_batch_seconds), *rest])


if __name__ == "__main__":
    sys.exit(main())
