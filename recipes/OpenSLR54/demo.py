#!/usr/bin/env python3
"""The embedded demo: the whole OpenSLR 54 recipe on the bundled sample.

Runs ``train.py`` with ``hparams/w2vbert_ctc_tiny.yaml`` (a ~2M-parameter
w2v-BERT 2.0, randomly initialised, on the CPU) over the synthetic sample
corpus in ``sample_data/``: data preparation, training with dev WER/CER
every epoch, test decoding (greedy, then beam search with the word n-gram LM
built from the training transcripts), export of the inference folder; then it
loads that folder with SpeechBrain's ``EncoderASR`` and transcribes one test
file. One extra test set goes through the recipe's ``extra_test_sets``: the
sample's test speaker as OpenSLR 43 ships its recordings (48 kHz WAVs and a
``line_index.tsv`` of raw transcripts, written by :func:`write_sample_openslr43`
from ``sample_data/``), prepared, decoded and scored beside the test split.
It prints the final dev WER/CER, the results table of the test split and the
extra set (greedy and LM WER/CER, overlap with the training text, what the
preparation dropped) and where the model, logs and plot are. A few minutes on two cores (``make demo`` also creates the virtual
environment first)::

    python recipes/OpenSLR54/demo.py [--output_folder results/demo] [--fresh]

Running it again on the same output folder resumes (and here, having
finished, just re-evaluates); ``--fresh`` starts over.

Authors: speechbrain-w2vbert contributors
"""

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HPARAMS = os.path.join(ROOT, "hparams", "w2vbert_ctc_tiny.yaml")
SAMPLE_DATA = os.path.join(HERE, "sample_data")
#: The demo passes if the test CER is at most this (%).
TARGET_TEST_CER = 35.0


def last_stats(train_log):
    """Final dev statistics and the last test statistics of each decoding
    (``{"greedy": row, "LM": row}``) from a ``train_log.txt``."""
    sys.path.insert(0, ROOT)
    from speechbrain_w2vbert.training.plot import read_train_log

    rows = read_train_log(train_log)
    dev = [r for r in rows if "train loss" in r][-1]
    tests = {r.get("decoding", "greedy"): r for r in rows if "test CER" in r}
    return dev, tests


def write_sample_openslr43(folder, split_ratio=(90, 5, 5)):
    """The bundled sample's test speakers (as the recipe's default speaker
    split assigns them) in OpenSLR 43's layout: ``folder/ne_np_female/``
    with ``line_index.tsv`` (``<id>\\t<raw transcript>``) and ``wavs/<id>.wav``
    resampled to 48 kHz, 16-bit. An utterance whose FLAC does not decode
    keeps its line without a WAV (the preparation counts it). Returns the
    number of lines.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> write_sample_openslr43(folder)
    20
    >>> import soundfile
    >>> wav = os.path.join(folder, "ne_np_female", "wavs", "01681e02b9.wav")
    >>> soundfile.info(wav).samplerate
    48000
    """
    import soundfile as sf

    sys.path.insert(0, HERE)
    sys.path.insert(0, ROOT)
    from openslr54_prepare import speaker_split

    from speechbrain_w2vbert.audio import AudioError, read_audio

    zips = sorted(os.path.join(SAMPLE_DATA, name) for name in os.listdir(SAMPLE_DATA) if name.endswith(".zip"))
    members = {}
    for path in zips:
        with zipfile.ZipFile(path) as archive:
            index = archive.read("asr_nepali/utt_spk_text.tsv").decode("utf-8")
            members.update({os.path.basename(n)[:-5]: (path, n) for n in archive.namelist() if n.endswith(".flac")})
    lines = [line.split("\t") for line in index.splitlines() if line.count("\t") == 2]
    split = speaker_split([speaker for _, speaker, _ in lines], split_ratio)
    chosen = [(uid, text) for uid, speaker, text in lines if split[speaker] == "test"]
    root = os.path.join(folder, "ne_np_female")
    os.makedirs(os.path.join(root, "wavs"), exist_ok=True)
    for uid, _ in chosen:
        if uid not in members:
            continue
        path, name = members[uid]
        flac = os.path.join(root, "wavs", uid + ".flac.tmp")
        with zipfile.ZipFile(path) as archive, open(flac, "wb") as f:
            f.write(archive.read(name))
        try:
            wav = read_audio(flac, 48000)
            sf.write(os.path.join(root, "wavs", uid + ".wav"), wav.numpy(), 48000, subtype="PCM_16", format="WAV")
        except AudioError:
            pass
        finally:
            os.remove(flac)
    with open(os.path.join(root, "line_index.tsv"), "w", encoding="utf-8") as f:
        f.writelines(f"{uid}\t{text}\n" for uid, text in chosen)
    return len(chosen)


def main(argv=None):
    """Runs the demo; returns the process exit status (1 if it did not learn)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Other --key=value arguments go to train.py, e.g. --number_of_epochs=5.",
    )
    parser.add_argument("--output_folder", default=os.path.join(ROOT, "results", "demo"))
    parser.add_argument("--fresh", action="store_true", help="delete the output folder first")
    args, extra = parser.parse_known_args(argv)
    output = os.path.abspath(args.output_folder)
    if args.fresh and os.path.isdir(output):
        shutil.rmtree(output)

    extra_set = os.path.join(output, "sample_openslr43")
    if not os.path.isfile(os.path.join(extra_set, "ne_np_female", "line_index.tsv")):
        write_sample_openslr43(extra_set)
    command = [
        sys.executable, os.path.join(HERE, "train.py"), HPARAMS,
        f"--data_folder={SAMPLE_DATA}",
        f"--extract_folder={os.path.join(output, 'sample_corpus')}",
        f"--output_folder={output}",
        f"--extra_test_sets=[sample_openslr43: openslr43:{extra_set}]",
        *extra,
    ]
    print("Running:", " ".join(shlex.quote(c) for c in command), flush=True)
    start = time.time()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    minutes = (time.time() - start) / 60

    sys.path.insert(0, ROOT)
    from speechbrain_w2vbert.inference.folder import load_asr

    inference = os.path.join(output, "inference")
    asr = load_asr(inference, savedir=os.path.join(output, "inference_cache"))
    with open(os.path.join(output, "test.csv"), encoding="utf-8") as f:
        sample = next(csv.DictReader(f))
    hypothesis = asr.transcribe_file(sample["wav"])

    dev, tests = last_stats(os.path.join(output, "train_log.txt"))
    test = tests["greedy"]
    print()
    print("=" * 78)
    print(f"Demo finished in {minutes:.1f} min (training + evaluation + export).")
    print(f"  dev  (last epoch {int(dev['epoch'])}): WER {dev['valid WER']:.1f}%  CER {dev['valid CER']:.1f}%")
    print(f"  test (best dev checkpoint, unseen speaker), greedy: WER {test['test WER']:.1f}%  "
          f"CER {test['test CER']:.1f}%")
    if "LM" in tests:
        with open(os.path.join(output, "lm", "lm_report.json"), encoding="utf-8") as f:
            order = json.load(f)["order"]
        print(f"  test, beam search + word {order}-gram LM:             WER {tests['LM']['test WER']:.1f}%  "
              f"CER {tests['LM']['test CER']:.1f}%")
    print("  Test sets (best dev checkpoint; the extra set is the test speaker at 48 kHz in OpenSLR 43's layout):")
    with open(os.path.join(output, "test_results.md"), encoding="utf-8") as f:
        table = f.read().split("\n\n")[0]
    print("\n".join("    " + line for line in table.splitlines()))
    print(f"  EncoderASR (with the LM) on {os.path.relpath(sample['wav'], output)}:")
    print(f"    reference : {sample['wrd']}")
    print(f"    hypothesis: {hypothesis}")
    print(f"  model (EncoderASR.from_hparams source): {inference}")
    print(f"  Hugging Face Wav2Vec2BertForCTC folder: {os.path.join(output, 'hf_model')}")
    print(f"  training log: {os.path.join(output, 'train_log.txt')}")
    print(f"  curves:       {os.path.join(output, 'training_curves.png')}")
    print(f"  test alignments: {os.path.join(output, 'wer_test.txt')} (greedy), "
          f"{os.path.join(output, 'wer_test_lm.txt')} (LM); wer_sample_openslr43*.txt for the extra set")
    print(f"  results table: {os.path.join(output, 'test_results.md')} (and .json; in the model card too)")
    print("=" * 78)
    if test["test CER"] > TARGET_TEST_CER:
        print(f"The model did not learn enough: test CER above {TARGET_TEST_CER:.0f}%.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
