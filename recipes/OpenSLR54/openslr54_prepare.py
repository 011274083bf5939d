"""Data preparation for OpenSLR 54 (Large Nepali ASR training data set).

OpenSLR 54 ships 157,905 utterances in 16 shards ``asr_nepali_{0..9,a..f}.zip``
(shard = first hex character of the utterance id), each holding
``asr_nepali/utt_spk_text.tsv`` (tab separated, no header: utterance id,
speaker id, transcript) and ``asr_nepali/data/<id[:2]>/<id>.flac``.
:func:`prepare_openslr54` turns any of the zips (all or a subset), or an
already extracted ``asr_nepali/`` tree, into SpeechBrain CSVs
``train.csv``/``dev.csv``/``test.csv`` (columns ``ID,duration,wav,spk_id,wrd``)
and a ``prep_report.json``. Downloading and extracting the shards is done by
``openslr54_download.py``; this module reads, filters and splits the corpus.

Pipeline and drop reasons (each utterance is counted once, under the first
reason that applies, in this order):

1. TSV merge: ``duplicate_id`` (the first line of an id wins).
2. ``excluded``: the id is in the ``exclude_list`` file (e.g. the flagged
   utterances of ``score_transcripts.py``).
3. ``audio_absent``: no FLAC for the id (e.g. only some shards present).
4. Text, through :func:`speechbrain_w2vbert.text.normalize.normalize_nepali`:
   ``latin_text`` (unless ``keep_latin``), ``empty_text``.
5. Audio metadata (libsndfile header, in parallel; then a seek to the last
   sample and a one-sample read, which makes libFLAC find and decode the
   final frame, so a truncated file fails although its header is intact,
   down to one missing byte, without decoding the whole file):
   ``empty_file`` (0 bytes), ``unreadable`` (no valid header, or a length
   libsndfile cannot read), ``zero_length`` (no samples), ``corrupt``
   (last frame undecodable). Damage inside a file whose end is intact is
   not looked for (that needs a full decode). Audio that is not 16 kHz or
   not mono is kept and flagged in the report.
6. ``too_short`` / ``too_long``: duration filters.
7. ``ctc_infeasible``: fewer encoder frames than CTC needs (label length plus
   one blank between each pair of equal adjacent labels, the rule of
   :func:`speechbrain_w2vbert.models.ctc.ctc_min_frames`). SpeechBrain's CTC loss
   would otherwise zero such an utterance silently.

Authors
 * speechbrain-w2vbert contributors
"""

import csv
import hashlib
import json
import logging
import math
import os
import random
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import soundfile as sf

from speechbrain_w2vbert.text.normalize import (
    char_inventory,
    has_latin,
    normalize_nepali,
    out_of_inventory,
)

from openslr54_download import (  # the recipe folder is on sys.path
    ALL_SHARDS,
    CORPUS_DIR,
    TSV_NAME,
    download_openslr54,
    extract_shard,
    file_stamp,
    find_zips,
)

logger = logging.getLogger(__name__)

#: Folder of the bundled synthetic sample corpus (three shards).
SAMPLE_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_data")
REPORT_NAME = "prep_report.json"
SPLITS = ("train", "dev", "test")
CSV_FIELDS = ("ID", "duration", "wav", "spk_id", "wrd")
DROP_REASONS = (
    "duplicate_id", "excluded", "audio_absent", "latin_text", "empty_text", "empty_file",
    "unreadable", "zero_length", "corrupt", "too_short", "too_long",
    "ctc_infeasible",
)
_MAX_EXAMPLES = 20
_PARALLEL_MIN_FILES = 256
_UNKNOWN_LENGTH = 2**62  # libsndfile reports SF_COUNT_MAX frames for "unknown"
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------
class Transcript(NamedTuple):
    """One TSV entry: speaker id and raw transcript."""

    speaker: str
    text: str


class AudioFile(NamedTuple):
    """One FLAC found on disk."""

    path: str
    size: int
    mtime_ns: int


class AudioInfo(NamedTuple):
    """What :func:`audio_info` found: ``reason`` is None for a usable file."""

    reason: Optional[str]
    sample_rate: int
    channels: int
    frames: int


class Candidate(NamedTuple):
    """An utterance with audio and a kept normalised text."""

    uid: str
    speaker: str
    text: str


class Utterance(NamedTuple):
    """An utterance that passed every filter (one CSV row)."""

    uid: str
    speaker: str
    text: str
    duration: float
    path: str


# --------------------------------------------------------------------------
# Corpus discovery and reading
# --------------------------------------------------------------------------
def find_corpus_root(data_folder: str, extract_folder: str) -> Optional[str]:
    """Return the ``asr_nepali`` folder to read, or None if there is none."""
    for candidate in (
        os.path.join(extract_folder, CORPUS_DIR),
        os.path.join(data_folder, CORPUS_DIR),
        data_folder,
    ):
        if os.path.isdir(os.path.join(candidate, "data")) or os.path.isfile(
            os.path.join(candidate, TSV_NAME)
        ):
            return candidate
    return None


def transcript_files(root: Optional[str], data_folder: str) -> List[str]:
    """List the TSVs to merge: ``root``'s (main first, then per-shard ones)
    and a standalone ``data_folder/utt_spk_text.tsv`` (as downloaded)."""
    found = []
    if root is not None and os.path.isdir(root):
        names = sorted(
            n for n in os.listdir(root) if n.startswith("utt_spk_text") and n.endswith(".tsv")
        )
        found = [os.path.join(root, n) for n in sorted(names, key=lambda n: n != TSV_NAME)]
    standalone = os.path.join(data_folder, TSV_NAME)
    if os.path.isfile(standalone) and standalone not in found:
        found.append(standalone)
    return found


def read_transcripts(paths: Sequence[str]) -> Tuple[Dict[str, Transcript], List[str], int]:
    """Merge OpenSLR 54 TSVs.

    Files with identical content are read once. A line identical to one of
    an earlier file is the same entry (the real shards all carry the full
    TSV); any other line whose id was already seen is a duplicate and is
    dropped (the first one wins). Lines without a speaker field are counted
    as malformed.

    Arguments
    ---------
    paths : sequence of str
        TSV files.

    Returns
    -------
    entries : dict
        Utterance id to :class:`Transcript` (speaker, raw text), in file order.
    duplicates : list of str
        Ids of the dropped duplicate lines.
    malformed : int
        Lines with fewer than two fields.

    Example
    -------
    >>> import tempfile
    >>> tsv = os.path.join(tempfile.mkdtemp(), "utt_spk_text.tsv")
    >>> _ = open(tsv, "w").write("a1\\ts1\\tक ख\\na1\\ts2\\tग\\nb2\\ts1\\n")
    >>> entries, duplicates, malformed = read_transcripts([tsv, tsv])
    >>> entries
    {'a1': Transcript(speaker='s1', text='क ख'), 'b2': Transcript(speaker='s1', text='')}
    >>> duplicates, malformed
    (['a1'], 0)
    """
    entries: Dict[str, Transcript] = {}
    duplicates: List[str] = []
    malformed = 0
    earlier: set = set()
    seen_content = set()
    for path in paths:
        with open(path, "rb") as f:
            raw = f.read()
        key = (len(raw), zlib.crc32(raw))
        if key in seen_content:
            continue
        seen_content.add(key)
        current = set()
        for line in raw.decode("utf-8", errors="replace").split("\n"):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            fields = line.split("\t", 2)
            if len(fields) < 2:
                malformed += 1
                continue
            uid, spk = fields[0].strip(), fields[1].strip()
            entry = Transcript(spk, fields[2] if len(fields) == 3 else "")
            row = (uid, entry)
            if row in earlier:
                continue
            current.add(row)
            if uid in entries:
                duplicates.append(uid)
            else:
                entries[uid] = entry
        earlier |= current
    return entries, duplicates, malformed


def scan_audio(root: Optional[str]) -> Dict[str, AudioFile]:
    """Map utterance id to :class:`AudioFile` (path, size, mtime_ns) for every
    FLAC under ``root/data/*/`` (one ``scandir`` per folder, no per-file
    ``exists``)."""
    found: Dict[str, AudioFile] = {}
    data = os.path.join(root, "data") if root else ""
    if not root or not os.path.isdir(data):
        return found
    with os.scandir(data) as subdirs:
        folders = sorted(d.path for d in subdirs if d.is_dir())
    for folder in folders:
        with os.scandir(folder) as files:
            for entry in files:
                if entry.name.endswith(".flac") and entry.is_file():
                    st = entry.stat()
                    found.setdefault(entry.name[:-5], AudioFile(entry.path, st.st_size, st.st_mtime_ns))
    return found


# --------------------------------------------------------------------------
# Audio metadata
# --------------------------------------------------------------------------
def audio_info(path: str) -> AudioInfo:
    """Read the metadata of one audio file and check that it is complete.

    The header gives rate, channels and length (a FLAC header that leaves
    the length unknown makes libsndfile fail on every read, so such a file is
    unreadable for training too); then one sample is read at
    the very end, so that the decoder decodes (and CRC-checks) the last
    frame: a truncated FLAC fails here although its header is intact.

    Arguments
    ---------
    path : str
        Audio file.

    Returns
    -------
    AudioInfo
        ``(reason, sample_rate, channels, frames)``; ``reason`` is None for a
        usable file, else ``"empty_file"``, ``"unreadable"``,
        ``"zero_length"`` or ``"corrupt"``.

    Example
    -------
    >>> import tempfile, numpy
    >>> path = os.path.join(tempfile.mkdtemp(), "x.flac")
    >>> sf.write(path, numpy.zeros(8000, dtype="int16"), 16000)
    >>> audio_info(path)
    AudioInfo(reason=None, sample_rate=16000, channels=1, frames=8000)
    >>> _ = open(path, "r+b").truncate(os.path.getsize(path) - 3)
    >>> audio_info(path).reason
    'corrupt'
    """
    try:
        if os.path.getsize(path) == 0:
            return AudioInfo("empty_file", 0, 0, 0)
        with sf.SoundFile(path) as audio:
            rate, channels, frames = audio.samplerate, audio.channels, audio.frames
            if frames >= _UNKNOWN_LENGTH:  # libsndfile cannot read such a stream
                return AudioInfo("unreadable", rate, channels, 0)
            if frames <= 0:
                return AudioInfo("zero_length", rate, channels, 0)
            try:
                audio.seek(frames - 1)
                ok = len(audio.read(1, dtype="int16")) == 1
            except (sf.LibsndfileError, RuntimeError):
                ok = False
            return AudioInfo(None if ok else "corrupt", rate, channels, frames)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError):
        return AudioInfo("unreadable", 0, 0, 0)


def read_audio_info(
    paths: Sequence[str], num_workers: Optional[int] = None, executor: str = "process"
) -> List[AudioInfo]:
    """Apply :func:`audio_info` to ``paths`` in parallel, keeping the order.

    Arguments
    ---------
    paths : sequence of str
        Audio files.
    num_workers : int, optional
        Parallel workers (default: the number of CPUs). With one worker, or
        fewer than 256 files, the files are read in this process.
    executor : str
        ``"process"`` (default; fastest, see ``bench/prepare.py``) or
        ``"thread"`` (libsndfile releases the GIL, but Python code between
        calls does not).

    Returns
    -------
    list of AudioInfo
        One :func:`audio_info` result per path.
    """
    workers = num_workers or os.cpu_count() or 1
    if workers <= 1 or len(paths) < _PARALLEL_MIN_FILES:
        return [audio_info(p) for p in paths]
    pool_cls = {"process": ProcessPoolExecutor, "thread": ThreadPoolExecutor}[executor]
    chunksize = max(1, min(512, len(paths) // (workers * 8)))
    try:
        with pool_cls(max_workers=workers) as pool:
            return list(pool.map(audio_info, paths, chunksize=chunksize))
    except (BrokenProcessPool, OSError) as err:  # e.g. no fork/semaphores allowed
        logger.warning("parallel metadata pass failed (%s); reading serially", err)
        return [audio_info(p) for p in paths]


# --------------------------------------------------------------------------
# Filters and splits
# --------------------------------------------------------------------------
def ctc_frames(duration: float, frames_per_second: float) -> int:
    """Conservative number of encoder frames for ``duration`` seconds.

    One frame less than ``duration * frames_per_second`` (the fbank window
    and frame stacking lose up to one frame at the edges), so that
    w2v-BERT's real count (50 Hz, 25 Hz with the adapter) is never lower.

    Example
    -------
    >>> ctc_frames(1.0, 50.0), ctc_frames(1.0, 25.0), ctc_frames(0.01, 50)
    (49, 24, 0)
    """
    return max(0, math.floor(duration * frames_per_second) - 1)


def _unit_hash(key: str) -> float:
    """Deterministic number in [0, 1) from ``key`` (sha256, not ``hash``)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], 16) / 2.0**64


def _ratios(split_ratio: Sequence[float]) -> Tuple[float, float, float]:
    """Normalise a (train, dev, test) ratio to fractions summing to one."""
    if len(split_ratio) != 3 or min(split_ratio) < 0 or sum(split_ratio) <= 0:
        raise ValueError(f"split_ratio must be 3 non-negative numbers, got {split_ratio}")
    total = float(sum(split_ratio))
    return tuple(r / total for r in split_ratio)  # type: ignore[return-value]


def speaker_split(speakers: Iterable[str], split_ratio: Sequence[float]) -> Dict[str, str]:
    """Assign speakers to train/dev/test, deterministically from their ids.

    Each speaker gets ``u = sha256(id)`` mapped to [0, 1): ``u < test`` goes to
    test, ``u < test + dev`` to dev, the rest to train, so a speaker's split
    never depends on the other speakers. Small corpora: if test (then dev)
    got no speaker although its ratio is positive, the train speaker with the
    smallest ``u`` moves there; at least three speakers are needed then.

    Arguments
    ---------
    speakers : iterable of str
        Speaker ids (duplicates ignored).
    split_ratio : sequence of float
        (train, dev, test) proportions of speakers, e.g. ``(90, 5, 5)``.

    Returns
    -------
    dict
        Speaker id to ``"train"``, ``"dev"`` or ``"test"``.

    Example
    -------
    >>> split = speaker_split(["s1", "s2", "s3", "s4"], (90, 5, 5))
    >>> sorted(Counter(split.values()).items())
    [('dev', 1), ('test', 1), ('train', 2)]
    """
    _, r_dev, r_test = _ratios(split_ratio)
    order = sorted(set(speakers), key=lambda s: (_unit_hash(s), s))
    assigned = {}
    for spk in order:
        u = _unit_hash(spk)
        assigned[spk] = "test" if u < r_test else "dev" if u < r_test + r_dev else "train"
    for name, ratio in (("test", r_test), ("dev", r_dev)):
        if ratio > 0 and name not in assigned.values():
            movable = [s for s in order if assigned[s] == "train"]
            if len(movable) < 2:
                raise ValueError(
                    f"{len(order)} speakers are too few for a speaker-disjoint "
                    "split; use split='random'"
                )
            assigned[movable[0]] = name
    return assigned


def random_split(ids: Iterable[str], split_ratio: Sequence[float], seed: int = 42) -> Dict[str, str]:
    """Random utterance split, reproducible from the ids alone.

    Algorithm: ``ids = sorted(set(ids))``; ``random.Random(seed).shuffle(ids)``;
    the first ``floor(n * train)`` ids are train, the next
    ``floor(n * dev)`` dev, the rest test. With ``(85, 0, 15)`` and seed 42
    this is the random 85/15 split used to compare with published numbers.

    Arguments
    ---------
    ids : iterable of str
        Utterance ids (all those of the TSV, so the split does not depend on
        which shards or filters are used).
    split_ratio : sequence of float
        (train, dev, test) proportions.
    seed : int
        Seed of ``random.Random``.

    Returns
    -------
    dict
        Utterance id to split name.

    Example
    -------
    >>> split = random_split([f"u{i}" for i in range(20)], (85, 0, 15))
    >>> sorted(Counter(split.values()).items())
    [('test', 3), ('train', 17)]
    """
    r_train, r_dev, _ = _ratios(split_ratio)
    order = sorted(set(ids))
    random.Random(seed).shuffle(order)
    n_train = math.floor(len(order) * r_train)
    n_dev = math.floor(len(order) * r_dev)
    return {
        uid: "train" if i < n_train else "dev" if i < n_train + n_dev else "test"
        for i, uid in enumerate(order)
    }


# --------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------
def _write_csv(path: str, rows: List[Dict]) -> None:
    """Write ``rows`` (dicts keyed by :data:`CSV_FIELDS`) as a CSV."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def _write_json(path: str, data: Dict) -> None:
    """Write ``data`` as indented UTF-8 JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")


def inputs_fingerprint(options: Dict, inputs: Dict) -> str:
    """sha256 of the options and the input listing (what a re-run compares)."""
    blob = json.dumps([_FORMAT_VERSION, options, inputs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def listing_digest(audio: Dict[str, AudioFile]) -> str:
    """sha256 over the sorted ``(id, size, mtime_ns)`` of the audio files."""
    digest = hashlib.sha256()
    for uid in sorted(audio):
        found = audio[uid]
        digest.update(f"{uid}\t{found.size}\t{found.mtime_ns}\n".encode("utf-8"))
    return digest.hexdigest()


def outputs_current(save_folder: str, fingerprint: str,
                    splits: Sequence[str] = SPLITS) -> Optional[Dict]:
    """The existing report if it and the CSVs of ``splits`` exist and the
    report's fingerprint is ``fingerprint``; else None."""
    report_path = os.path.join(save_folder, REPORT_NAME)
    if not all(os.path.isfile(os.path.join(save_folder, f"{s}.csv")) for s in splits):
        return None
    try:
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    return report if report.get("fingerprint") == fingerprint else None


def write_outputs(save_folder: str, rows: Dict[str, List[Dict]], report: Dict) -> None:
    """Write one CSV per key of ``rows`` (``<split>.csv``, columns
    :data:`CSV_FIELDS`) and the report, atomically.

    The old report goes first (so a run interrupted midway never leaves a
    report vouching for stale CSVs), each file is written to ``<name>.tmp``
    and moved into place with ``os.replace``; leftovers of a failed write are
    removed.
    """
    os.makedirs(save_folder, exist_ok=True)
    report_path = os.path.join(save_folder, REPORT_NAME)
    if os.path.exists(report_path):
        os.remove(report_path)
    targets = [os.path.join(save_folder, f"{s}.csv") for s in rows]
    tmps = [t + ".tmp" for t in targets] + [report_path + ".tmp"]
    try:
        for split, target in zip(rows, targets):
            _write_csv(target + ".tmp", rows[split])
        _write_json(report_path + ".tmp", report)
        for tmp in tmps:
            os.replace(tmp, tmp[: -len(".tmp")])
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)


# --------------------------------------------------------------------------
# Main entry point
# --------------------------------------------------------------------------
def prepare_openslr54(
    data_folder: str,
    save_folder: str,
    download: bool = False,
    mirror: Optional[str] = None,
    shards: Iterable[str] = ALL_SHARDS,
    extract_folder: Optional[str] = None,
    split: str = "speaker",
    split_ratio: Optional[Sequence[float]] = None,
    seed: int = 42,
    min_duration: Optional[float] = 1.0,
    max_duration: Optional[float] = 15.0,
    drop_empty_text: bool = True,
    keep_latin: bool = False,
    ascii_digits_to_devanagari: bool = False,
    frames_per_second: Optional[float] = 50.0,
    num_workers: Optional[int] = None,
    exclude_list: Optional[str] = None,
    tokenizer=None,
    skip_prep: bool = False,
) -> Optional[Dict]:
    """Prepare OpenSLR 54 (or a subset, or the bundled sample) for SpeechBrain.

    Reads the shards ``asr_nepali_<c>.zip`` found in ``data_folder``
    (extracting each once), an already extracted ``asr_nepali/`` tree (in
    ``extract_folder``, in ``data_folder``, or ``data_folder`` itself), or
    both; merges the TSVs; keeps utterances whose audio exists; normalises
    the text; reads the audio metadata in parallel; filters; splits; and
    writes ``train.csv``, ``dev.csv``, ``test.csv`` (``ID,duration,wav,
    spk_id,wrd``; ``wav`` is an absolute path) and ``prep_report.json`` into
    ``save_folder``. See the module docstring for the drop reasons.

    Re-running is cheap and safe: when the three CSVs and the report exist
    and the report's fingerprint (options plus the listing of zips, TSVs and
    audio files with sizes and mtimes) matches, nothing is redone; outputs
    are written atomically.

    Arguments
    ---------
    data_folder : str
        Folder with the zips and/or the extracted corpus.
    save_folder : str
        Output folder for the CSVs and the report.
    download : bool
        Fetch ``utt_spk_text.tsv`` and ``shards`` into ``data_folder`` first
        (resuming partial files, checking sizes; see
        :func:`openslr54_download.download_file`).
    mirror : str, optional
        Base URL replacing :data:`openslr54_download.OPENSLR54_URL`, or a key
        of :data:`openslr54_download.OPENSLR54_MIRRORS` (``"us"``, ``"eu"``,
        ``"cn"``).
    shards : iterable of str
        Shards to download (default: all 16). Reading always uses every
        shard present.
    extract_folder : str, optional
        Where zips are extracted (default: ``data_folder``).
    split : str
        ``"speaker"`` (default): speaker-disjoint, see :func:`speaker_split`;
        ``"random"``: utterance-level, see :func:`random_split`.
    split_ratio : sequence of float, optional
        (train, dev, test) proportions; default ``(90, 5, 5)`` of speakers for
        ``"speaker"``, ``(85, 0, 15)`` of utterances for ``"random"``. When
        the dev proportion is 0, ``dev.csv`` repeats the test set (the report
        says ``"dev_is_test": true``).
    seed : int
        Seed of the random split.
    min_duration, max_duration : float, optional
        Duration bounds in seconds (None disables each).
    drop_empty_text : bool
        Drop utterances whose normalised text is empty.
    keep_latin : bool
        Keep lines containing Latin letters (lower-cased) instead of
        dropping them.
    ascii_digits_to_devanagari : bool
        Map ASCII digits to Devanagari ones in the transcripts.
    frames_per_second : float, optional
        Encoder frame rate for the CTC feasibility filter: 50 for w2v-BERT,
        25 with its adapter; None disables the filter.
    num_workers : int, optional
        Processes reading audio metadata (default: all CPUs).
    exclude_list : str, optional
        Utterance ids to drop (reason ``excluded``): a text file with one id
        per line (``#`` comments allowed), or a CSV with an ``ID`` column and,
        if it has one, a ``flagged`` column (then only rows with ``flagged``
        1/true are excluded: ``score_transcripts.py``'s ranking as it is).
    tokenizer : CTCTokenizer, optional
        The labels the CTC feasibility filter counts
        (:func:`speechbrain_w2vbert.models.ctc.texts_min_frames`), when the
        tokenizer exists before the data (a checkpoint's vocabulary); None:
        one label per character, a space included (exact for the character
        tokenizer, an upper bound for SentencePiece ones).
    skip_prep : bool
        Do nothing and return None (SpeechBrain convention).

    Returns
    -------
    dict or None
        The report (also in ``prep_report.json``): ``splits`` (utterances,
        speakers, hours per split), ``drops`` (count per reason),
        ``drop_examples``, ``flagged`` (non-16 kHz / multi-channel ids),
        ``char_inventory``, ``out_of_inventory``, ``extraction``, ``options``,
        ``fingerprint`` and ``skipped`` (true when the outputs were current).

    Example
    -------
    >>> import shutil, tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> data = shutil.copytree(SAMPLE_DATA_DIR, os.path.join(tmp, "data"))
    >>> report = prepare_openslr54(data, os.path.join(tmp, "prep"))
    >>> report["drops"]["corrupt"], report["drops"]["audio_absent"]
    (1, 1)
    >>> prepare_openslr54(data, os.path.join(tmp, "prep"))["skipped"]
    True
    """
    if skip_prep:
        return None
    if split not in ("speaker", "random"):
        raise ValueError(f"split must be 'speaker' or 'random', got {split!r}")
    if split_ratio is None:
        split_ratio = (90, 5, 5) if split == "speaker" else (85, 0, 15)
    _ratios(split_ratio)
    extract_folder = extract_folder or data_folder
    shards = "".join(shards)
    if download:
        download_openslr54(data_folder, shards, mirror)

    zips = find_zips(data_folder)
    extraction = Counter(files=0, bad_members=0, bad_zip=0)
    for zip_path in zips:
        extraction.update(extract_shard(zip_path, extract_folder))
    root = find_corpus_root(data_folder, extract_folder)
    tsvs = transcript_files(root, data_folder)
    if not tsvs:
        raise FileNotFoundError(
            f"no {TSV_NAME} and no {CORPUS_DIR}_<c>.zip in {data_folder}; "
            "use download=True or point data_folder at the corpus"
        )
    audio = scan_audio(root)

    options = {
        "split": split, "split_ratio": list(split_ratio), "seed": seed,
        "min_duration": min_duration, "max_duration": max_duration,
        "drop_empty_text": drop_empty_text, "keep_latin": keep_latin,
        "ascii_digits_to_devanagari": ascii_digits_to_devanagari,
        "frames_per_second": frames_per_second,
        "ctc_labels": "characters" if tokenizer is None else
        hashlib.sha256("\n".join(tokenizer.tokens).encode("utf-8")).hexdigest()[:16],
        "root": os.path.abspath(root) if root else None,
    }
    excluded = read_exclude_list(exclude_list) if exclude_list else set()
    if exclude_list:
        options["exclude_list"] = [os.path.abspath(exclude_list), hashlib.sha256(
            "\n".join(sorted(excluded)).encode("utf-8")).hexdigest()[:16]]
    inputs = {
        "zips": [file_stamp(z) for z in zips],
        "tsv": [[os.path.abspath(t), s.size, s.mtime_ns] for t, s in zip(tsvs, map(file_stamp, tsvs))],
        "audio": [len(audio), listing_digest(audio)],
    }
    fingerprint = inputs_fingerprint(options, inputs)
    current = outputs_current(save_folder, fingerprint)
    if current is not None:
        logger.info("%s is up to date with the inputs and options; skipping", save_folder)
        current["skipped"] = True
        return current

    start = time.time()
    entries, duplicates, malformed = read_transcripts(tsvs)
    drops: Dict[str, List[str]] = {r: [] for r in DROP_REASONS}
    drops["duplicate_id"] = duplicates
    drops["excluded"] = sorted(uid for uid in entries if uid in excluded)
    candidates = _filter_text(
        {uid: e for uid, e in entries.items() if uid not in excluded}, audio, drops, keep_latin,
        ascii_digits_to_devanagari, drop_empty_text
    )
    infos = read_audio_info([audio[c.uid].path for c in candidates], num_workers)
    kept, flagged = _filter_audio(
        candidates, infos, audio, drops, min_duration, max_duration, frames_per_second, tokenizer
    )

    assignment, dev_is_test = _assign_splits(kept, entries, split, split_ratio, seed)
    rows: Dict[str, List[Dict]] = {s: [] for s in SPLITS}
    for utt in sorted(kept, key=lambda u: u.uid):
        rows[assignment[utt.uid]].append(
            {"ID": utt.uid, "duration": f"{utt.duration:.3f}", "wav": os.path.abspath(utt.path),
             "spk_id": utt.speaker, "wrd": utt.text}
        )
    if dev_is_test:
        rows["dev"] = rows["test"]

    kept_texts = [u.text for u in kept]
    oov = Counter("".join(out_of_inventory(t, keep_latin) for t in kept_texts))
    report = {
        "fingerprint": fingerprint,
        "skipped": False,
        "options": options,
        "inputs": inputs,
        "extraction": dict(extraction, zips=len(zips)),
        "tsv": {"files": len(tsvs), "utterances": len(entries),
                "duplicate_lines": len(duplicates), "malformed_lines": malformed},
        "audio_files": len(audio),
        "kept": {"utterances": len(kept), "hours": round(sum(u.duration for u in kept) / 3600, 4)},
        "splits": {s: _split_stats(rows[s]) for s in SPLITS},
        "split": {"method": split, "ratio": list(split_ratio), "dev_is_test": dev_is_test},
        "drops": {r: len(v) for r, v in drops.items()},
        "drop_examples": {r: v[:_MAX_EXAMPLES] for r, v in drops.items() if v},
        "flagged": {k: {"count": len(v), "ids": v[:_MAX_EXAMPLES]} for k, v in flagged.items()},
        "char_inventory": dict(sorted(char_inventory(kept_texts).items())),
        "out_of_inventory": dict(oov.most_common()),
        "seconds": round(time.time() - start, 2),
    }
    write_outputs(save_folder, rows, report)
    log_summary(report)
    return report


def read_exclude_list(path: str) -> set:
    """The utterance ids of an exclusion list (see :func:`prepare_openslr54`).

    Raises
    ------
    FileNotFoundError, ValueError
        The file is missing, or a CSV without an ``ID`` column (named).

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "flagged.csv")
    >>> _ = open(path, "w").write("ID,score,flagged\\na1,9.5,1\\nb2,0.1,0\\n")
    >>> sorted(read_exclude_list(path))
    ['a1']
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"exclude_list {path}: no such file")
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    first = text.splitlines()[0] if text.strip() else ""
    if path.endswith(".csv") or "," in first:
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or "ID" not in rows[0]:
            raise ValueError(f"exclude_list {path}: a CSV needs an ID column (got {first!r})")
        if "flagged" in rows[0]:
            rows = [r for r in rows if r["flagged"].strip().lower() in ("1", "true", "yes")]
        return {r["ID"].strip() for r in rows if r["ID"].strip()}
    return {line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()}


def _filter_text(entries, audio, drops, keep_latin, ascii_digits_to_devanagari,
                 drop_empty_text) -> List[Candidate]:
    """Drop absent audio, Latin and empty lines (appending their ids to
    ``drops``); return the others as :class:`Candidate` (normalised text)."""
    candidates = []
    for uid, entry in entries.items():
        if uid not in audio:
            drops["audio_absent"].append(uid)
        elif not keep_latin and has_latin(entry.text):
            drops["latin_text"].append(uid)
        else:
            text = normalize_nepali(entry.text, ascii_digits_to_devanagari)
            if drop_empty_text and not text:
                drops["empty_text"].append(uid)
            else:
                candidates.append(Candidate(uid, entry.speaker, text))
    return candidates


def _filter_audio(candidates, infos, audio, drops, min_duration, max_duration,
                  frames_per_second, tokenizer=None) -> Tuple[List[Utterance], Dict[str, List[str]]]:
    """Drop bad audio, out-of-range durations and CTC-infeasible utterances
    (appending their ids to ``drops``); flag non-16 kHz and multi-channel
    audio. Returns the kept :class:`Utterance` list and the flagged ids."""
    kept = []
    flagged: Dict[str, List[str]] = {"sample_rate": [], "multichannel": []}
    if frames_per_second is None:  # no CTC filter: no label count needed
        ctc_needs = [0] * len(candidates)
    else:
        # Imported here: torch takes seconds to load, and neither the metadata
        # workers nor a run with frames_per_second=None need it.
        from speechbrain_w2vbert.models.ctc import texts_min_frames

        ctc_needs = texts_min_frames([c.text for c in candidates], tokenizer)
    for cand, info, ctc_need in zip(candidates, infos, ctc_needs):
        reason = info.reason
        duration = info.frames / info.sample_rate if reason is None else 0.0
        if reason is None:
            reason = _length_reason(duration, ctc_need, min_duration, max_duration,
                                    frames_per_second)
        if reason is not None:
            drops[reason].append(cand.uid)
            continue
        if info.sample_rate != 16000:
            flagged["sample_rate"].append(cand.uid)
        if info.channels != 1:
            flagged["multichannel"].append(cand.uid)
        kept.append(Utterance(cand.uid, cand.speaker, cand.text, duration, audio[cand.uid].path))
    return kept, flagged


def _length_reason(duration: float, ctc_need: int, min_duration: Optional[float],
                   max_duration: Optional[float],
                   frames_per_second: Optional[float]) -> Optional[str]:
    """``"too_short"``, ``"too_long"``, ``"ctc_infeasible"`` or None
    (``ctc_need``: the frames the text needs, :func:`speechbrain_w2vbert.models.ctc.texts_min_frames`)."""
    if min_duration is not None and duration < min_duration:
        return "too_short"
    if max_duration is not None and duration > max_duration:
        return "too_long"
    if frames_per_second is not None and ctc_frames(duration, frames_per_second) < ctc_need:
        return "ctc_infeasible"
    return None


def _assign_splits(kept, entries, split, split_ratio, seed) -> Tuple[Dict[str, str], bool]:
    """Map each kept utterance id to its split; say whether dev repeats test
    (dev proportion 0)."""
    dev_is_test = _ratios(split_ratio)[1] == 0
    if split == "random":
        return random_split(entries, split_ratio, seed), dev_is_test
    by_speaker = speaker_split({u.speaker for u in kept}, split_ratio) if kept else {}
    return {u.uid: by_speaker[u.speaker] for u in kept}, dev_is_test


def _split_stats(rows: List[Dict]) -> Dict:
    """Utterances, speakers and hours of one split's CSV rows."""
    return {
        "utterances": len(rows),
        "speakers": len({r["spk_id"] for r in rows}),
        "hours": round(sum(float(r["duration"]) for r in rows) / 3600, 4),
    }


def log_summary(report: Dict) -> None:
    """Log a readable summary of a preparation report."""
    lines = [f"OpenSLR 54 preparation: {report['tsv']['utterances']} utterances in the TSV, "
             f"{report['audio_files']} audio files, {report['kept']['utterances']} kept "
             f"({report['kept']['hours']:.2f} h)"]
    lines.append(f"  {'split':<6}{'utts':>9}{'spks':>7}{'hours':>9}")
    for name, stats in report["splits"].items():
        lines.append(
            f"  {name:<6}{stats['utterances']:>9}{stats['speakers']:>7}{stats['hours']:>9.3f}"
        )
    if not report["kept"]["utterances"]:
        lines.append("  WARNING: no utterance kept (is the audio there? see drops)")
    dropped = ", ".join(f"{r} {n}" for r, n in report["drops"].items() if n) or "none"
    lines.append(f"  dropped: {dropped}")
    flagged = ", ".join(f"{k} {v['count']}" for k, v in report["flagged"].items() if v["count"])
    if flagged:
        lines.append(f"  flagged (kept; resampled/down-mixed in training): {flagged}")
    if report["out_of_inventory"]:
        lines.append(f"  characters outside the inventory: {report['out_of_inventory']}")
    if report["split"]["dev_is_test"]:
        lines.append("  dev.csv repeats the test set (dev proportion 0)")
    logger.info("\n".join(lines))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Prepare OpenSLR 54 for SpeechBrain")
    parser.add_argument("data_folder")
    parser.add_argument("save_folder")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--mirror")
    parser.add_argument("--split", default="speaker", choices=("speaker", "random"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prepare_openslr54(args.data_folder, args.save_folder, download=args.download,
                      mirror=args.mirror, split=args.split)
