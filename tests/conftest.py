"""Fixtures shared by the test modules: the committed test audio, the
reference extractor, the bundled sample corpus prepared once per run, its
recipe-sized slices, the tiny recipe's CPU training settings and the trained
test model.

Markers (registered in pyproject.toml): ``recipe`` for the tests that train
through the recipe, ``slow`` for the other long ones, ``extended`` for the
end-to-end variants ``make test`` leaves to ``make test-all``; ``make
test-fast`` runs what is not marked.

Under pytest-xdist each worker gets its share of the cores
(:data:`tests.helpers.THREADS`): torch's threads of two processes on the
same cores would spin against each other.
"""

import csv
import os
from typing import NamedTuple

import pytest
import soundfile as sf
import torch

from tests.helpers import DATA_DIR, MODEL, SLICE_EVAL, SLICE_TRAIN, THREADS, TINY_HPARAMS

os.environ["OMP_NUM_THREADS"] = str(THREADS)  # the subprocesses the tests start, unless they set their own
torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def nepali_speech():
    """Two espeak-ng Nepali utterances (16 kHz mono float32 arrays), see tests/data/make_test_audio.sh."""
    wavs = []
    for name in ("ne_speech_a.flac", "ne_speech_b.flac"):
        wav, rate = sf.read(os.path.join(DATA_DIR, name), dtype="float32")
        assert rate == 16000 and wav.ndim == 1
        wavs.append(wav)
    return wavs


@pytest.fixture(scope="session")
def joined_speech():
    """Six espeak-ng Nepali utterances joined end to end with their exact
    digital-silence edges, 17.7 s (tests/data/ne_joined_6.flac)."""
    wav, rate = sf.read(os.path.join(DATA_DIR, "ne_joined_6.flac"), dtype="float32")
    assert rate == 16000 and wav.ndim == 1
    return wav


@pytest.fixture(scope="session")
def reference_extractor():
    """transformers' numpy SeamlessM4TFeatureExtractor with its default settings."""
    from transformers import SeamlessM4TFeatureExtractor

    return SeamlessM4TFeatureExtractor()


class SampleCorpus(NamedTuple):
    """The bundled sample corpus, prepared with the default options."""

    save_folder: str  #: train.csv, dev.csv, test.csv, prep_report.json
    report: dict  #: what prepare_openslr54 returned
    extract_folder: str  #: the extracted asr_nepali/ tree

    def rows(self, split):
        """The rows of one split's CSV."""
        with open(os.path.join(self.save_folder, f"{split}.csv"), encoding="utf-8") as f:
            return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory):
    """The sample corpus prepared once for the whole run (read-only use)."""
    from openslr54_prepare import SAMPLE_DATA_DIR, prepare_openslr54

    tmp = tmp_path_factory.mktemp("sample_corpus")
    report = prepare_openslr54(SAMPLE_DATA_DIR, str(tmp / "prep"), extract_folder=str(tmp / "corpus"))
    return SampleCorpus(str(tmp / "prep"), report, str(tmp / "corpus"))


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="session")
def recipe_data(sample_corpus, tmp_path_factory):
    """Small train/dev/test CSVs of the prepared sample corpus (its shortest
    utterances), for short recipe runs. The train slice also holds an
    unreadable file and a CTC-infeasible utterance."""
    tmp = tmp_path_factory.mktemp("recipe_data")
    csvs = {}
    for split, count in (("train", SLICE_TRAIN), ("dev", SLICE_EVAL), ("test", SLICE_EVAL)):
        rows = sorted(sample_corpus.rows(split), key=lambda r: float(r["duration"]))[:count]
        if split == "train":
            broken = str(tmp / "broken.flac")
            with open(broken, "wb") as f:
                f.write(b"not audio at all")
            rows.append(dict(rows[0], ID="broken_file", wav=broken))
            rows.append(dict(rows[1], ID="too_many_labels", wrd=" ".join([rows[1]["wrd"]] * 12)))
        csvs[split] = str(tmp / f"{split}.csv")
        _write_csv(csvs[split], rows)
    return csvs


@pytest.fixture(scope="session")
def tiny_training():
    """The CPU training settings of hparams/w2vbert_ctc_tiny.yaml (its plain
    values and its resolved data-loader options), as overrides for any other
    hparams file: the tiny file is their one source."""
    import yaml
    from hyperpyyaml import load_hyperpyyaml

    with open(TINY_HPARAMS, encoding="utf-8") as f:
        text = f.read()
    plain = yaml.load(text, Loader=yaml.BaseLoader)  # tags ignored: keys and plain values as text
    with open(TINY_HPARAMS, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, {"data_folder": "unused"})
    keys = ["precision", "eval_precision", "tf32", "fused_adamw", "num_workers", "freeze_encoder_steps",
            "lr_encoder", "lr_head", "warmup_steps", "max_batch_length", "max_batch_length_eval", "num_buckets",
            "max_batch_ex", "number_of_epochs", "tokenizer_min_count", "layerdrop", "ckpt_interval_minutes",
            "max_grad_norm"]
    assert all(isinstance(plain[key], str) for key in keys)  # plain values, no tags
    overrides = {key: hparams[key] for key in keys}
    overrides["dataloader_opts"] = dict(hparams["dataloader_opts"])
    return overrides


@pytest.fixture(scope="session")
def asr(tmp_path_factory):
    """The test model loaded with SpeechBrain's EncoderASR."""
    from speechbrain_w2vbert.inference.folder import load_asr

    return load_asr(MODEL, str(tmp_path_factory.mktemp("asr")))


@pytest.fixture(scope="session")
def sample_test_rows(sample_corpus):
    """The sample corpus' test speaker (never seen by the test model): rows with ``wav`` and ``wrd``."""
    return sample_corpus.rows("test")


@pytest.fixture(scope="session")
def test_files(sample_test_rows):
    """The first eight test utterances (of different lengths)."""
    return sample_test_rows[:8]


class LongRecording(NamedTuple):
    """The sample test speaker's utterances twice, 1 s pauses of noise at
    1e-3 between them, in one file."""

    path: str  #: the FLAC file
    wav: "object"  #: its waveform, a 1-D float tensor at 16 kHz
    parts: list  #: (start s, end s, reference text) of each utterance, in order
    alone: list  #: each utterance's waveform alone, in order


@pytest.fixture(scope="session")
def long_recording(sample_test_rows, tmp_path_factory):
    """A 129 s recording of known utterance boundaries (see LongRecording)."""
    import torch

    from speechbrain_w2vbert.audio import read_audio

    generator = torch.Generator().manual_seed(0)
    pause = torch.randn(16000, generator=generator) * 1e-3
    pieces, parts, alone, start = [], [], [], 0
    for _ in range(2):
        for row in sample_test_rows:
            wav = read_audio(row["wav"])
            pieces += [wav, pause]
            alone.append(wav)
            parts.append((start / 16000, (start + wav.shape[0]) / 16000, row["wrd"]))
            start += wav.shape[0] + 16000
    wav = torch.cat(pieces)
    path = str(tmp_path_factory.mktemp("long") / "long.flac")
    sf.write(path, wav.numpy(), 16000)
    return LongRecording(path, wav, parts, alone)


class Service(NamedTuple):
    """A ``w2vbert-asr serve`` process serving the test model (see the ``service`` fixture)."""

    url: str  #: http://127.0.0.1:PORT
    api_key: str
    process: "object"  #: its subprocess.Popen
    tmpdir: str  #: its TMPDIR: the only place it may write
    log: str  #: its stderr
    limits: dict  #: max_upload_mb, max_audio_seconds


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    """``w2vbert-asr serve tests/data/tiny_ne_model`` in a process of its own,
    as a user starts it (any free port, an API key, small limits: 2 MB
    uploads, 60 s recordings), with a TMPDIR of its own; stopped at the end."""
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.helpers import ROOT

    tmpdir = str(tmp_path_factory.mktemp("service_tmp"))
    limits = {"max_upload_mb": 2, "max_audio_seconds": 60}
    key = "test-key-123"
    command = [sys.executable, "-m", "speechbrain_w2vbert.cli", "serve", MODEL, "--port", "0", "--log-level",
               "warning", "--max-upload-mb", str(limits["max_upload_mb"]), "--max-audio-seconds",
               str(limits["max_audio_seconds"]), "--max-wait-ms", "20"]
    env = dict(os.environ, TMPDIR=tmpdir, PYTHONPATH=ROOT, W2VBERT_ASR_API_KEY=key)
    log = str(tmp_path_factory.mktemp("service_log") / "stderr.txt")
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, cwd=tmpdir, env=env, stderr=stderr, stdin=subprocess.DEVNULL)
    url, deadline = None, time.monotonic() + 120
    while url is None:
        with open(log) as f:
            lines = [line for line in f if " on http://" in line]
        if lines:
            url = lines[0].split(" on ", 1)[1].split()[0]
            break
        assert time.monotonic() < deadline and process.poll() is None, open(log).read()[-3000:]
        time.sleep(0.1)
    while True:
        try:
            with urllib.request.urlopen(url + "/ready", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, open(log).read()[-3000:]
        time.sleep(0.2)
    yield Service(url, key, process, tmpdir, log, limits)
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
