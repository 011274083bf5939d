#!/usr/bin/env python3
"""Generate the bundled OpenSLR 54 sample corpus (synthetic Nepali speech).

The output copies OpenSLR 54's layout exactly: shards ``asr_nepali_<c>.zip``
(``c`` = first hex character of the utterance id), each holding the full
``asr_nepali/utt_spk_text.tsv`` (tab separated, no header: 10-hex-char
utterance id, 5-hex-char speaker id, transcript) and the shard's
``asr_nepali/data/<first two chars of id>/<id>.flac`` files (16 kHz, mono,
16-bit FLAC).

Speech comes from ``espeak-ng -v ne`` (14 "speakers": voice variants with
their own speed, pitch and amplitude, 20 utterances each, 1.3-4.2 s long:
about 11.6 minutes and 10.3 MB in 3 shards), converted by ``sox``. Sentences are
built from a small pool of real Nepali words so that characters recur a lot,
and the transcripts carry the messiness of the real corpus (danda, double
danda, commas, question marks, quotes, ZWJ/ZWNJ, NBSP, Devanagari digits, a
few Latin words). Some entries are deliberately bad so that data preparation
always exercises its error handling:

- a TSV line whose audio is missing from every shard,
- a truncated (corrupt) FLAC,
- a zero-byte FLAC,
- an empty transcript and a punctuation-only transcript,
- a duplicated utterance id (second TSV line with another transcript).

Everything is deterministic (fixed seed, fixed zip timestamps), so re-running
the script reproduces the committed zips byte for byte, given the same
espeak-ng and sox versions (committed with espeak-ng 1.51 and SoX 14.4.2 of
Debian 12). Only this script needs espeak-ng and sox; the
tests use the committed zips.

Usage::

    python recipes/OpenSLR54/make_sample_corpus.py [--out DIR] [--seed 54]
"""

import argparse
import csv
import json
import logging
import os
import random
import shutil
import subprocess
import tempfile
import zipfile
from typing import Dict, List, Tuple

logger = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "sample_data")
SHARDS = "012"
UTTS_PER_SPEAKER = 20
MIN_SECONDS, MAX_SECONDS = 1.3, 4.2
ZIP_DATE = (2018, 1, 1, 0, 0, 0)
ZWJ, ZWNJ, NBSP, ZWSP, BOM = "\u200d", "\u200c", "\u00a0", "\u200b", "\ufeff"
HALANT = "\u094d"

# (espeak voice, speed wpm, pitch 0-99, amplitude): 14 speakers of one kind.
VOICES: List[Tuple[str, int, int, int]] = [
    ("ne", 165, 50, 45),
    ("ne+m1", 160, 45, 50),
    ("ne+m2", 175, 40, 40),
    ("ne+m3", 155, 55, 45),
    ("ne+m4", 170, 35, 50),
    ("ne+m5", 180, 50, 40),
    ("ne+m6", 165, 60, 45),
    ("ne+f1", 160, 55, 40),
    ("ne+f2", 170, 50, 45),
    ("ne+f3", 175, 60, 40),
    ("ne+f4", 155, 45, 50),
    ("ne+f5", 165, 65, 45),
    ("ne+m1", 185, 60, 40),
    ("ne+f2", 150, 40, 50),
]

# Subject: (text, possessive, verb class). Classes: m, f (3rd person singular),
# s1 (I), p1 (we), p3 (they), s2 (you, familiar).
SUBJECTS = [
    ("राम", "रामको", "m"),
    ("हरि", "हरिको", "m"),
    ("मेरो भाइ", "मेरो भाइको", "m"),
    ("किसान", "किसानको", "m"),
    ("शिक्षक", "शिक्षकको", "m"),
    ("सीता", "सीताको", "f"),
    ("गीता", "गीताको", "f"),
    ("मेरी बहिनी", "मेरी बहिनीको", "f"),
    ("आमा", "आमाको", "f"),
    ("म", "मेरो", "s1"),
    ("हामी", "हाम्रो", "p1"),
    ("उनीहरू", "उनीहरूको", "p3"),
]
CLASSES = ("m", "f", "s1", "p1", "p3", "s2")
# Present tense stems; endings per class (consonant stems take the halant form).
ENDINGS = {"m": "छ", "f": "छिन्", "s1": "छु", "p1": "छौं", "p3": "छन्", "s2": "छौ"}
STEMS = {
    "go": "जान्", "eat": "खान्", "read": "पढ्", "write": "लेख्", "buy": "किन्",
    "see": "हेर्", "sit": "बस्", "come": "आउँ", "drink": "पिउँ", "do": "गर्",
    "play": "खेल्",
}
PAST_GO = {"m": "गयो", "f": "गइन्", "s1": "गएँ", "p1": "गयौं", "p3": "गए", "s2": "गयौ"}
TIME = ["आज", "भोलि", "बिहान", "बेलुका", "सधैं", "अहिले", "दिउँसो"]
PLACE = ["घर", "विद्यालय", "बजार", "काठमाडौं", "पोखरा", "गाउँ", "खेत", "मन्दिर",
         "कार्यालय", "अस्पताल"]
FOOD = ["भात", "दाल", "रोटी", "मम", "तरकारी", "फलफूल", "मासु"]
DRINK = ["चिया", "पानी", "दूध", "कफी"]
READ = ["पुस्तक", "पत्रिका", "कथा", "कविता", "चिठी"]
WRITE = ["चिठी", "कथा", "कविता", "गृहकार्य"]
BUY = ["कपडा", "जुत्ता", "तरकारी", "फलफूल", "किताब"]
GAME = ["फुटबल", "चेस", "लुकामारी"]
LOOK = ["टेलिभिजन", "चलचित्र", "हिमाल"]
PLACE_ADJ = ["राम्रो", "सफा", "ठूलो", "सानो", "सुन्दर", "शान्त"]
THING_ADJ = ["नयाँ", "पुरानो", "राम्रो", "सस्तो", "महँगो"]
INTENS = ["धेरै", "एकदम", "अलि"]
YEARS = ["२००५", "२०१०", "२०७२", "१९९०"]
COUNTS = ["३", "५", "१०"]
LATIN = ["office", "mobile", "email", "bus"]


def verb(action: str, cls: str) -> str:
    """Conjugate ``action`` (a key of ``STEMS``) for subject class ``cls``."""
    return STEMS[action] + ENDINGS[cls]


def sentence(rng: random.Random) -> str:
    """Return one clean Nepali sentence of 3-10 words (no punctuation)."""
    subj, poss, cls = rng.choice(SUBJECTS)
    t, p = rng.choice(TIME), rng.choice(PLACE)
    kind = rng.randrange(14)
    if kind == 0:
        words = [subj, t, p, verb("go", cls)]
    elif kind == 1:
        words = [subj, t, rng.choice(FOOD), verb("eat", cls)]
    elif kind == 2:
        words = [subj, t, rng.choice(INTENS), rng.choice(DRINK), verb("drink", cls)]
    elif kind == 3:
        words = [subj, p + "मा", rng.choice(READ), verb("read", cls)]
    elif kind == 4:
        words = [subj, t, rng.choice(WRITE), verb("write", cls)]
    elif kind == 5:
        words = [subj, p + "बाट", t, verb("come", cls)]
    elif kind == 6:
        words = [p, rng.choice(INTENS), rng.choice(PLACE_ADJ), "छ"]
    elif kind == 7:
        words = [poss, "घर", p + "मा", "छ"]
    elif kind == 8:
        words = [subj, t, p + "मा", rng.choice(GAME), verb("play", cls)]
    elif kind == 9:
        words = ["तिमी", t, "कहाँ", verb("go", "s2")]
    elif kind == 10:
        words = [subj, t, p + "मा", "काम", verb("do", cls)]
    elif kind == 11:
        words = ["हिजो", subj, p, PAST_GO[cls]]
    elif kind == 12:
        words = [subj, rng.choice(THING_ADJ), rng.choice(BUY), verb("buy", cls)]
    else:
        words = [subj, t, rng.choice(LOOK), verb("see", cls)]
    return " ".join(words)


def special_sentence(rng: random.Random, kind: str) -> str:
    """Return a sentence with Devanagari/ASCII digits or Latin words."""
    subj, _, cls = rng.choice(SUBJECTS)
    if kind == "year":
        return f"{rng.choice(YEARS)} मा {subj} {rng.choice(PLACE)} {PAST_GO[cls]}"
    if kind == "count":
        return f"{subj} {rng.choice(COUNTS)} वटा {rng.choice(BUY)} {verb('buy', cls)}"
    if kind == "ascii":
        return f"{subj} 2 वटा {rng.choice(BUY)} {verb('buy', cls)}"
    return f"{subj} {rng.choice(TIME)} {rng.choice(LATIN)} {verb('go', cls)}"


def messy(text: str, rng: random.Random) -> str:
    """Dress a clean sentence like a real OpenSLR 54 transcript."""
    words = text.split(" ")
    if len(words) > 3 and words[0] not in ("मेरो", "मेरी") and rng.random() < 0.15:
        words[0] += ","
    if rng.random() < 0.05:
        i = rng.randrange(len(words))
        words[i] = "“" + words[i] + "”"
    if rng.random() < 0.04:
        words[-2] += "-" + words[-2]
    text = " ".join(words)
    if rng.random() < 0.1:
        i = text.find(HALANT)
        if 0 <= i < len(text) - 1 and text[i + 1] != " ":
            text = text[: i + 1] + rng.choice([ZWJ, ZWJ, ZWNJ]) + text[i + 1 :]
    if rng.random() < 0.08:
        text = text.replace(" ", NBSP, 1)
    if rng.random() < 0.03:
        text = text.replace(" ", "  ", 1)
    if text.startswith("तिमी"):
        end = "?"
    else:
        end = rng.choices(["।", "॥", "!", " ।", ""], [70, 3, 3, 4, 20])[0]
    text += end
    if rng.random() < 0.02:
        text = rng.choice([ZWSP, BOM]) + text
    return text


def synth(text: str, voice: Tuple[str, int, int, int], path: str) -> float:
    """Speak ``text`` with ``voice`` into a 16 kHz mono FLAC; return seconds."""
    name, speed, pitch, amp = voice
    wav = subprocess.run(
        ["espeak-ng", "-v", name, "-s", str(speed), "-p", str(pitch),
         "-a", str(amp), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    subprocess.run(
        ["sox", "-D", "-t", "wav", "-", "-C", "8", "-r", "16000", "-c", "1",
         "-b", "16", path, "pad", "0.1", "0.1"],
        input=wav, check=True, capture_output=True,
    )
    out = subprocess.run(["soxi", "-D", path], check=True, capture_output=True)
    return float(out.stdout)


def fresh_id(rng: random.Random, n: int, taken: set, shards: str = "") -> str:
    """New random lower-case hex id of ``n`` chars, not in ``taken`` (which
    gets it), starting with one of ``shards`` if given."""
    while True:
        first = rng.choice(shards) if shards else ""
        uid = first + "".join(rng.choice("0123456789abcdef") for _ in range(n - len(first)))
        if uid not in taken:
            taken.add(uid)
            return uid


def generate(work: str, seed: int) -> Tuple[List[List[str]], Dict[str, float]]:
    """Synthesize all utterances under ``work/asr_nepali``.

    Returns the TSV rows (in file order) and the duration of every FLAC.
    """
    rng = random.Random(seed)
    data = os.path.join(work, "asr_nepali", "data")
    speaker_ids: set = set()
    speakers = [fresh_id(rng, 5, speaker_ids) for _ in VOICES]
    used, rows, durations = set(), [], {}
    specials = ["year", "year", "count", "count", "ascii", "latin", "latin", "latin"]
    n_total = len(VOICES) * UTTS_PER_SPEAKER
    special_at = dict(zip(rng.sample(range(n_total), len(specials)), specials))
    for k in range(n_total):
        spk_i = k % len(VOICES)
        uid = fresh_id(rng, 10, used, SHARDS)
        path = os.path.join(data, uid[:2], uid + ".flac")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        for _ in range(20):
            clean = special_sentence(rng, special_at[k]) if k in special_at else sentence(rng)
            text = messy(clean, rng)
            dur = synth(text, VOICES[spk_i], path)
            if MIN_SECONDS <= dur <= MAX_SECONDS:
                break
        rows.append([uid, speakers[spk_i], text])
        durations[uid] = dur
    add_bad_entries(rng, rows, durations, data, speakers, used)
    return rows, durations


def add_bad_entries(
    rng: random.Random,
    rows: List[List[str]],
    durations: Dict[str, float],
    data: str,
    speakers: List[str],
    used: set,
) -> None:
    """Spoil some entries in place (see the module docstring); log their ids."""
    good = [r for r in rows if r[2].strip()]
    # 1. truncated FLAC (its transcript is fine, so only the audio check catches it)
    victim = good[5][0]
    path = os.path.join(data, victim[:2], victim + ".flac")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size * 2 // 5)
    # 2. zero-byte FLAC
    empty = good[11][0]
    open(os.path.join(data, empty[:2], empty + ".flac"), "wb").close()
    # 3. empty transcript and punctuation-only transcript (audio is fine)
    good[17][2] = ""
    good[23][2] = "।"
    # 4. TSV line whose audio is absent from every shard
    missing = fresh_id(rng, 10, used, "1")
    rows.append([missing, speakers[3], "यो आवाज हराएको छ।"])
    # 5. duplicated id (second line, other speaker and text): the first one wins
    dup = good[29]
    rows.append([dup[0], speakers[7], "यो दोहोरिएको पङ्क्ति हो।"])
    rows.sort(key=lambda r: r[0])
    bad = {"truncated_flac": victim, "empty_flac": empty, "empty_text": good[17][0],
           "punctuation_only_text": good[23][0], "missing_audio": missing,
           "duplicate_id": dup[0]}
    logger.info("bad entries: %s", json.dumps(bad))
    for uid in (victim, empty):
        durations.pop(uid, None)


def write_shards(work: str, out: str, rows: List[List[str]]) -> List[str]:
    """Zip ``work/asr_nepali`` into one shard per first hex character."""
    tsv = os.path.join(work, "asr_nepali", "utt_spk_text.tsv")
    with open(tsv, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE,
                   quotechar=None).writerows(rows)
    os.makedirs(out, exist_ok=True)
    written = []
    data = os.path.join(work, "asr_nepali", "data")
    for shard in SHARDS:
        dest = os.path.join(out, f"asr_nepali_{shard}.zip")
        with zipfile.ZipFile(dest + ".tmp", "w") as zf:
            add_member(zf, tsv, "asr_nepali/utt_spk_text.tsv", zipfile.ZIP_DEFLATED)
            for sub in sorted(d for d in os.listdir(data) if d.startswith(shard)):
                for name in sorted(os.listdir(os.path.join(data, sub))):
                    add_member(zf, os.path.join(data, sub, name),
                               f"asr_nepali/data/{sub}/{name}", zipfile.ZIP_STORED)
        os.replace(dest + ".tmp", dest)
        written.append(dest)
    return written


def add_member(zf: zipfile.ZipFile, path: str, arcname: str, method: int) -> None:
    """Add ``path`` as ``arcname`` with a fixed timestamp (reproducible zips)."""
    info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
    info.compress_type = method
    info.external_attr = 0o644 << 16
    with open(path, "rb") as f:
        zf.writestr(info, f.read())


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder for the zips")
    parser.add_argument("--seed", type=int, default=54, help="random seed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for tool in ("espeak-ng", "sox", "soxi"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install espeak-ng sox)")
    with tempfile.TemporaryDirectory() as work:
        rows, durations = generate(work, args.seed)
        shards = write_shards(work, args.out, rows)
    mb = sum(os.path.getsize(s) for s in shards) / 1e6
    logger.info(
        "%d TSV lines, %d speakers, %.1f s of valid audio, %d shards, %.2f MB",
        len(rows), len({r[1] for r in rows}), sum(durations.values()), len(shards), mb,
    )


if __name__ == "__main__":
    main()
