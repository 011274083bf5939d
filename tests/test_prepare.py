"""Tests of recipes/OpenSLR54/openslr54_prepare.py and openslr54_download.py on
the bundled sample corpus (copied into tmp_path) and on hand-made edge cases."""

import csv
import functools
import http.server
import json
import math
import os
import random
import shutil
import struct
import threading
import urllib.error
import zipfile

import numpy as np
import pytest
import soundfile as sf

import openslr54_download as dl
import openslr54_prepare as prep
from openslr54_download import download_file
from openslr54_prepare import (
    SAMPLE_DATA_DIR,
    Transcript,
    audio_info,
    ctc_frames,
    prepare_openslr54,
    random_split,
    read_transcripts,
    speaker_split,
)

from speechbrain_w2vbert.models.ctc import texts_min_frames
from speechbrain_w2vbert.text.normalize import has_latin, normalize_nepali

# The sample corpus' deliberately bad entries (make_sample_corpus.py logs them).
BAD = {
    "corrupt": "15dd683c1f",          # truncated FLAC
    "empty_file": "11db1170e2",       # zero-byte FLAC
    "empty_text": {"1b59fa6e67", "00ce7b6e29"},  # "" and "।"
    "audio_absent": "1352def6ae",     # TSV line, no FLAC in any shard
    "duplicate_id": "0355cc2453",     # second TSV line with this id
}
SAMPLE_TSV_IDS = 281  # unique ids (282 lines)
SAMPLE_FLACS = 280
SAMPLE_KEPT = 273


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def split_rows(save_folder):
    return {s: read_csv(os.path.join(save_folder, f"{s}.csv")) for s in prep.SPLITS}


def extract_all(src_dir, dest):
    for name in sorted(os.listdir(src_dir)):
        with zipfile.ZipFile(os.path.join(src_dir, name)) as zf:
            zf.extractall(dest)
    return os.path.join(dest, "asr_nepali")


@pytest.fixture
def sample(tmp_path):
    """A copy of the three sample shards in tmp_path/data."""
    return shutil.copytree(SAMPLE_DATA_DIR, tmp_path / "data")


@pytest.fixture(scope="module")
def prepared(sample_corpus):
    """(save folder, report) of the sample corpus prepared with the default
    options (tests/conftest.py: once per run; read-only use)."""
    return sample_corpus.save_folder, sample_corpus.report


# --------------------------------------------------------------------------
# Sample corpus from zips
# --------------------------------------------------------------------------
def test_zips_counts_and_drop_reasons(prepared):
    save, report = prepared
    drops = report["drops"]
    assert report["tsv"] == {"files": 1, "utterances": SAMPLE_TSV_IDS,
                             "duplicate_lines": 1, "malformed_lines": 0}
    assert report["audio_files"] == SAMPLE_FLACS
    assert report["extraction"]["zips"] == 3 and report["extraction"]["bad_members"] == 0
    assert drops == {
        "duplicate_id": 1, "excluded": 0, "audio_absent": 1, "latin_text": 3, "empty_text": 2,
        "empty_file": 1, "unreadable": 0, "zero_length": 0, "corrupt": 1,
        "too_short": 0, "too_long": 0, "ctc_infeasible": 0,
    }
    examples = report["drop_examples"]
    for reason in ("corrupt", "empty_file", "audio_absent", "duplicate_id"):
        assert examples[reason] == [BAD[reason]]
    assert set(examples["empty_text"]) == BAD["empty_text"]
    assert report["kept"]["utterances"] == SAMPLE_KEPT
    assert sum(s["utterances"] for s in report["splits"].values()) == SAMPLE_KEPT
    assert report["out_of_inventory"] == {"2": 1}
    assert report["skipped"] is False
    with open(os.path.join(save, prep.REPORT_NAME), encoding="utf-8") as f:
        on_disk = json.load(f)
    assert on_disk["drops"] == drops and on_disk["fingerprint"] == report["fingerprint"]


def test_csv_contents(prepared):
    save, report = prepared
    rows = split_rows(save)
    with open(os.path.join(save, "train.csv"), encoding="utf-8") as f:
        assert f.readline().strip() == "ID,duration,wav,spk_id,wrd"
    all_rows = [r for s in prep.SPLITS for r in rows[s]]
    assert len({r["ID"] for r in all_rows}) == SAMPLE_KEPT
    for row in all_rows:
        assert os.path.isabs(row["wav"]) and os.path.isfile(row["wav"])
        assert row["wav"].endswith(os.path.join(row["ID"][:2], row["ID"] + ".flac"))
        info = sf.info(row["wav"])
        assert float(row["duration"]) == pytest.approx(info.frames / info.samplerate, abs=1e-3)
        assert 1.0 <= float(row["duration"]) <= 15.0
        assert row["wrd"] and normalize_nepali(row["wrd"]) == row["wrd"]
        assert not has_latin(row["wrd"]) and len(row["spk_id"]) == 5
    for split in prep.SPLITS:
        hours = sum(float(r["duration"]) for r in rows[split]) / 3600
        assert report["splits"][split]["hours"] == pytest.approx(hours, abs=1e-4)
    inventory = report["char_inventory"]
    assert inventory[" "] == sum(r["wrd"].count(" ") for r in all_rows)


def test_most_sample_utterances_pass_default_duration_filter(prepared):
    _, report = prepared
    durations = report["kept"]["hours"] * 3600 / report["kept"]["utterances"]
    assert report["drops"]["too_short"] == 0 and 1.5 < durations < 4.0


# --------------------------------------------------------------------------
# Other layouts: extracted tree, subset of shards, bad zips
# --------------------------------------------------------------------------
def test_extracted_tree_gives_same_csvs(tmp_path, prepared):
    tree = extract_all(SAMPLE_DATA_DIR, tmp_path / "tree")
    for data_folder in (str(tmp_path / "tree"), tree):  # parent or asr_nepali itself
        save = str(tmp_path / ("out_" + os.path.basename(data_folder)))
        report = prepare_openslr54(data_folder, save)
        assert report["drops"] == prepared[1]["drops"]
        assert report["extraction"]["zips"] == 0
        ids = {s: [r["ID"] for r in v] for s, v in split_rows(save).items()}
        assert ids == {s: [r["ID"] for r in v] for s, v in split_rows(prepared[0]).items()}


def test_subset_of_shards(sample, tmp_path):
    os.remove(sample / "asr_nepali_1.zip")
    report = prepare_openslr54(str(sample), str(tmp_path / "prep"))
    with zipfile.ZipFile(os.path.join(SAMPLE_DATA_DIR, "asr_nepali_1.zip")) as zf:
        in_shard_1 = [n for n in zf.namelist() if n.endswith(".flac")]
    assert report["audio_files"] == SAMPLE_FLACS - len(in_shard_1)
    assert report["drops"]["audio_absent"] == 1 + len(in_shard_1)
    assert report["drops"]["corrupt"] == 0  # the truncated FLAC is in shard 1
    kept = [r for rows in split_rows(tmp_path / "prep").values() for r in rows]
    assert kept and all(r["ID"][0] in "02" for r in kept)
    assert all(report["splits"][s]["utterances"] > 0 for s in prep.SPLITS)


def test_extraction_runs_once_and_survives_bad_members(sample, tmp_path):
    # corrupt one stored FLAC member of shard 2 (its CRC no longer matches)
    path = sample / "asr_nepali_2.zip"
    with zipfile.ZipFile(path) as zf:
        info = [i for i in zf.infolist() if i.filename.endswith(".flac")][3]
    blob = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    blob[start + 100] ^= 0xFF
    path.write_bytes(bytes(blob))
    (sample / "asr_nepali_3.zip").write_bytes(b"not a zip")  # unreadable shard
    report = prepare_openslr54(str(sample), str(tmp_path / "a"))
    assert report["extraction"]["bad_members"] == 1
    assert report["extraction"]["bad_zip"] == 1
    assert report["drops"]["audio_absent"] == 2  # the bad member's utterance too
    # markers: a second run extracts nothing, not even a file deleted since
    report = prepare_openslr54(str(sample), str(tmp_path / "b"))
    assert report["extraction"]["files"] == 0 and report["extraction"]["bad_zip"] == 1
    flac = next((sample / "asr_nepali" / "data" / "00").iterdir())
    flac.unlink()
    report = prepare_openslr54(str(sample), str(tmp_path / "c"))
    assert report["extraction"]["files"] == 0 and report["drops"]["audio_absent"] == 3
    # without its marker, the shard is extracted again (only the missing file)
    (sample / "asr_nepali" / ".extracted_asr_nepali_0.zip").unlink()
    report = prepare_openslr54(str(sample), str(tmp_path / "d"))
    assert report["extraction"]["files"] == 1 and flac.is_file()


def test_per_shard_tsvs_are_merged(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    tone = (np.sin(np.arange(32000) / 10) * 8000).astype(np.int16)
    for shard, uid, spk in (("0", "0a00000000", "aaaaa"), ("1", "1b00000000", "bbbbb"),
                            ("2", "2c00000000", "ccccc")):
        flac = tmp_path / f"{uid}.flac"
        sf.write(flac, tone, 16000)
        with zipfile.ZipFile(data / f"asr_nepali_{shard}.zip", "w") as zf:
            zf.writestr("asr_nepali/utt_spk_text.tsv", f"{uid}\t{spk}\tराम घर\n")
            zf.write(flac, f"asr_nepali/data/{uid[:2]}/{uid}.flac")
            zf.writestr("../evil.txt", "ignored")  # unsafe member, ignored
    report = prepare_openslr54(str(data), str(tmp_path / "prep"))
    assert report["tsv"]["files"] == 3 and report["tsv"]["utterances"] == 3
    assert report["kept"]["utterances"] == 3
    assert sorted(os.listdir(data / "asr_nepali")) == [
        ".extracted_asr_nepali_0.zip", ".extracted_asr_nepali_1.zip",
        ".extracted_asr_nepali_2.zip", "data", "utt_spk_text.1.tsv",
        "utt_spk_text.2.tsv", "utt_spk_text.tsv",
    ]
    assert not (tmp_path / "evil.txt").exists()


def test_read_transcripts_duplicates_and_malformed(tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text("u1\ts1\tक\nu2\ts1\tख\nu1\ts2\tग\nbroken line\n\n", encoding="utf-8")
    b.write_text("u2\ts1\tख\nu3\ts3\tघ\nu3\ts3\tघ\nu2\ts9\tङ\n", encoding="utf-8")
    entries, dups, malformed = read_transcripts([str(a), str(b)])
    assert entries == {"u1": Transcript("s1", "क"), "u2": Transcript("s1", "ख"),
                       "u3": Transcript("s3", "घ")}
    # u1 twice in a; u3 repeated within b; u2 with another text in b
    assert dups == ["u1", "u3", "u2"] and malformed == 1


def test_missing_corpus_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        prepare_openslr54(str(tmp_path), str(tmp_path / "prep"))
    assert prepare_openslr54(str(tmp_path), str(tmp_path / "prep"), skip_prep=True) is None


# --------------------------------------------------------------------------
# Audio checks, flags and filters
# --------------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path):
    """An extracted copy of the sample corpus."""
    return extract_all(SAMPLE_DATA_DIR, tmp_path / "tree")


def flac_path(root, uid):
    return os.path.join(root, "data", uid[:2], uid + ".flac")


def good_ids(prepared, n):
    rows = split_rows(prepared[0])["train"]
    return [r["ID"] for r in rows[:n]]


def test_non16k_and_stereo_are_kept_and_flagged(tree, prepared, tmp_path):
    resampled, stereo = good_ids(prepared, 2)
    wav, rate = sf.read(flac_path(tree, resampled), dtype="int16")
    sf.write(flac_path(tree, resampled), wav[::2], rate // 2)  # 8 kHz
    sf.write(flac_path(tree, stereo), np.stack([wav, wav], axis=1), rate)
    report = prepare_openslr54(os.path.dirname(tree), str(tmp_path / "prep"))
    assert report["kept"]["utterances"] == SAMPLE_KEPT
    assert report["flagged"]["sample_rate"] == {"count": 1, "ids": [resampled]}
    assert report["flagged"]["multichannel"] == {"count": 1, "ids": [stereo]}
    rows = {r["ID"]: r for v in split_rows(tmp_path / "prep").values() for r in v}
    assert float(rows[resampled]["duration"]) == pytest.approx(len(wav) / rate, abs=2e-3)


def flac_header_only():
    """A FLAC with a STREAMINFO block (16 kHz, mono, 16 bit, length 0 =
    unknown) and no audio frame."""
    packed = (16000 << 44) | (0 << 41) | (15 << 36) | 0
    streaminfo = struct.pack(">HH", 4096, 4096) + bytes(6) + packed.to_bytes(8, "big")
    return b"fLaC" + bytes([0x80, 0, 0, 34]) + streaminfo + bytes(16)


def test_unreadable_and_zero_length(tree, prepared, tmp_path):
    garbage, header_only, no_samples = good_ids(prepared, 3)
    with open(flac_path(tree, garbage), "wb") as f:
        f.write(b"fLaC" + bytes(range(256)) * 4)
    with open(flac_path(tree, header_only), "wb") as f:
        f.write(flac_header_only())
    # libsndfile reads by content: a WAV header with no sample is zero-length
    sf.write(flac_path(tree, no_samples), np.zeros(0, dtype=np.int16), 16000, format="WAV")
    assert audio_info(flac_path(tree, no_samples)).reason == "zero_length"
    report = prepare_openslr54(os.path.dirname(tree), str(tmp_path / "prep"))
    assert sorted(report["drop_examples"]["unreadable"]) == sorted([garbage, header_only])
    assert report["drop_examples"]["zero_length"] == [no_samples]


@pytest.mark.parametrize("cut", [1, 7, 300, 0.5, 0.9])
def test_truncated_flac_is_corrupt(tmp_path, cut):
    path = str(tmp_path / "x.flac")
    rng = np.random.default_rng(0)
    sf.write(path, (rng.normal(0, 3000, 40000)).astype(np.int16), 16000)
    assert audio_info(path) == (None, 16000, 1, 40000)
    size = os.path.getsize(path)
    keep = size - cut if cut >= 1 else int(size * cut)
    with open(path, "r+b") as f:
        f.truncate(keep)
    assert audio_info(path).reason == "corrupt"


def test_parallel_and_serial_metadata_agree(tree):
    paths = sorted(v.path for v in prep.scan_audio(tree).values())
    serial = prep.read_audio_info(paths, num_workers=1)
    for executor in ("process", "thread"):
        assert prep.read_audio_info(paths * 2, 2, executor) == serial * 2


def test_duration_filters(prepared, sample, tmp_path):
    durations = sorted(float(r["duration"]) for v in split_rows(prepared[0]).values() for r in v)
    # thresholds between two distinct (3-decimal) durations, so rounding is moot
    low = next((a + b) / 2 for a, b in zip(durations[40:], durations[41:]) if b - a > 2e-3)
    high = next((a + b) / 2 for a, b in zip(durations[-30::-1], durations[-31::-1]) if a - b > 2e-3)
    report = prepare_openslr54(str(sample), str(tmp_path / "a"), min_duration=low,
                               max_duration=high)
    assert report["drops"]["too_short"] == sum(d < low for d in durations)
    assert report["drops"]["too_long"] == sum(d > high for d in durations)
    assert report["kept"]["utterances"] == sum(low <= d <= high for d in durations)
    report = prepare_openslr54(str(sample), str(tmp_path / "b"), min_duration=None,
                               max_duration=None, drop_empty_text=False)
    assert report["drops"]["too_short"] == report["drops"]["empty_text"] == 0
    assert report["kept"]["utterances"] == SAMPLE_KEPT + 2


def test_latin_and_digit_options(sample, tmp_path):
    report = prepare_openslr54(str(sample), str(tmp_path / "a"), keep_latin=True,
                               ascii_digits_to_devanagari=True)
    assert report["drops"]["latin_text"] == 0
    assert report["kept"]["utterances"] == SAMPLE_KEPT + 3
    assert report["out_of_inventory"] == {}
    texts = [r["wrd"] for v in split_rows(tmp_path / "a").values() for r in v]
    latin = [t for t in texts if has_latin(t)]
    assert len(latin) == 3 and all(t == t.lower() for t in latin)
    assert not any(c in "0123456789" for t in texts for c in t)


# --------------------------------------------------------------------------
# CTC feasibility
# --------------------------------------------------------------------------
def test_ctc_frames_never_exceed_w2vbert_frames():
    # SeamlessM4T fbank: 25 ms window, 10 ms hop, no padding; stride-2 stacking
    # gives 50 Hz; the adapter (kernel 3, stride 2, padding 1) halves it again.
    for n in range(400, 80000, 7):
        fifty = (1 + (n - 400) // 160) // 2
        twenty_five = (fifty - 1) // 2 + 1
        assert 0 <= ctc_frames(n / 16000, 50) <= fifty
        assert 0 <= ctc_frames(n / 16000, 25) <= twenty_five


def test_texts_min_frames():
    texts = ["", "कख", "कक", "ककक  ख", "क", "𑐀𑐀"]  # the last: two astral-plane characters
    expected = [0, 2, 3, 6 + 3, 1, 3]
    assert texts_min_frames(texts) == expected
    assert texts_min_frames(texts, batch_size=2) == expected  # batches of 2, 2, 2
    assert texts_min_frames(texts[:1]) == [0] and texts_min_frames([]) == []

    class WordLabels:  # a tokenizer of one label per word (its length): fewer labels than characters
        def encode(self, text):
            return [len(word) for word in text.split()]

    assert texts_min_frames(["कक ख", "क ख ग", ""], WordLabels()) == [2, 3 + 2, 0]


def test_ctc_feasibility_filter(tmp_path):
    """1.2 s of audio has 59 frames at 50 Hz (ctc_frames), 29 at 25 Hz."""
    root = tmp_path / "asr_nepali"
    texts = {
        "aa00000001": "राम घर जान्छ",      # 12 labels: always feasible
        "aa00000002": "क ख " * 14 + "क",   # 57 labels: feasible at 50 Hz only
        "aa00000003": "कक" * 16,            # 32 labels + 31 repeats = 63 > 59
        "aa00000004": "क ख" * 20,           # 60 labels, no repeats: too long
    }
    assert ctc_frames(1.2, 50) == 59 and ctc_frames(1.2, 25) == 29
    os.makedirs(root / "data" / "aa")
    for uid in texts:
        sf.write(root / "data" / "aa" / f"{uid}.flac", np.zeros(19200, dtype=np.int16), 16000)
    lines = [f"{uid}\t{'s' + uid[-4:]}\t{t}\n" for uid, t in texts.items()]
    (root / "utt_spk_text.tsv").write_text("".join(lines), encoding="utf-8")
    kwargs = dict(split="random", split_ratio=(50, 25, 25))
    report = prepare_openslr54(str(tmp_path), str(tmp_path / "a"), **kwargs)
    assert sorted(report["drop_examples"]["ctc_infeasible"]) == ["aa00000003", "aa00000004"]
    report = prepare_openslr54(str(tmp_path), str(tmp_path / "b"), frames_per_second=25, **kwargs)
    assert report["drops"]["ctc_infeasible"] == 3
    report = prepare_openslr54(str(tmp_path), str(tmp_path / "c"), frames_per_second=None, **kwargs)
    assert report["drops"]["ctc_infeasible"] == 0 and report["kept"]["utterances"] == 4


# --------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------
def test_speaker_split_is_disjoint_and_deterministic(prepared, sample, tmp_path):
    rows = split_rows(prepared[0])
    speakers = {s: {r["spk_id"] for r in rows[s]} for s in prep.SPLITS}
    assert not (speakers["train"] & speakers["dev"])
    assert not (speakers["train"] & speakers["test"])
    assert not (speakers["dev"] & speakers["test"])
    assert len(speakers["dev"]) >= 1 and len(speakers["test"]) >= 1
    prepare_openslr54(str(sample), str(tmp_path / "again"))
    again = split_rows(tmp_path / "again")
    assert {s: [(r["ID"], r["spk_id"]) for r in again[s]] for s in prep.SPLITS} == {
        s: [(r["ID"], r["spk_id"]) for r in rows[s]] for s in prep.SPLITS}


def test_speaker_split_rules():
    # tiny: one speaker each in test and dev even when no hash lands there
    assert sorted(speaker_split(["a", "b", "c"], (90, 5, 5)).values()) == ["dev", "test", "train"]
    with pytest.raises(ValueError):
        speaker_split(["a", "b"], (90, 5, 5))
    assert set(speaker_split(["a", "b"], (1, 0, 0)).values()) == {"train"}
    # large: proportions follow the ratio; each speaker's split is independent
    speakers = [f"{i:05x}" for i in range(4000)]
    split = speaker_split(speakers, (90, 5, 5))
    counts = {s: list(split.values()).count(s) / len(speakers) for s in prep.SPLITS}
    assert counts["train"] == pytest.approx(0.9, abs=0.02)
    assert counts["dev"] == pytest.approx(0.05, abs=0.01)
    smaller = speaker_split(speakers[:2000], (90, 5, 5))
    assert all(split[s] == smaller[s] for s in smaller)
    assert speaker_split(reversed(speakers), (90, 5, 5)) == split


def test_random_split_reproduces_published_recipe(sample, tmp_path):
    report = prepare_openslr54(str(sample), str(tmp_path / "prep"), split="random")
    # the algorithm, spelled out: sorted unique TSV ids, Random(42).shuffle,
    # first floor(85 %) train, the rest test
    with zipfile.ZipFile(sample / "asr_nepali_0.zip") as zf:
        tsv = zf.read("asr_nepali/utt_spk_text.tsv").decode("utf-8")
    ids = sorted({line.split("\t")[0] for line in tsv.split("\n") if line})
    random.Random(42).shuffle(ids)
    n_train = math.floor(len(ids) * 0.85)
    rows = split_rows(tmp_path / "prep")
    assert {r["ID"] for r in rows["train"]} <= set(ids[:n_train])
    assert {r["ID"] for r in rows["test"]} <= set(ids[n_train:])
    kept = {r["ID"] for v in rows.values() for r in v}
    assert {r["ID"] for r in rows["train"]} == kept & set(ids[:n_train])
    assert rows["dev"] == rows["test"] and report["split"]["dev_is_test"] is True
    assert random_split(ids, (85, 0, 15)) == random_split(sorted(ids), (85, 0, 15), seed=42)
    assert random_split(ids, (85, 0, 15), seed=1) != random_split(ids, (85, 0, 15))


def test_speaker_split_without_dev(sample, tmp_path):
    report = prepare_openslr54(str(sample), str(tmp_path / "prep"), split_ratio=(90, 0, 10))
    rows = split_rows(tmp_path / "prep")
    assert report["split"]["dev_is_test"] and rows["dev"] == rows["test"] != []
    assert report["splits"]["train"]["utterances"] + len(rows["test"]) == SAMPLE_KEPT


def test_bad_options(sample, tmp_path):
    with pytest.raises(ValueError):
        prepare_openslr54(str(sample), str(tmp_path), split="by_chance")
    with pytest.raises(ValueError):
        prepare_openslr54(str(sample), str(tmp_path), split_ratio=(90, 10))


# --------------------------------------------------------------------------
# Re-runs and atomic writes
# --------------------------------------------------------------------------
def output_stamps(save):
    return {n: os.stat(os.path.join(save, n)).st_mtime_ns for n in sorted(os.listdir(save))}


def test_rerun_skips_only_when_inputs_and_options_match(sample, tmp_path):
    save = str(tmp_path / "prep")
    first = prepare_openslr54(str(sample), save)
    stamps = output_stamps(save)
    again = prepare_openslr54(str(sample), save, num_workers=1)
    assert again["skipped"] is True and output_stamps(save) == stamps
    assert again["fingerprint"] == first["fingerprint"]
    changed = prepare_openslr54(str(sample), save, min_duration=2.0)
    assert changed["skipped"] is False and changed["fingerprint"] != first["fingerprint"]
    assert changed["drops"]["too_short"] > 0
    # an input change (an audio file removed) also invalidates the outputs
    victim = split_rows(save)["train"][0]["wav"]
    os.remove(victim)
    rerun = prepare_openslr54(str(sample), save, min_duration=2.0)
    assert rerun["skipped"] is False
    assert rerun["drops"]["audio_absent"] == changed["drops"]["audio_absent"] + 1
    # a missing CSV too
    os.remove(os.path.join(save, "dev.csv"))
    assert prepare_openslr54(str(sample), save, min_duration=2.0)["skipped"] is False


@pytest.mark.parametrize("fail_in", ["_write_csv", "_write_json"])
def test_interrupted_write_leaves_no_partial_csv(sample, tmp_path, monkeypatch, fail_in):
    save = str(tmp_path / "prep")
    prepare_openslr54(str(sample), save)
    before = {s: open(os.path.join(save, f"{s}.csv"), "rb").read() for s in prep.SPLITS}
    real = getattr(prep, fail_in)
    calls = []

    def crash(path, data):
        calls.append(path)
        if len(calls) == 2 or fail_in == "_write_json":
            with open(path, "w", encoding="utf-8") as f:
                f.write("ID,dur")  # half-written file
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(prep, fail_in, crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_openslr54(str(sample), save, min_duration=2.0)
    leftovers = sorted(os.listdir(save))
    assert not [n for n in leftovers if n.endswith(".tmp")]
    assert prep.REPORT_NAME not in leftovers  # no report vouching for old CSVs
    for split in prep.SPLITS:  # old CSVs intact, none half-written
        assert open(os.path.join(save, f"{split}.csv"), "rb").read() == before[split]
    monkeypatch.setattr(prep, fail_in, real)
    assert prepare_openslr54(str(sample), save, min_duration=2.0)["skipped"] is False


# --------------------------------------------------------------------------
# Download from a local HTTP server
# --------------------------------------------------------------------------
class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single ``Range: bytes=N-`` support and a request log.
    ``cut_after`` (path -> bytes) drops the connection once, mid-body."""

    log = []
    cut_after = {}

    def log_message(self, *args):
        pass

    def send_head(self):
        self.log.append((self.command, self.path, self.headers.get("Range")))
        path = self.translate_path(self.path)
        header = self.headers.get("Range")
        if not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        start = int(header.split("=")[1].split("-")[0]) if header else 0
        if start >= size > 0:
            self.send_error(416)
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206 if header else 200)
        self.send_header("Content-Type", "application/octet-stream")
        if header:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        cut = self.cut_after.pop(self.path, None) if self.command == "GET" else None
        if cut is not None:
            self.wfile.write(f.read(cut))
            f.close()
            self.close_connection = True
            return None
        return f


@pytest.fixture
def server(tmp_path):
    """Serve the sample shards and a standalone TSV on 127.0.0.1."""
    served = shutil.copytree(SAMPLE_DATA_DIR, tmp_path / "served")
    with zipfile.ZipFile(served / "asr_nepali_0.zip") as zf:
        (served / "utt_spk_text.tsv").write_bytes(zf.read("asr_nepali/utt_spk_text.tsv"))

    def start(handler):
        handler.log, handler.cut_after = [], {}
        httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(served)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/", served

    servers = []
    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_download_resumes_and_prepares(server, tmp_path):
    url, served = server(RangeHandler)
    data = tmp_path / "data"
    data.mkdir()
    original = (served / "asr_nepali_1.zip").read_bytes()
    (data / "asr_nepali_1.zip.part").write_bytes(original[:1000])  # earlier partial
    RangeHandler.cut_after["/asr_nepali_2.zip"] = 5000  # connection drops once
    report = prepare_openslr54(str(data), str(tmp_path / "prep"), download=True,
                               mirror=url, shards="012")
    for name in ("asr_nepali_0.zip", "asr_nepali_1.zip", "asr_nepali_2.zip", "utt_spk_text.tsv"):
        assert (data / name).read_bytes() == (served / name).read_bytes()
    assert not list(data.glob("*.part"))
    assert ("GET", "/asr_nepali_1.zip", "bytes=1000-") in RangeHandler.log
    assert ("GET", "/asr_nepali_2.zip", "bytes=5000-") in RangeHandler.log
    assert report["kept"]["utterances"] == SAMPLE_KEPT
    # complete files are only checked (HEAD), not fetched again
    RangeHandler.log.clear()
    dl.download_openslr54(str(data), "012", mirror=url)
    assert {c for c, _, _ in RangeHandler.log} == {"HEAD"}


def test_download_without_range_support_and_size_checks(server, tmp_path):
    url, served = server(http.server.SimpleHTTPRequestHandler)
    dest = tmp_path / "asr_nepali_0.zip"
    original = (served / "asr_nepali_0.zip").read_bytes()
    (tmp_path / "asr_nepali_0.zip.part").write_bytes(b"x" * 777)  # ignored: restart
    download_file(url + "asr_nepali_0.zip", str(dest))
    assert dest.read_bytes() == original
    dest.write_bytes(original[:-10])  # short complete file: fetched again
    download_file(url + "asr_nepali_0.zip", str(dest))
    assert dest.read_bytes() == original
    with pytest.raises(urllib.error.HTTPError):
        download_file(url + "asr_nepali_f.zip", str(tmp_path / "missing.zip"))


def test_download_oversized_part_is_restarted(server, tmp_path):
    url, served = server(RangeHandler)
    original = (served / "asr_nepali_2.zip").read_bytes()
    (tmp_path / "asr_nepali_2.zip.part").write_bytes(original + b"junk")
    dest = tmp_path / "asr_nepali_2.zip"
    download_file(url + "asr_nepali_2.zip", str(dest))
    assert dest.read_bytes() == original


def test_download_urls_and_mirrors(tmp_path, monkeypatch):
    urls = []
    monkeypatch.setattr(dl, "download_file", lambda url, dest, timeout: urls.append(url) or dest)
    dl.download_openslr54(str(tmp_path), "0f")
    dl.download_openslr54(str(tmp_path), "0", mirror="eu")
    dl.download_openslr54(str(tmp_path), "", mirror="http://127.0.0.1:1/x")
    assert urls == [
        "https://www.openslr.org/resources/54/utt_spk_text.tsv",
        "https://www.openslr.org/resources/54/asr_nepali_0.zip",
        "https://www.openslr.org/resources/54/asr_nepali_f.zip",
        "https://openslr.elda.org/resources/54/utt_spk_text.tsv",
        "https://openslr.elda.org/resources/54/asr_nepali_0.zip",
        "http://127.0.0.1:1/x/utt_spk_text.tsv",
    ]
