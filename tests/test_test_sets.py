"""Tests of recipes/OpenSLR54/prepare_test_sets.py on the committed fixtures
(tests/data/test_sets, made by tests/data/make_test_sets.py in each real
layout) and on variants built from them in tmp_path."""

import csv
import gzip
import io
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
import soundfile as sf

import prepare_test_sets as pts
from prepare_test_sets import (
    TEST_SETS_DIR,
    parse_test_set,
    prepare_common_voice,
    prepare_fleurs,
    prepare_fleurs_hf,
    prepare_openslr43,
    prepare_test_sets,
    prepare_tsv,
)

from speechbrain_w2vbert.audio import read_audio
from speechbrain_w2vbert.text.normalize import normalize_nepali

FLEURS = os.path.join(TEST_SETS_DIR, "fleurs")
FLEURS_LANG = os.path.join(FLEURS, "ne_np")
HF_DISK = os.path.join(TEST_SETS_DIR, "fleurs_hf", "save_to_disk")
HF_PARQUET = os.path.join(TEST_SETS_DIR, "fleurs_hf", "parquet")
CV_RELEASE = os.path.join(TEST_SETS_DIR, "cv", "cv-corpus-17.0-2024-03-15")
CV_LOCALE = os.path.join(CV_RELEASE, "ne-NP")
SLR43 = os.path.join(TEST_SETS_DIR, "openslr43")
GENERIC = os.path.join(TEST_SETS_DIR, "generic", "test.csv")


def read_csv(folder):
    with open(os.path.join(folder, "test.csv"), encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def nonzero(drops):
    return {reason: n for reason, n in drops.items() if n}


def decodes(blob):
    try:
        sf.info(io.BytesIO(blob))
        return True
    except sf.LibsndfileError:
        return False


def tar_member(archive, name):
    with tarfile.open(archive) as tar:
        return tar.extractfile(name).read()


# --------------------------------------------------------------------------
# FLEURS, repository layout
# --------------------------------------------------------------------------
def test_fleurs_archive_split(tmp_path):
    report = prepare_fleurs(FLEURS, str(tmp_path))
    rows = read_csv(tmp_path)
    assert [(r["ID"], r["wrd"], r["spk_id"]) for r in rows] == [
        ("1001", "नमस्ते साथी", ""), ("1002", "म २ वटा किताब किन्छु", "")]
    assert nonzero(report["drops"]) == {"malformed_line": 1, "duplicate_id": 1, "latin_text": 1,
                                        "audio_absent": 1, "unreadable": 1}
    assert report["drop_examples"] == {"malformed_line": ["line 7"], "duplicate_id": ["1001"],
                                       "latin_text": ["1003"], "audio_absent": ["1004"],
                                       "unreadable": ["1005"]}
    assert report["entries"] == 7 and report["kept"]["speakers"] is None
    assert report["kept"]["words"] == 7 and report["notes"]["extra_fields"] == 1
    assert report["notes"]["converted"] == 2
    # archive members are written out as 16 kHz FLAC, sample for sample
    for row in rows:
        original, rate = sf.read(io.BytesIO(tar_member(os.path.join(FLEURS_LANG, "audio", "test.tar.gz"),
                                                       f"test/{row['ID']}.wav")), dtype="int16")
        converted, conv_rate = sf.read(row["wav"], dtype="int16")
        assert rate == conv_rate == 16000 and np.array_equal(original, converted)
        assert float(row["duration"]) == pytest.approx(len(original) / 16000, abs=5e-4)
        assert row["wav"].startswith(str(tmp_path)) and row["wav"].endswith(".flac")
    # the TSV's num_samples column is the clip's length
    with open(os.path.join(FLEURS_LANG, "test.tsv"), encoding="utf-8") as f:
        samples = {line.split("\t")[1]: int(line.split("\t")[5]) for line in f if line.count("\t") >= 6}
    assert samples["1001.wav"] == len(sf.read(rows[0]["wav"])[0])


def test_fleurs_extracted_audio_is_used_in_place(tmp_path):
    report = prepare_fleurs(FLEURS_LANG, str(tmp_path), split="dev")
    rows = read_csv(tmp_path)
    assert [(r["ID"], r["wrd"]) for r in rows] == [("2001", "घर जान्छु"), ("2002", "चिया पिउँछु")]
    assert [r["wav"] for r in rows] == [os.path.join(FLEURS_LANG, "audio", "dev", f"{i}.wav")
                                        for i in ("2001", "2002")]
    assert report["notes"]["converted"] == 0 and not nonzero(report["drops"])
    assert not os.path.exists(tmp_path / "audio")
    # "validation" names the same split; "train" reads train.tar.gz
    assert prepare_fleurs(FLEURS, str(tmp_path / "v"), split="validation")["kept"]["utterances"] == 2
    train = prepare_fleurs(FLEURS, str(tmp_path / "t"), split="train")
    assert [r["wrd"] for r in read_csv(tmp_path / "t")] == ["राम्रो छ"] and train["notes"]["converted"] == 1


def test_fleurs_repository_root_and_missing_split(tmp_path):
    root = tmp_path / "fleurs"
    shutil.copytree(FLEURS_LANG, root / "data" / "ne_np")
    assert prepare_fleurs(str(root), str(tmp_path / "out"))["kept"]["utterances"] == 2
    with pytest.raises(FileNotFoundError, match="no FLEURS"):
        prepare_fleurs(str(tmp_path / "nowhere"), str(tmp_path / "o2"))
    os.remove(root / "data" / "ne_np" / "train.tsv")
    with pytest.raises(FileNotFoundError, match="no train.tsv"):
        prepare_fleurs(str(root), str(tmp_path / "o3"), split="train")


def test_fleurs_damaged_archive_counts_instead_of_crashing(tmp_path):
    lang = tmp_path / "ne_np"
    shutil.copytree(FLEURS_LANG, lang)
    archive = lang / "audio" / "test.tar.gz"
    data = gzip.decompress(archive.read_bytes())
    archive.write_bytes(gzip.compress(data[: len(data) // 3]))  # cut inside the first members
    report = prepare_fleurs(str(lang), str(tmp_path / "out"))
    assert "archive" in report["errors"]
    assert report["kept"]["utterances"] + report["drops"]["audio_absent"] + report["drops"]["unreadable"] == 4
    assert report["drops"]["audio_absent"] >= 1


# --------------------------------------------------------------------------
# FLEURS, Hugging Face datasets folders
# --------------------------------------------------------------------------
@pytest.mark.parametrize("folder", [HF_DISK, HF_PARQUET])
def test_fleurs_hf_against_datasets(folder, tmp_path):
    import datasets

    report = prepare_fleurs_hf(folder, str(tmp_path))
    rows = read_csv(tmp_path)
    assert nonzero(report["drops"]) == {"audio_absent": 1, "unreadable": 1}
    assert report["drop_examples"] == {"audio_absent": ["test_000003"], "unreadable": ["1005"]}
    # the reference: the rows as the datasets library loads them
    if folder == HF_DISK:
        ref = datasets.load_from_disk(folder)["test"]
    else:
        ref = datasets.load_dataset("parquet", data_files=os.path.join(folder, "ne_np", "test-*.parquet"),
                                    split="train")
    ref = ref.cast_column("audio", datasets.Audio(decode=False))
    expected = [(os.path.splitext(os.path.basename(r["audio"]["path"]))[0],
                 normalize_nepali(r["raw_transcription"], True), r["audio"]["bytes"])
                for r in ref if r["audio"] and decodes(r["audio"]["bytes"])]
    assert [(r["ID"], r["wrd"]) for r in rows] == [(i, t) for i, t, _ in expected]
    for row, (_, _, blob) in zip(rows, expected):
        assert np.array_equal(sf.read(row["wav"], dtype="int16")[0], sf.read(io.BytesIO(blob), dtype="int16")[0])


def test_fleurs_hf_split_files(tmp_path):
    assert [os.path.basename(f) for f in pts.hf_data_files(HF_PARQUET, "dev")] == [
        "validation-00000-of-00001.parquet"]
    assert pts.hf_data_files(HF_DISK, "validation") == [
        os.path.join(HF_DISK, "validation", "data-00000-of-00001.arrow")]
    # the hub's other namings: <config>/fleurs-test.parquet and <config>/test/0000.parquet
    test = os.path.join(HF_PARQUET, "ne_np", "test-00000-of-00001.parquet")
    shutil.copy(test, tmp_path / "fleurs-test.parquet")
    (tmp_path / "nested" / "test").mkdir(parents=True)
    shutil.copy(test, tmp_path / "nested" / "test" / "0000.parquet")
    shutil.copy(test, tmp_path / "nested" / "train_0000.parquet")
    assert pts.hf_data_files(str(tmp_path), "test") == [
        str(tmp_path / "fleurs-test.parquet"), str(tmp_path / "nested" / "test" / "0000.parquet")]
    one = prepare_fleurs_hf(str(tmp_path / "fleurs-test.parquet"), str(tmp_path / "out"))
    assert one["kept"]["utterances"] == 2
    with pytest.raises(FileNotFoundError, match="no parquet file of the dev split"):
        pts.hf_data_files(str(tmp_path), "dev")
    with pytest.raises(FileNotFoundError, match="no dev split"):
        pts.hf_data_files(_dict_without_validation(tmp_path), "dev")


def _dict_without_validation(tmp_path):
    folder = tmp_path / "dd"
    shutil.copytree(HF_DISK, folder)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["test"]}))
    return str(folder)


def test_fleurs_hf_needs_audio_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"raw_transcription": ["नमस्ते"]}), tmp_path / "test.parquet")
    with pytest.raises(ValueError, match="needs 'audio'"):
        prepare_fleurs_hf(str(tmp_path), str(tmp_path / "out"))


# --------------------------------------------------------------------------
# Common Voice
# --------------------------------------------------------------------------
def test_common_voice_release_layout(tmp_path):
    report = prepare_common_voice(CV_RELEASE, str(tmp_path))
    rows = read_csv(tmp_path)
    assert [(r["ID"], r["wrd"], r["spk_id"]) for r in rows] == [
        ("common_voice_ne-NP_41000001", "उनले हो भने", "a" * 64 + "1"),
        ("common_voice_ne-NP_41000002", "म २ वटा किताब किन्छु", "b" * 64 + "2")]
    assert nonzero(report["drops"]) == {"latin_text": 1, "empty_text": 1, "audio_absent": 1, "unreadable": 1}
    assert report["drop_examples"]["unreadable"] == ["common_voice_ne-NP_41000003"]
    assert report["drop_examples"]["audio_absent"] == ["common_voice_ne-NP_41000004"]
    assert {k: report["notes"][k] for k in ("bom", "quoted_fields", "extra_fields")} == {
        "bom": True, "quoted_fields": 1, "extra_fields": 1}
    assert report["kept"]["speakers"] == 2 and report["kept"]["words"] == 8
    # the MP3s decode in this environment (libsndfile >= 1.1), and the FLACs are
    # read_audio's 16 kHz waveform of them
    for row in rows:
        mp3 = os.path.join(CV_LOCALE, "clips", row["ID"] + ".mp3")
        assert sf.info(mp3).samplerate == 48000
        expected = read_audio(mp3).numpy()
        converted, rate = sf.read(row["wav"], dtype="float32")
        assert rate == 16000 and converted.shape == expected.shape
        assert np.abs(converted - expected).max() <= 1 / 32768 + 1e-7


@pytest.mark.parametrize("header", [
    # Common Voice 5-7 and 8-12: no variant / accent(s), no sentence_id
    "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\tlocale\tsegment",
    "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment",
])
def test_common_voice_older_releases(header, tmp_path):
    locale = tmp_path / "cv-corpus-11.0-2022-09-21" / "ne-NP"
    shutil.copytree(os.path.join(CV_LOCALE, "clips"), locale / "clips")
    width = header.count("\t") + 1
    lines = [header,
             "\t".join(["spk1", "common_voice_ne-NP_41000002.mp3", "म 2 वटा किताब किन्छु"] + [""] * (width - 3)),
             "\t".join(["spk2", "common_voice_ne-NP_41000001.mp3"])]  # too few fields
    (locale / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = prepare_common_voice(str(locale.parent), str(tmp_path / "out"), tsv="dev.tsv")
    assert [(r["ID"], r["spk_id"], r["wrd"]) for r in read_csv(tmp_path / "out")] == [
        ("common_voice_ne-NP_41000002", "spk1", "म २ वटा किताब किन्छु")]
    assert nonzero(report["drops"]) == {"malformed_line": 1} and report["notes"]["bom"] is False


# --------------------------------------------------------------------------
# OpenSLR 43 and any TSV/CSV
# --------------------------------------------------------------------------
def test_openslr43_resampled_with_speakers(tmp_path):
    report = prepare_openslr43(SLR43, str(tmp_path))
    rows = read_csv(tmp_path)
    assert [(r["ID"], r["spk_id"], r["wrd"]) for r in rows] == [
        ("nep_0258_0000000001", "nep_0258", "नेपाल"), ("nep_0546_0000000002", "nep_0546", "हिमाल")]
    assert nonzero(report["drops"]) == {"empty_file": 1, "audio_absent": 1}
    for row in rows:
        source = os.path.join(SLR43, "ne_np_female", "wavs", row["ID"] + ".wav")
        info = sf.info(source)
        assert info.samplerate == 48000
        converted, rate = sf.read(row["wav"], dtype="float32")
        expected = read_audio(source).numpy()  # SpeechBrain's AudioNormalizer resampling
        assert rate == 16000 and converted.shape == expected.shape == (-(-info.frames // 3),)
        assert np.abs(converted - expected).max() <= 1 / 32768 + 1e-7
        assert float(row["duration"]) == pytest.approx(info.frames / 48000, abs=1e-3)


def test_generic_table_with_column_options(tmp_path):
    report = prepare_tsv(GENERIC, str(tmp_path), id_column="utt", audio_column="file")
    rows = read_csv(tmp_path)
    assert [(r["ID"], r["spk_id"], r["wrd"]) for r in rows] == [
        ("g1", "s1", "नमस्ते साथी"), ("g2", "s2", "म घर जान्छु")]
    assert rows[0]["wav"] == os.path.join(TEST_SETS_DIR, "generic", "audio", "g1.flac")  # 16 kHz: in place
    assert sf.info(rows[1]["wav"]).samplerate == 16000 and report["notes"]["converted"] == 1
    assert nonzero(report["drops"]) == {"empty_text": 1, "audio_absent": 1}
    with pytest.raises(ValueError, match=r"test.csv: no column 'transcript' for the text .*'utt', 'file'"):
        prepare_tsv(GENERIC, str(tmp_path / "x"), id_column="utt", audio_column="file", text_column="transcript")
    # no id column: the file name is the id; a TSV with a BOM and quoted fields
    table = tmp_path / "mine" / "list.tsv"
    shutil.copytree(os.path.join(TEST_SETS_DIR, "generic", "audio"), tmp_path / "mine" / "clips")
    table.write_text('\ufeffpath\ttranscript\n"clips/g1.flac"\t"नमस्ते ""साथी"""\n', encoding="utf-8")
    report = prepare_tsv(str(table), str(tmp_path / "y"))
    assert [(r["ID"], r["wrd"]) for r in read_csv(tmp_path / "y")] == [("g1", "नमस्ते साथी")]
    assert report["notes"]["bom"] is True


# --------------------------------------------------------------------------
# Rules shared by all layouts
# --------------------------------------------------------------------------
def test_digits_and_latin_options(tmp_path):
    prepare_fleurs(FLEURS, str(tmp_path / "a"), ascii_digits_to_devanagari=False, keep_latin=True)
    assert [r["wrd"] for r in read_csv(tmp_path / "a")] == ["नमस्ते साथी", "म 2 वटा किताब किन्छु",
                                                            "nasa and esa"]


def test_duration_bounds(tmp_path):
    report = prepare_openslr43(SLR43, str(tmp_path), min_duration=0.42, max_duration=None)
    assert report["drop_examples"]["too_short"] == ["nep_0546_0000000002"]
    report = prepare_openslr43(SLR43, str(tmp_path), max_duration=0.42)
    assert report["drop_examples"]["too_long"] == ["nep_0258_0000000001"]


def test_rerun_skips_only_when_inputs_and_options_match(tmp_path):
    first = prepare_common_voice(CV_RELEASE, str(tmp_path))
    stamps = {n: os.stat(tmp_path / n).st_mtime_ns for n in ("test.csv", "prep_report.json")}
    again = prepare_common_voice(CV_RELEASE, str(tmp_path))
    assert again["skipped"] and again["fingerprint"] == first["fingerprint"]
    assert stamps == {n: os.stat(tmp_path / n).st_mtime_ns for n in stamps}
    assert not prepare_common_voice(CV_RELEASE, str(tmp_path), keep_latin=True)["skipped"]
    # a changed clip (size/mtime) is a changed input
    release = tmp_path / "release"
    shutil.copytree(CV_RELEASE, release)
    prepare_common_voice(str(release), str(tmp_path / "r"))
    assert prepare_common_voice(str(release), str(tmp_path / "r"))["skipped"]
    clip = release / "ne-NP" / "clips" / "common_voice_ne-NP_41000003.mp3"
    shutil.copy(os.path.join(CV_LOCALE, "clips", "common_voice_ne-NP_41000001.mp3"), clip)
    redone = prepare_common_voice(str(release), str(tmp_path / "r"))
    assert not redone["skipped"] and redone["kept"]["utterances"] == 3
    assert not [n for n in os.listdir(tmp_path / "r") if n.endswith(".tmp")]


def test_archive_rerun_removes_stale_conversions(tmp_path):
    prepare_fleurs(FLEURS, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "audio")) == ["1001.flac", "1002.flac"]
    prepare_fleurs(FLEURS, str(tmp_path), min_duration=0.7)  # 1001 (0.63 s) is dropped now
    assert sorted(os.listdir(tmp_path / "audio")) == ["1002.flac"]


def test_interrupted_write_leaves_the_old_outputs_unvouched(tmp_path, monkeypatch):
    prepare_openslr43(SLR43, str(tmp_path))
    import openslr54_prepare

    def fail(path, data):
        raise OSError("disk full")

    monkeypatch.setattr(openslr54_prepare, "_write_json", fail)
    with pytest.raises(OSError, match="disk full"):
        prepare_openslr43(SLR43, str(tmp_path), keep_latin=True)
    assert not os.path.exists(tmp_path / "prep_report.json")  # no report vouches for a stale CSV
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_unreadable_index_bytes_and_empty_files(tmp_path):
    folder = tmp_path / "ne_np_female"
    shutil.copytree(os.path.join(SLR43, "ne_np_female"), folder)
    (folder / "line_index.tsv").write_bytes(b"nep_0258_0000000001\t\xff\xfe\xe0\xa4\xa8\n\nonly_id\n"
                                            b"nep_0546_0000000002\ta\tb\n")
    report = prepare_openslr43(str(tmp_path), str(tmp_path / "out"))
    # bytes that are not UTF-8 become U+FFFD, kept and listed outside the inventory
    assert report["kept"]["utterances"] == 1 and read_csv(tmp_path / "out")[0]["wrd"] == "\ufffd\ufffdन"
    assert report["out_of_inventory"] == {"\ufffd": 2}
    assert report["drop_examples"]["malformed_line"] == ["line 3", "line 4"]
    (folder / "line_index.tsv").write_text("")
    assert prepare_openslr43(str(tmp_path), str(tmp_path / "empty"))["kept"]["utterances"] == 0
    assert read_csv(tmp_path / "empty") == []


# --------------------------------------------------------------------------
# Specs and the dispatcher
# --------------------------------------------------------------------------
def test_parse_test_set():
    assert parse_test_set("fleurs:/d/ne_np") == pts.SetSpec("fleurs", "fleurs", "/d/ne_np", {})
    assert parse_test_set("fleurs:/d/ne_np?split=dev").name == "fleurs_dev"
    assert parse_test_set({"mine": "tsv:/x/a b.csv?audio_column=file&text_column=t"}) == pts.SetSpec(
        "mine", "tsv", "/x/a b.csv", {"audio_column": "file", "text_column": "t"})
    for bad, message in [("fleur:/x", "layout among"), ("cv:", "no path"), ("cv:/x?split=dev", "unknown option"),
                         ("a/b: cv:/x", "must be letters"), ({"a": "cv:/x", "b": "cv:/y"}, "one 'name")]:
        with pytest.raises(ValueError, match=message):
            parse_test_set(bad)


def test_prepare_test_sets_dispatches_each_layout(tmp_path):
    specs = ["fleurs:" + FLEURS, "fleurs_dev: fleurs:" + FLEURS_LANG + "?split=dev",
             {"hf": "fleurs_hf:" + HF_PARQUET}, "cv: cv:" + CV_RELEASE, "openslr43:" + SLR43,
             "gen: tsv:" + GENERIC + "?id_column=utt&audio_column=file"]
    reports = prepare_test_sets(specs, str(tmp_path))
    assert {n: r["kept"]["utterances"] for n, r in reports.items()} == {
        "fleurs": 2, "fleurs_dev": 2, "hf": 2, "cv": 2, "openslr43": 2, "gen": 2}
    assert {n: r["layout"] for n, r in reports.items()} == {
        "fleurs": "fleurs", "fleurs_dev": "fleurs", "hf": "fleurs_hf", "cv": "cv", "openslr43": "openslr43",
        "gen": "tsv"}
    for name in reports:
        with open(tmp_path / name / "prep_report.json", encoding="utf-8") as f:
            assert json.load(f)["kept"] == reports[name]["kept"]
    with pytest.raises(ValueError, match="unique"):
        prepare_test_sets(["cv:" + CV_RELEASE, "cv:" + CV_RELEASE], str(tmp_path))
