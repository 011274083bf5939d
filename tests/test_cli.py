"""The ``w2vbert-asr`` command: formats, resampling and down-mixing, batching,
chunked long files with word timestamps, and per-file errors.

Uses the trained test model ``tests/data/tiny_ne_model`` and the sample
corpus' test speaker (fixtures of tests/conftest.py).
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

from tests.helpers import MODEL, ROOT, cli, levenshtein


@pytest.fixture(scope="module")
def savedir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cli_model"))


def test_console_script_is_declared_and_runs():
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="w2vbert-asr")  # declared in pyproject.toml
    assert script.value == "speechbrain_w2vbert.cli:main"
    proc = subprocess.run([sys.executable, "-m", "speechbrain_w2vbert.cli", "transcribe", "--help"],
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--chunk-length" in proc.stdout and "--timestamps" in proc.stdout


def test_threads_sets_torchs_threads(test_files, savedir):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _, out, _ = cli("transcribe", MODEL, test_files[0]["wav"], "--threads", "1", "--savedir", savedir)
        assert torch.get_num_threads() == 1 and out.strip()
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit, match=r"--threads must be at least 1 \(got 0\)"):
        cli("serve", MODEL, "--threads", "0")


def test_formats_any_rate_and_stereo(asr, test_files, tmp_path, savedir):
    first, second = test_files[0]["wav"], test_files[1]["wav"]
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


def test_bad_files_are_reported_and_the_others_transcribed(asr, test_files, tmp_path, savedir):
    good = test_files[0]["wav"]
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


def test_chunk_frames_tile_the_file(asr):
    """Chunk starts on the frame grid: the kept frames of all chunks are as
    many as the frames of the whole file."""
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    wav = torch.randn(16000 * 23 + 123) * 0.1
    whole = Transcriber(asr, chunk_length=60).frame_log_probs(wav)
    for chunk, stride in ((8, 2), (5, 1.5)):
        chunked = Transcriber(asr, chunk_length=chunk, stride_length=stride, batch_size=2).frame_log_probs(wav)
        assert chunked.shape == whole.shape


@pytest.mark.parametrize("seconds", [20.02, 21, 33.3, 47, 600])
def test_chunk_spans_tile_the_file_with_whole_chunks(seconds):
    """Every chunk is at most ``chunk`` long and starts on the frame grid; the
    last one is a whole chunk; the kept frames tile the file's frames once;
    each kept frame has at least ``stride`` of context on both sides where
    the file has it."""
    from speechbrain_w2vbert.inference.chunking import chunk_spans

    frame, chunk, stride = 320, 16000 * 20, 16000 * 4
    num_samples = int(seconds * 16000)
    spans = chunk_spans(num_samples, chunk, stride, frame)
    frames = -(-num_samples // frame)
    covered = []
    for i, span in enumerate(spans):
        assert span.start % frame == 0 and span.end - span.start <= chunk
        keep_to = span.keep_to if span.keep_to is not None else -(-(span.end - span.start) // frame)
        covered += range(span.start // frame + span.keep_from, span.start // frame + keep_to)
        if i > 0:
            assert span.keep_from * frame >= stride
        if i + 1 < len(spans):
            assert span.end - span.start - keep_to * frame >= stride
    assert covered == list(range(frames))
    if len(spans) > 1:
        assert spans[-1].end == num_samples and spans[-1].end - spans[-1].start > chunk - frame


def test_stitching_chunks_of_one_sequence_gives_it_back():
    """Chunks that agree on the overlap (slices of one sequence) stitch back
    into that sequence exactly, wherever the borders move; the borders go
    to the blank run in the overlap."""
    from speechbrain_w2vbert.inference.chunking import chunk_spans, stitch_chunks

    frame, total = 320, 16000 * 50
    spans = chunk_spans(total, 16000 * 20, 16000 * 4, frame)
    generator = torch.Generator().manual_seed(0)
    whole = torch.randn(total // frame, 5, generator=generator).log_softmax(-1)
    chunks = [whole[s.start // frame:-(-s.end // frame)] for s in spans]
    assert torch.equal(stitch_chunks(chunks, spans, frame), whole)
    # A confident blank run at 17.0-17.2 s, in the first overlap (nominal border
    # 16 s), and the second chunk wrong before it: the border moves into the run.
    whole[850:860] = torch.tensor([0.0, -20, -20, -20, -20])
    chunks = [whole[s.start // frame:-(-s.end // frame)] for s in spans]
    chunks[1] = chunks[1].clone()
    chunks[1][:850 - spans[1].start // frame] = -3.0
    assert torch.equal(stitch_chunks(chunks, spans, frame), whole)


@pytest.mark.slow
def test_long_file_chunked_with_word_timestamps(asr, long_recording, tmp_path, savedir):
    """A 2-minute file (the test speaker's utterances twice, 1 s pauses),
    chunked in fixed chunks (``--segment fixed``, 10 s chunks, 2 s strides),
    is transcribed as well as the same file in one pass on each part: the
    words a part gets (by their timestamps) have at most 2 more errors
    against its reference, and the parts together as few errors within 1% of
    the reference; word times are ordered.

    Not equal: with global attention every frame's output depends on its
    context, which a chunk cuts, so the tiny model's output moves by a
    character here and there on both sides of the comparison (measured:
    616 vs 613 errors over the 38 parts, 8 parts better and 11 worse, at
    most 2 characters; 600 vs 613 with 8 s / 1.5 s chunks).
    """
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    parts = [(a, b + 1.0, ref) for a, b, ref in long_recording.parts]  # each with the pause after it
    out = tmp_path / "long.json"
    cli("transcribe", MODEL, long_recording.path, "--savedir", savedir, "--format", "json", "--timestamps", "word",
        "--segment", "fixed", "--chunk-length", 10, "--stride-length", 2, "--batch-size", 4, "--output", out,
        "--no-progress")
    (result,) = json.loads(out.read_text(encoding="utf-8"))
    whole = Transcriber(asr, chunk_length=200).transcribe_waveforms([long_recording.wav], timestamps=True)[0].to_json()

    def part_errors(words):
        """Edit distance of each part's words (by their middle time) to its reference."""
        return [levenshtein(" ".join(w["word"] for w in words if a <= (w["start"] + w["end"]) / 2 < b), ref)
                for a, b, ref in parts]

    chunked, unchunked = part_errors(result["words"]), part_errors(whole["words"])
    reference_chars = sum(len(ref) for _, _, ref in parts)
    assert sum(chunked) <= sum(unchunked) + 0.01 * reference_chars, (sum(chunked), sum(unchunked))
    assert max(c - u for c, u in zip(chunked, unchunked)) <= 2, list(zip(chunked, unchunked))

    words = result["words"]
    assert " ".join(w["word"] for w in words) == " ".join(result["text"].split())
    assert all(0 <= w["start"] < w["end"] <= result["duration"] for w in words)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    assert len(result["segments"]) == 1  # fixed chunks: the file is one segment
