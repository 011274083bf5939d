"""Readable subtitles (speechbrain_w2vbert.inference.subtitles) read back by the
``srt`` and ``webvtt-py`` parsers, and word confidences that are lower on
wrong words than on right ones."""

import json

import pytest
import srt
import webvtt

from speechbrain_w2vbert.inference.results import Segment, Word
from tests.helpers import MODEL, cli


@pytest.fixture(scope="module")
def savedir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("subtitles_model"))


def _words(texts, start=0.0, step=0.4):
    """Words one after the other, ``step`` s each with a 0.1 s gap."""
    words = []
    for text in texts:
        words.append(Word(text, round(start, 3), round(start + step - 0.1, 3)))
        start += step
    return words


def test_cues_keep_to_two_lines_of_42_characters_and_7_seconds():
    from speechbrain_w2vbert.inference.subtitles import display_length, subtitle_cues, to_srt

    words = _words(["नेपाल", "राष्ट्र", "बैंकले", "आज", "नयाँ", "मौद्रिक", "नीति", "सार्वजनिक", "गरेको", "छ"] * 6)
    segment = Segment(0.0, words[-1].end + 0.2, " ".join(w.word for w in words), words)
    cues = subtitle_cues([segment])
    assert len(cues) > 1
    parsed = list(srt.parse(to_srt(cues)))
    assert [w for c in parsed for w in c.content.split()] == [w.word for w in words]  # no word lost or split
    for cue in parsed:
        lines = cue.content.split("\n")
        assert 1 <= len(lines) <= 2 and all(display_length(line) <= 42 for line in lines)
        assert (cue.end - cue.start).total_seconds() <= 7.0
    assert all(a.end <= b.start for a, b in zip(parsed, parsed[1:]))
    two = [c for c in cues if len(c.lines) == 2]
    assert two and all(abs(display_length(c.lines[0]) - display_length(c.lines[1])) <= 12 for c in two)  # balanced


def test_a_cue_never_spans_two_segments_and_short_cues_are_lengthened():
    from speechbrain_w2vbert.inference.subtitles import subtitle_cues

    first = Segment(0.0, 1.0, "क", [Word("क", 0.1, 0.3)])
    second = Segment(1.0, 3.0, "ख ग", [Word("ख", 1.2, 1.5), Word("ग", 1.6, 2.8)])
    cues = subtitle_cues([first, second])
    assert [c.lines for c in cues] == [["क"], ["ख ग"]]
    assert cues[0].end == pytest.approx(0.9)  # lengthened to 0.8 s, within its segment
    assert cues[0].end <= cues[1].start


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_of_a_long_recording_parse_and_follow_its_segments(long_recording, tmp_path, savedir, fmt):
    from speechbrain_w2vbert.inference.subtitles import display_length

    out = tmp_path / f"long.{fmt}"
    cli("transcribe", MODEL, long_recording.path, "--savedir", savedir, "--format", fmt, "--output", out,
        "--no-progress")
    if fmt == "srt":
        cues = [((c.start.total_seconds(), c.end.total_seconds()), c.content) for c in srt.parse(out.read_text("utf-8"))]
    else:
        cues = [((_seconds(c.start), _seconds(c.end)), c.text) for c in webvtt.read(str(out))]
    json_out = tmp_path / "long.json"
    cli("transcribe", MODEL, long_recording.path, "--savedir", savedir, "--format", "json", "--output", json_out,
        "--no-progress")
    (result,) = json.loads(json_out.read_text("utf-8"))
    assert len(cues) >= len(result["segments"]) > 1  # at least one cue per speech segment
    assert " ".join(text.replace("\n", " ") for _, text in cues) == " ".join(result["text"].split())
    for (start, end), text in cues:
        assert 0 <= start < end <= result["duration"]
        assert all(display_length(line) <= 42 for line in text.split("\n")) and len(text.split("\n")) <= 2
        assert any(s["start"] <= start and end <= s["end"] for s in result["segments"])  # inside one segment
    assert all(a[0][1] <= b[0][0] for a, b in zip(cues, cues[1:]))  # no cue overlaps the next


def _seconds(stamp):
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_wrong_words_get_lower_confidence_and_can_be_marked(asr, sample_test_rows, tmp_path, savedir):
    """On the sample test set, words the model gets wrong (SpeechBrain's own
    word alignment against the references) have a lower mean confidence
    than the words it gets right; ``--mark-confidence`` puts words below it
    in italics."""
    from speechbrain.utils.edit_distance import alignment, op_table

    from speechbrain_w2vbert.inference.transcriber import Transcriber

    transcriber = Transcriber(asr)
    results = transcriber.transcribe_waveforms([transcriber.read(r["wav"]) for r in sample_test_rows],
                                               timestamps=True)
    right, wrong = [], []
    for result, row in zip(results, sample_test_rows):
        hyp = [w.word for w in result.words]
        for op, _, h in alignment(op_table(row["wrd"].split(), hyp)):
            if h is not None:
                (right if op == "=" else wrong).append(result.words[h].confidence)
    assert len(right) >= 10 and len(wrong) >= 10
    assert sum(wrong) / len(wrong) < sum(right) / len(right) - 0.05, (sum(wrong) / len(wrong), sum(right) / len(right))

    out = tmp_path / "marked.srt"
    cli("transcribe", MODEL, sample_test_rows[0]["wav"], "--savedir", savedir, "--format", "srt", "--output", out,
        "--mark-confidence", 1.0)
    assert all(word.startswith("<i>") and word.endswith("</i>")
               for cue in srt.parse(out.read_text("utf-8")) for word in cue.content.split())


def test_no_word_is_left_alone_after_full_cues():
    """Ten 9-character words need two cues: 5 and 5 words, not the 8 and 2
    that filling each cue to the brim gives."""
    from speechbrain_w2vbert.inference.subtitles import display_length, subtitle_cues

    word = "कखगघङचछजझ"
    assert display_length(word) == 9
    words = _words([word] * 10)
    cues = subtitle_cues([Segment(0.0, 5.0, " ".join(w.word for w in words), words)])
    assert [sum(len(line.split()) for line in c.lines) for c in cues] == [5, 5]
