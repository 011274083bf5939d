"""Long recordings cut at pauses (speechbrain_w2vbert.inference.segmentation): the
voice-activity detector against silero-vad's defaults, joining and padding,
the long-file figure against each utterance transcribed alone, word times
across segments, and recordings without speech."""

import json

import pytest
import soundfile as sf
import torch

from tests.helpers import DATA_DIR, MODEL, cli, levenshtein


def test_words_are_not_cut_at_short_pauses():
    """silero-vad's defaults cut a committed 4.4 s utterance at a 0.2 s pause
    inside it; the segmenter (pauses of at least 0.5 s) keeps it whole."""
    from silero_vad import get_speech_timestamps

    from speechbrain_w2vbert.audio import read_audio
    from speechbrain_w2vbert.inference.segmentation import VoiceActivitySegmenter, _silero_model

    wav = read_audio(f"{DATA_DIR}/ne_speech_a.flac")
    assert len(get_speech_timestamps(wav, _silero_model(), sampling_rate=16000)) == 2  # the reference splits
    (segment,) = VoiceActivitySegmenter()(wav)
    assert segment[0] <= 1600 and segment[1] >= wav.shape[0] - 1600
    assert len(VoiceActivitySegmenter(min_pause=0.1, min_segment=0.0)(wav)) == 2  # a short min_pause cuts it


def test_short_segments_are_joined_and_padding_stops_halfway():
    from speechbrain_w2vbert.inference.segmentation import join_segments, pad_segments

    rate = 1000
    spans = [(0, 3000), (3400, 3800), (9000, 12000)]  # a 0.4 s burst 0.4 s after a segment, far from the next
    assert join_segments(spans, rate) == [(0, 3800), (9000, 12000)]
    assert join_segments(spans, rate, min_segment=0.3) == spans  # long enough
    assert join_segments([(0, 500), (5000, 5400)], rate) == [(0, 500), (5000, 5400)]  # nothing near: alone
    padded = pad_segments([(1000, 2000), (2100, 3000)], 3100, before=300, after=300)
    assert padded == [(700, 2050), (2050, 3100)]
    assert all(a[1] <= b[0] for a, b in zip(padded, padded[1:]))


def test_bad_vad_options_are_refused():
    from speechbrain_w2vbert.inference.segmentation import VoiceActivitySegmenter

    with pytest.raises(ValueError, match="threshold"):
        VoiceActivitySegmenter(threshold=1.5)
    with pytest.raises(ValueError, match=">= 0"):
        VoiceActivitySegmenter(min_pause=-1)


@pytest.mark.slow
@pytest.mark.extended
def test_long_recording_segmented_at_pauses_as_well_as_utterances_alone(asr, long_recording, tmp_path, savedir):
    """Character errors of the whole transcript: each utterance alone 162
    over the 38; VAD segments (defaults) 196 (1.21x; docs/design.md#long-recordings
    says why not closer); fixed 20 s chunks 397. Asserted with margin: VAD
    within 1.3x of alone and under 0.6x of fixed chunks.
    One segment per utterance, each word inside its own utterance's span.
    """
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    parts = long_recording.parts
    alone = Transcriber(asr).transcribe_waveforms(long_recording.alone)
    alone_errors = sum(levenshtein(a.text, ref) for a, (_, _, ref) in zip(alone, parts))
    reference = " ".join(ref for _, _, ref in parts)

    out = tmp_path / "long.json"
    cli("transcribe", MODEL, long_recording.path, "--savedir", savedir, "--format", "json", "--timestamps", "word",
        "--output", out, "--no-progress")
    (result,) = json.loads(out.read_text(encoding="utf-8"))
    fixed = Transcriber(asr, segmenter=None).transcribe_waveforms([long_recording.wav])[0]
    vad_errors, fixed_errors = levenshtein(result["text"], reference), levenshtein(fixed.text, reference)
    assert vad_errors <= 1.3 * alone_errors, (vad_errors, alone_errors, fixed_errors)
    assert vad_errors < 0.6 * fixed_errors, (vad_errors, alone_errors, fixed_errors)

    segments = result["segments"]
    assert len(segments) == len(parts)
    for segment, (start, end, _) in zip(segments, parts):
        assert start - 0.5 <= segment["start"] <= start + 0.3 and end - 0.5 <= segment["end"] <= end + 0.5
        assert all(start <= (w["start"] + w["end"]) / 2 <= end for w in segment["words"])  # word times stay right
        assert " ".join(w["word"] for w in segment["words"]) == " ".join(segment["text"].split())
        assert all(0.0 <= w["confidence"] <= 1.0 for w in segment["words"])
    assert result["words"] == [w for s in segments for w in s["words"]]
    assert all(a["end"] <= b["start"] for a, b in zip(result["words"], result["words"][1:]))


def test_recordings_without_speech_are_reported_and_the_others_transcribed(tmp_path, savedir, test_files):
    noise = tmp_path / "noise.wav"
    sf.write(noise, (torch.randn(16000 * 25, generator=torch.Generator().manual_seed(0)) * 1e-4).numpy(), 16000)
    status, out, err = cli("transcribe", MODEL, noise, test_files[0]["wav"], "--savedir", savedir, "--format", "json",
                           "--no-progress", check=False)
    assert status == 1
    assert f"{noise}: no speech found by the voice-activity detector in 25.0 s" in err
    bad, good = json.loads(out)
    assert "error" in bad and "text" not in bad and good["text"]
    status, out, _ = cli("transcribe", MODEL, noise, "--savedir", savedir, "--segment", "fixed", "--no-progress",
                         check=False)
    assert status == 0  # fixed chunks transcribe it anyway


@pytest.fixture(scope="module")
def savedir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("segmentation_model"))
