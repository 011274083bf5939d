#!/usr/bin/env python3
"""Regenerate the committed test-set fixtures in tests/data/test_sets/.

Each folder copies the layout of a real Nepali test set (see
docs/test-sets.md), with a few espeak-ng utterances and the bad inputs the
preparers must count rather than crash on:

- ``fleurs/ne_np``: google/fleurs' layout: headerless ``test.tsv``,
  ``dev.tsv``, ``train.tsv`` (id, file name, raw transcription, normalised
  transcription, characters, number of samples, gender); test and train
  audio in ``audio/<split>.tar.gz`` (members ``<split>/<file>``), dev audio
  extracted in ``audio/dev/`` (16 kHz WAV). test.tsv holds a duplicated file
  name, a line of three fields, a line with an eighth field, a Latin-only
  sentence, a clip missing from the archive and an archive member that is
  not audio.
- ``fleurs_hf``: the same FLEURS rows (features of the FLEURS loading
  script, audio bytes embedded) written by ``datasets``:
  ``save_to_disk`` of a DatasetDict (test, validation) and parquet shards
  ``ne_np/{test,validation}-00000-of-00001.parquet``; the test split has a
  row whose bytes are not audio and one without audio (null).
- ``cv/cv-corpus-17.0-2024-03-15/ne-NP``: Common Voice 17's ``test.tsv``
  (byte-order mark, the release's 13 columns, a quoted sentence, a row with
  an extra field, an empty and a Latin-only sentence) and MP3 clips in
  ``clips/`` (48 kHz, 32 kb/s; one is not an MP3, one is missing).
- ``openslr43/ne_np_female``: ``line_index.tsv`` (``<id>\\t<text>`` and
  ``<id>\\t\\t<text>`` lines) and ``wavs/`` at 48 kHz, with a 0-byte WAV and
  a missing one.
- ``generic``: ``test.csv`` with its own column names, a quoted field with a
  comma, a 16 kHz FLAC, an 8 kHz WAV, an empty transcript and a missing file.

Needs espeak-ng and sox (with MP3 support: libsox-fmt-mp3), and the
``datasets`` package; the tests only read the committed files. Output is
deterministic for given espeak-ng/sox versions (committed with espeak-ng
1.51 and SoX 14.4.2 of Debian 12, datasets 5.2.0, pyarrow 26.0.1).

Usage::

    python tests/data/make_test_sets.py [--out tests/data/test_sets]
"""

import argparse
import gzip
import io
import os
import shutil
import subprocess
import tarfile
import tempfile

import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "test_sets")
NOT_AUDIO = b"this is not audio at all, only text bytes\n" * 4

# (file stem, raw transcription, gender): FLEURS rows.
FLEURS_TEST = [
    ("1001", "नमस्ते साथी ।", "MALE"),
    ("1002", "म 2 वटा किताब किन्छु।", "FEMALE"),
    ("1003", "NASA and ESA", "MALE"),
    ("1004", "पानी परेको छ।", "FEMALE"),
    ("1005", "आज बिहान ।", "MALE"),
]
FLEURS_DEV = [("2001", "घर जान्छु।", "FEMALE"), ("2002", "चिया पिउँछु ।", "MALE")]
FLEURS_TRAIN = [("3001", "राम्रो छ।", "MALE")]


def synth(text: str, path: str, rate: int, voice: str = "ne", speed: int = 280, extra=()) -> None:
    """Speak ``text`` with espeak-ng into ``path`` (format from its
    extension), mono, 16-bit, at ``rate`` Hz, without dither."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         check=True, capture_output=True).stdout
    subprocess.run(["sox", "-D", "-t", "wav", "-", *extra, "-r", str(rate), "-c", "1", "-b", "16",
                    path], input=wav, check=True, capture_output=True)


def fleurs_line(uid, raw, gender, n_samples, extra=()):
    """One FLEURS TSV line: id, file, raw, normalised, characters, samples, gender."""
    normalised = " ".join(raw.replace("।", " ").split()).lower()
    chars = " ".join(" ".join(word) + " |" for word in normalised.split())
    return "\t".join([uid, f"{uid}.wav", raw, normalised, chars, str(n_samples), gender, *extra])


def reproducible_tar_gz(path: str, members) -> None:
    """Write ``members`` ((name, bytes) pairs) as a tar.gz with fixed
    metadata, so that the file depends on the contents only."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue())


def make_fleurs(out: str, work: str) -> dict:
    """The google/fleurs layout; returns the clips' bytes by stem."""
    lang = os.path.join(out, "fleurs", "ne_np")
    os.makedirs(os.path.join(lang, "audio", "dev"), exist_ok=True)
    clips = {}
    for uid, raw, _ in FLEURS_TEST[:3] + FLEURS_DEV + FLEURS_TRAIN:
        path = os.path.join(work, uid + ".wav")
        synth(raw.replace("2", "दुई"), path, 16000)
        with open(path, "rb") as f:
            clips[uid] = f.read()
    clips["1005"] = NOT_AUDIO

    def samples(uid):
        return sf.info(io.BytesIO(clips[uid])).frames if uid in clips and uid != "1005" else 0

    test = [fleurs_line(u, r, g, samples(u) or 20000, ("extra",) if u == "1002" else ())
            for u, r, g in FLEURS_TEST]
    test.insert(3, fleurs_line("1001", "दोहोरिएको पङ्क्ति", "MALE", samples("1001")))
    test.append("1006\t1006.wav\tअधुरो पङ्क्ति")
    with open(os.path.join(lang, "test.tsv"), "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(test) + "\n")
    for name, rows in (("dev", FLEURS_DEV), ("train", FLEURS_TRAIN)):
        with open(os.path.join(lang, f"{name}.tsv"), "w", encoding="utf-8", newline="") as f:
            f.write("\n".join(fleurs_line(u, r, g, samples(u)) for u, r, g in rows) + "\n")
    reproducible_tar_gz(os.path.join(lang, "audio", "test.tar.gz"),
                        [(f"test/{u}.wav", clips[u]) for u in ("1001", "1002", "1003", "1005")])
    reproducible_tar_gz(os.path.join(lang, "audio", "train.tar.gz"), [("train/3001.wav", clips["3001"])])
    for uid, _, _ in FLEURS_DEV:
        with open(os.path.join(lang, "audio", "dev", f"{uid}.wav"), "wb") as f:
            f.write(clips[uid])
    return clips


def make_fleurs_hf(out: str, clips: dict) -> None:
    """FLEURS as ``datasets`` saves it: save_to_disk and parquet shards."""
    import datasets

    names = sorted(["af_za", "ne_np"])  # a stand-in for the 102 configurations' lang_id names
    plain = datasets.Features({
        "id": datasets.Value("int32"), "num_samples": datasets.Value("int32"),
        "path": datasets.Value("string"),
        "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
        "transcription": datasets.Value("string"), "raw_transcription": datasets.Value("string"),
        "gender": datasets.ClassLabel(names=["male", "female", "other"]),
        "lang_id": datasets.ClassLabel(names=names), "language": datasets.Value("string"),
        "lang_group_id": datasets.ClassLabel(names=["south_asian_sa"]),
    })
    features = plain.copy()
    features["audio"] = datasets.Audio(sampling_rate=16000)  # what the FLEURS script declares

    def rows(split, items):
        data = {k: [] for k in plain}
        for uid, raw, gender in items:
            blob = clips.get(uid)
            data["id"].append(int(uid))
            data["num_samples"].append(sf.info(io.BytesIO(blob)).frames if uid in ("1001", "1002", "2001") else 0)
            data["path"].append(None)
            data["audio"].append({"bytes": blob, "path": f"{split}/{uid}.wav"} if blob else None)
            data["transcription"].append(" ".join(raw.replace("।", " ").split()).lower())
            data["raw_transcription"].append(raw)
            data["gender"].append(["MALE", "FEMALE"].index(gender))
            data["lang_id"].append(names.index("ne_np"))
            data["language"].append("Nepali")
            data["lang_group_id"].append(0)
        return datasets.Dataset.from_dict(data, features=plain).cast(features)

    test_items = [FLEURS_TEST[0], FLEURS_TEST[1], FLEURS_TEST[4], FLEURS_TEST[3]]  # 1005: not audio; 1004: none
    dd = datasets.DatasetDict({"test": rows("test", test_items), "validation": rows("dev", FLEURS_DEV[:1])})
    target = os.path.join(out, "fleurs_hf", "save_to_disk")
    shutil.rmtree(target, ignore_errors=True)
    dd.save_to_disk(target)
    parquet = os.path.join(out, "fleurs_hf", "parquet", "ne_np")
    os.makedirs(parquet, exist_ok=True)
    for split, ds in dd.items():
        ds.to_parquet(os.path.join(parquet, f"{split}-00000-of-00001.parquet"))


def make_common_voice(out: str, work: str) -> None:
    """Common Voice 17.0's layout for ne-NP: test.tsv and MP3 clips."""
    locale = os.path.join(out, "cv", "cv-corpus-17.0-2024-03-15", "ne-NP")
    clips = os.path.join(locale, "clips")
    os.makedirs(clips, exist_ok=True)
    header = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
              "age", "gender", "accents", "variant", "locale", "segment"]
    spk = {1: "a" * 64 + "1", 2: "b" * 64 + "2", 3: "c" * 64 + "3"}
    rows = [  # (speaker, clip number, sentence as written in the TSV, spoken text or None, extra fields)
        (1, 1, '"उनले ""हो"" भने ।"', "उनले हो भने", ()),
        (2, 2, "म 2 वटा किताब किन्छु", "म दुई वटा किताब किन्छु", ("stray",)),
        (1, 3, "यो क्लिप बिग्रेको छ", None, ()),
        (3, 4, "यो क्लिप हराएको छ", None, ()),
        (2, 5, "", None, ()),
        (3, 6, "Hello world", None, ()),
    ]
    lines = ["\t".join(header)]
    for who, number, sentence, spoken, extra in rows:
        name = f"common_voice_ne-NP_4100000{number}.mp3"
        lines.append("\t".join([spk[who], name, f"{number:064x}", sentence, "", "2", "0", "twenties",
                                "male_masculine", "", "", "ne-NP", "", *extra]))
        if spoken:
            wav = os.path.join(work, f"cv{number}.wav")
            synth(spoken, wav, 48000)
            subprocess.run(["sox", wav, "-C", "32", os.path.join(clips, name)], check=True, capture_output=True)
    with open(os.path.join(clips, "common_voice_ne-NP_41000003.mp3"), "wb") as f:
        f.write(NOT_AUDIO)
    with open(os.path.join(locale, "test.tsv"), "w", encoding="utf-8-sig", newline="") as f:
        f.write("\n".join(lines) + "\n")


def make_openslr43(out: str) -> None:
    """OpenSLR 43's layout: line_index.tsv and 48 kHz WAVs."""
    folder = os.path.join(out, "openslr43", "ne_np_female")
    wavs = os.path.join(folder, "wavs")
    os.makedirs(wavs, exist_ok=True)
    synth("नेपाल", os.path.join(wavs, "nep_0258_0000000001.wav"), 48000, "ne+f2")
    synth("हिमाल", os.path.join(wavs, "nep_0546_0000000002.wav"), 48000, "ne+f4")
    open(os.path.join(wavs, "nep_0546_0000000003.wav"), "wb").close()
    lines = ["nep_0258_0000000001\tनेपाल", "nep_0546_0000000002\t\tहिमाल ।",
             "nep_0546_0000000003\tखाली फाइल", "nep_0283_0000000004\tहराएको फाइल"]
    with open(os.path.join(folder, "line_index.tsv"), "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")


def make_generic(out: str) -> None:
    """A CSV with its own column names, relative audio paths and quoting."""
    folder = os.path.join(out, "generic")
    os.makedirs(os.path.join(folder, "audio"), exist_ok=True)
    synth("नमस्ते साथी", os.path.join(folder, "audio", "g1.flac"), 16000)
    synth("म घर जान्छु", os.path.join(folder, "audio", "g2.wav"), 8000)
    with open(os.path.join(folder, "test.csv"), "w", encoding="utf-8", newline="") as f:
        f.write("utt,file,text,speaker,notes\n"
                'g1,audio/g1.flac,"नमस्ते, साथी",s1,ok\n'
                "g2,audio/g2.wav,म घर जान्छु,s2,8 kHz\n"
                "g3,audio/g1.flac,,s1,empty transcript\n"
                "g4,audio/missing.flac,केही,s2,no such file\n")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install espeak-ng sox libsox-fmt-mp3)")
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    with tempfile.TemporaryDirectory() as work:
        clips = make_fleurs(args.out, work)
        make_fleurs_hf(args.out, clips)
        make_common_voice(args.out, work)
    make_openslr43(args.out)
    make_generic(args.out)
    total = sum(os.path.getsize(os.path.join(r, n)) for r, _, files in os.walk(args.out) for n in files)
    print(f"wrote {args.out}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
