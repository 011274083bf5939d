"""Forced alignment (speechbrain_w2vbert.inference.alignment, Transcriber.align_waveform,
``w2vbert-asr align``): optimal paths, word times of a long recording of
known utterance boundaries, JSON / SRT / TextGrid output, and bad input."""

import json
import re

import pytest
import srt
import torch

from tests.helpers import MODEL, cli


@pytest.fixture(scope="module")
def savedir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("alignment_model"))


def test_aligning_the_greedy_transcript_finds_the_greedy_path(asr, sample_test_rows):
    """The greedy path is the best path of all, so the best path of its own
    transcript (torchaudio's forced_align through our wrapper) scores the
    same: the ids, blank and shapes are handed over right."""
    from speechbrain_w2vbert.inference.alignment import align_ids
    from speechbrain_w2vbert.text.tokenizer import collapse_ctc
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    transcriber = Transcriber(asr)
    log_probs = transcriber.pieces_log_probs([transcriber.read(r["wav"]) for r in sample_test_rows[:6]])
    for lp in log_probs:
        greedy = lp.argmax(-1)
        ids = collapse_ctc(greedy.tolist())
        path, probs = align_ids(lp, ids)
        best = lp.max(-1).values.sum().item()
        assert lp.gather(1, torch.tensor(path)[:, None]).sum().item() == pytest.approx(best, abs=1e-3)
        assert collapse_ctc(path) == ids and len(probs) == lp.shape[0]


def test_split_transcript_follows_the_segments():
    from speechbrain_w2vbert.inference.alignment import split_transcript

    words = "राम घर गयो सीता बजार गइन् हरि भात खायो".split()
    hyps = ["राम घर गय", "", "सित बजर गइन", "हर भत खयो"]
    assert split_transcript(words, hyps) == [words[:3], [], words[3:6], words[6:]]


@pytest.mark.slow
def test_long_recording_aligned_segment_by_segment(asr, long_recording):
    """The known transcript of the 2-minute recording, aligned: words come
    back in order, each of at least 95% of them inside its own utterance's
    span (the pauses are known), every character inside its word."""
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    transcript = " ".join(ref for _, _, ref in long_recording.parts)
    result = Transcriber(asr).align_waveform(long_recording.wav, transcript).to_json()
    words = result["words"]
    assert [w["word"] for w in words] == transcript.split()
    owner = [k for k, (_, _, ref) in enumerate(long_recording.parts) for _ in ref.split()]
    inside = sum(long_recording.parts[k][0] - 0.1 <= w["start"] < w["end"] <= long_recording.parts[k][1] + 0.1
                 for w, k in zip(words, owner))
    assert inside >= 0.95 * len(words), (inside, len(words))
    assert len(result["segments"]) == len(long_recording.parts)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    for word in words:
        assert "".join(c["char"] for c in word["chars"]) == word["word"]
        assert word["start"] == word["chars"][0]["start"] and word["end"] == word["chars"][-1]["end"]
        assert 0.0 <= word["confidence"] <= 1.0
    assert 0.0 < result["confidence"] < 1.0


def _textgrid_tiers(text):
    """A strict reading of a long-format TextGrid: {tier: [(xmin, xmax, text)]}."""
    lines = [line.strip() for line in text.splitlines()]
    assert lines[:2] == ['File type = "ooTextFile"', 'Object class = "TextGrid"']
    xmax = float(re.search(r"^xmax = (\S+)", text, flags=re.M).group(1))
    tiers = {}
    for block in text.split("    item [")[1:]:
        name = re.search(r'name = "([^"]*)"', block).group(1)
        size = int(re.search(r"intervals: size = (\d+)", block).group(1))
        intervals = [(float(a), float(b), t) for a, b, t in
                     re.findall(r'xmin = (\S+) \n\s+xmax = (\S+) \n\s+text = "((?:[^"]|"")*)"', block)]
        assert len(intervals) == size
        assert intervals[0][0] == 0.0 and intervals[-1][1] == pytest.approx(xmax)
        assert all(a[1] == b[0] for a, b in zip(intervals, intervals[1:]))  # contiguous, as Praat needs
        assert all(a < b for a, b, _ in intervals)
        tiers[name] = intervals
    return tiers


def test_align_command_writes_json_srt_and_textgrid(sample_test_rows, tmp_path, savedir):
    rows = sample_test_rows[:2]
    pairs = []
    for k, row in enumerate(rows):
        text = tmp_path / f"{k}.txt"
        text.write_text("  " + row["wrd"] + "।\n", encoding="utf-8")  # normalised like training text
        pairs += [row["wav"], text]
    _, out, _ = cli("align", MODEL, *pairs, "--savedir", savedir)
    results = json.loads(out)
    assert [r["text"] for r in results] == [r["wrd"] for r in rows]
    assert all(w["end"] <= r["duration"] for r in results for w in r["words"])

    cli("align", MODEL, *pairs, "--savedir", savedir, "--format", "textgrid", "--output", tmp_path / "grids")
    for row, result in zip(rows, results):
        name = row["wav"].rsplit("/", 1)[1].rsplit(".", 1)[0] + ".TextGrid"
        tiers = _textgrid_tiers((tmp_path / "grids" / name).read_text(encoding="utf-8"))
        assert [t for _, _, t in tiers["words"] if t] == row["wrd"].split()
        assert "".join(t for _, _, t in tiers["chars"] if t) == row["wrd"].replace(" ", "")
        assert [(a, b) for a, b, t in tiers["words"] if t] == [(w["start"], w["end"]) for w in result["words"]]

    out_srt = tmp_path / "one.srt"
    cli("align", MODEL, *pairs[:2], "--savedir", savedir, "--format", "srt", "--output", out_srt)
    cues = list(srt.parse(out_srt.read_text(encoding="utf-8")))
    assert " ".join(c.content.replace("\n", " ") for c in cues) == rows[0]["wrd"]


def test_bad_alignment_input_is_reported_and_the_others_aligned(sample_test_rows, tmp_path, savedir):
    good_wav, good_text = sample_test_rows[0]["wav"], tmp_path / "good.txt"
    good_text.write_text(sample_test_rows[0]["wrd"], encoding="utf-8")
    latin, empty, long = tmp_path / "latin.txt", tmp_path / "empty.txt", tmp_path / "long.txt"
    latin.write_text("नमस्ते hello", encoding="utf-8")
    empty.write_text(" ।\n", encoding="utf-8")
    long.write_text(" ".join([sample_test_rows[0]["wrd"]] * 30), encoding="utf-8")
    unreadable = tmp_path / "bad.wav"
    unreadable.write_bytes(b"not audio")
    status, out, err = cli("align", MODEL, good_wav, latin, good_wav, empty, good_wav, long, unreadable, good_text,
                           good_wav, tmp_path / "missing.txt", good_wav, good_text, "--savedir", savedir,
                           check=False)
    assert status == 1
    results = json.loads(out)
    assert [("error" in r) for r in results] == [True, True, True, True, True, False]
    assert "characters outside the model's vocabulary: 'h' (U+0068)" in results[0]["error"]
    assert "empty transcript" in results[1]["error"]
    assert "transcript too long for the audio" in results[2]["error"]
    assert "unreadable" in results[3]["error"] and "missing.txt" in results[4]["error"]
    assert err.count("w2vbert-asr: ") == 5 and str(latin) in err
    with pytest.raises(SystemExit, match="AUDIO TRANSCRIPT"):
        cli("align", MODEL, good_wav, "--savedir", savedir)


def test_any_sample_rate_is_resampled_to_the_models(asr, sample_test_rows, tmp_path, savedir):
    """An 8 kHz file (CLI) or waveform (Python, ``sample_rate=8000``) is
    aligned at 16 kHz: the same words, times within 40 ms of the 16 kHz
    file's; numpy arrays work as tensors do; a 2-D waveform is refused with
    its shape."""
    import soundfile as sf
    import torchaudio

    from speechbrain_w2vbert.inference.transcriber import Transcriber

    row = sample_test_rows[1]
    transcriber = Transcriber(asr)
    wav = transcriber.read(row["wav"])
    narrow = torchaudio.functional.resample(wav, 16000, 8000)
    sf.write(tmp_path / "narrow.wav", narrow.numpy(), 8000)
    (tmp_path / "t.txt").write_text(row["wrd"], encoding="utf-8")
    _, out, _ = cli("align", MODEL, tmp_path / "narrow.wav", tmp_path / "t.txt", "--savedir", savedir)
    (from_file,) = json.loads(out)
    reference = transcriber.align_waveform(wav, row["wrd"]).to_json()
    from_tensor = transcriber.align_waveform(narrow, row["wrd"], sample_rate=8000).to_json()
    for result in (from_file, from_tensor):
        assert [w["word"] for w in result["words"]] == [w["word"] for w in reference["words"]]
        assert max(abs(a["start"] - b["start"]) for a, b in zip(result["words"], reference["words"])) <= 0.04
    # arrays as soundfile reads them (float64 by default) are transcribed as the tensor is
    expected = transcriber.transcribe_waveforms([wav], timestamps=True)[0].to_json()
    from_arrays = transcriber.transcribe_waveforms([wav.numpy(), wav.double().numpy()], timestamps=True)
    assert [r.to_json() for r in from_arrays] == [expected, expected]
    assert transcriber.align_waveform(wav.numpy(), row["wrd"]).to_json() == reference
    with pytest.raises(ValueError, match=r"1-D waveform \(mono\), got shape \(2, 8000\)"):
        transcriber.transcribe_waveforms([torch.zeros(2, 8000)])


def test_a_trellis_too_large_is_refused_before_it_is_allocated(monkeypatch):
    from speechbrain_w2vbert.inference import alignment

    monkeypatch.setattr(alignment, "MAX_TRELLIS", 1000)
    with pytest.raises(alignment.AlignmentError, match=r"too long to align in one piece: .*--segment vad"):
        alignment.align_ids(torch.zeros(100, 5).log_softmax(-1), [1, 2, 3, 4, 1, 2])
    assert alignment.align_ids(torch.zeros(100, 5).log_softmax(-1), [1, 2])[0]  # 500 cells: aligned
