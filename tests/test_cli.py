"""The ``w2vbert-asr`` command: formats, resampling and down-mixing, batching,
chunked long files with word timestamps, and per-file errors.

Uses the trained test model ``tests/data/tiny_ne_model`` and the sample
corpus' test speaker (fixtures of tests/test_interop.py).
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from tests.test_interop import MODEL, ROOT, asr, sample_test_set, test_rows  # noqa: F401 (fixtures)


def levenshtein(a, b):
    """Edit distance between two sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def cli(*args, check=True):
    """Runs ``w2vbert-asr`` in-process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from speechbrain_w2vbert.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    if check:
        assert status == 0, err.getvalue()[-3000:]
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def savedir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cli_model"))


def test_console_script_is_declared_and_runs():
    assert '"w2vbert-asr=speechbrain_w2vbert.cli:main"' in open(os.path.join(ROOT, "setup.py")).read()
    proc = subprocess.run([sys.executable, "-m", "speechbrain_w2vbert.cli", "transcribe", "--help"],
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--chunk-length" in proc.stdout and "--timestamps" in proc.stdout


def test_formats_any_rate_and_stereo(asr, test_rows, tmp_path, savedir):  # noqa: F811
    first, second = test_rows[0]["wav"], test_rows[1]["wav"]
    wav, rate = sf.read(first, dtype="float32")
    stereo = str(tmp_path / "stereo.wav")  # the same signal on both channels: the same text
    sf.write(stereo, np.stack([wav, wav], axis=1), rate)
    resampled = str(tmp_path / "rate44k.ogg")  # lossy Vorbis at 44.1 kHz
    sf.write(resampled, torchaudio.functional.resample(torch.from_numpy(wav), 16000, 44100).numpy(), 44100)
    files = [first, second, stereo, resampled]
    expected = [asr.transcribe_file(first), asr.transcribe_file(second), asr.transcribe_file(first)]

    _, text, _ = cli("transcribe", MODEL, *files, "--savedir", savedir, "--batch-size", 3)
    lines = text.splitlines()
    assert lines[:3] == expected and len(lines) == 4
    assert levenshtein(lines[3], expected[0]) <= len(expected[0]) // 3  # a lossy copy: close, not equal

    out = tmp_path / "out.tsv"
    cli("transcribe", MODEL, first, second, "--savedir", savedir, "--format", "tsv", "--output", out)
    rows = out.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "file\tduration\ttext"
    assert rows[1].split("\t")[:2] == [first, str(round(len(wav) / 16000, 3))]
    assert [r.split("\t")[2] for r in rows[1:]] == expected[:2]


def test_bad_files_are_reported_and_the_others_transcribed(asr, test_rows, tmp_path, savedir):  # noqa: F811
    good = test_rows[0]["wav"]
    unreadable = tmp_path / "unreadable.wav"
    unreadable.write_bytes(b"RIFF....not really a wave file")
    empty = str(tmp_path / "empty.wav")
    sf.write(empty, np.zeros(0, dtype="float32"), 16000)
    short = str(tmp_path / "short.flac")
    sf.write(short, np.zeros(200, dtype="float32"), 16000)
    missing = str(tmp_path / "missing.wav")
    status, out, err = cli("transcribe", MODEL, unreadable, good, empty, short, missing, "--savedir", savedir,
                           "--format", "json", check=False)
    assert status == 1
    results = json.loads(out)
    assert [r["file"] for r in results] == [str(unreadable), good, empty, short, missing]
    assert results[1]["text"] == asr.transcribe_file(good) and "error" not in results[1]
    assert "unreadable" in results[0]["error"] and "empty" in results[2]["error"]
    assert "too short" in results[3]["error"] and "unreadable" in results[4]["error"]
    for path in (unreadable, empty, short, missing):
        assert re.search(rf"^w2vbert-asr: {re.escape(str(path))}: ", err, flags=re.M), err
    status, _, _ = cli("transcribe", MODEL, good, "--savedir", savedir)
    assert status == 0
    with pytest.raises(SystemExit, match="chunk-length"):  # chunks could not overlap
        cli("transcribe", MODEL, good, "--savedir", savedir, "--chunk-length", 4, "--stride-length", 2)


def test_chunk_frames_tile_the_file(asr):  # noqa: F811
    """Chunk starts on the frame grid: the kept frames of all chunks are as
    many as the frames of the whole file."""
    from speechbrain_w2vbert.transcribe import Transcriber

    wav = torch.randn(16000 * 23 + 123) * 0.1
    whole = Transcriber(asr, chunk_length=60).frame_log_probs(wav)
    for chunk, stride in ((8, 2), (5, 1.5)):
        chunked = Transcriber(asr, chunk_length=chunk, stride_length=stride, batch_size=2).frame_log_probs(wav)
        assert chunked.shape == whole.shape


def test_long_file_chunked_with_word_timestamps(asr, sample_test_set, tmp_path, savedir):  # noqa: F811
    """A 2-minute file (the test speaker's utterances twice, 1 s pauses):
    chunked, its text is as good as each half's transcribed unchunked, with
    no word duplicated or dropped at the borders; word times are ordered and
    the SRT has one cue per word."""
    from speechbrain_w2vbert.transcribe import Transcriber

    rows = sample_test_set[0]
    transcriber = Transcriber(asr)
    generator = torch.Generator().manual_seed(0)
    pause = torch.randn(16000, generator=generator) * 1e-3
    half = torch.cat([torch.cat([transcriber.read(r["wav"]), pause]) for r in rows])
    reference = " ".join(r["wrd"] for r in rows)
    path = str(tmp_path / "long.flac")
    sf.write(path, torch.cat([half, half]).numpy(), 16000)
    assert sf.info(path).duration > 120

    out = tmp_path / "long.json"
    cli("transcribe", MODEL, path, "--savedir", savedir, "--format", "json", "--timestamps", "word",
        "--chunk-length", 10, "--stride-length", 2, "--batch-size", 4, "--output", out, "--no-progress")
    (result,) = json.loads(out.read_text(encoding="utf-8"))
    unchunked_half = Transcriber(asr, chunk_length=200).transcribe_waveforms([half])[0]["text"]
    both_refs, both_unchunked = reference + " " + reference, unchunked_half + " " + unchunked_half
    chunked_errors = levenshtein(result["text"], both_refs)
    assert chunked_errors <= levenshtein(both_unchunked, both_refs) + 0.02 * len(both_refs)
    assert abs(len(result["text"].split()) - len(both_unchunked.split())) <= 0.05 * len(both_refs.split())

    words = result["words"]
    assert " ".join(w["word"] for w in words) == " ".join(result["text"].split())
    assert all(0 <= w["start"] < w["end"] <= result["duration"] for w in words)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    srt = tmp_path / "long.srt"
    cli("transcribe", MODEL, path, "--savedir", savedir, "--format", "srt", "--chunk-length", 10,
        "--stride-length", 2, "--output", srt, "--no-progress")
    cues = srt.read_text(encoding="utf-8").strip().split("\n\n")
    assert len(cues) == len(words)
    assert cues[0].splitlines()[0] == "1" and " --> " in cues[0].splitlines()[1]
