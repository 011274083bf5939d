"""Data preparation for OpenSLR 54 (Large Nepali ASR training data set).

OpenSLR 54 ships 157,905 utterances in 16 shards ``asr_nepali_{0..9,a..f}.zip``
(shard = first hex character of the utterance id), each holding
``asr_nepali/utt_spk_text.tsv`` (tab separated, no header: utterance id,
speaker id, transcript) and ``asr_nepali/data/<id[:2]>/<id>.flac``.
:func:`prepare_openslr54` turns any of the zips (all or a subset), or an
already extracted ``asr_nepali/`` tree, into SpeechBrain CSVs
``train.csv``/``dev.csv``/``test.csv`` (columns ``ID,duration,wav,spk_id,wrd``)
and a ``prep_report.json``.

Pipeline and drop reasons (each utterance is counted once, under the first
reason that applies, in this order):

1. TSV merge: ``duplicate_id`` (the first line of an id wins).
2. ``audio_absent``: no FLAC for the id (e.g. only some shards present).
3. Text, through :func:`speechbrain_w2vbert.text.normalize_nepali`:
   ``latin_text`` (unless ``keep_latin``), ``empty_text``.
4. Audio metadata (libsndfile header, in parallel; then a seek to the last
   sample and a one-sample read, which makes libFLAC find and decode the
   final frame, so a truncated file fails although its header is intact,
   down to one missing byte, without decoding the whole file):
   ``empty_file`` (0 bytes), ``unreadable`` (no valid header, or a length
   libsndfile cannot read), ``zero_length`` (no samples), ``corrupt``
   (last frame undecodable). Damage inside a file whose end is intact is
   not looked for (that needs a full decode). Audio that is not 16 kHz or
   not mono is kept and flagged in the report.
5. ``too_short`` / ``too_long``: duration filters.
6. ``ctc_infeasible``: fewer encoder frames than CTC needs (label length plus
   one blank between each pair of equal adjacent labels). SpeechBrain's CTC
   loss would otherwise zero such an utterance silently.

Authors
 * speechbrain-w2vbert contributors
"""

import csv
import hashlib
import http.client
import json
import logging
import math
import os
import random
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import soundfile as sf
from tqdm import tqdm

from speechbrain_w2vbert.text import (
    char_inventory,
    has_latin,
    normalize_nepali,
    out_of_inventory,
)

logger = logging.getLogger(__name__)

#: openslr.org's folder for resource 54.
OPENSLR54_URL = "https://www.openslr.org/resources/54/"
#: Known mirrors of the same folder, usable as ``mirror=``.
OPENSLR54_MIRRORS = {
    "us": "https://us.openslr.org/resources/54/",
    "eu": "https://openslr.elda.org/resources/54/",
    "cn": "https://openslr.magicdatatech.com/resources/54/",
}
#: The 16 shard names' suffixes.
ALL_SHARDS = "0123456789abcdef"
#: Folder of the bundled synthetic sample corpus (three shards).
SAMPLE_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_data")
CORPUS_DIR = "asr_nepali"
TSV_NAME = "utt_spk_text.tsv"
REPORT_NAME = "prep_report.json"
SPLITS = ("train", "dev", "test")
CSV_FIELDS = ("ID", "duration", "wav", "spk_id", "wrd")
DROP_REASONS = (
    "duplicate_id", "audio_absent", "latin_text", "empty_text", "empty_file",
    "unreadable", "zero_length", "corrupt", "too_short", "too_long",
    "ctc_infeasible",
)
_MAX_EXAMPLES = 20
_PARALLEL_MIN_FILES = 256
_UNKNOWN_LENGTH = 2**62  # libsndfile reports SF_COUNT_MAX frames for "unknown"
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------
def shard_name(shard: str) -> str:
    """Return the zip name of ``shard`` (one hex character).

    Example
    -------
    >>> shard_name("a")
    'asr_nepali_a.zip'
    """
    return f"{CORPUS_DIR}_{shard}.zip"


def remote_size(url: str, timeout: float = 60.0) -> Optional[int]:
    """Return the ``Content-Length`` of ``url`` from a HEAD request.

    Arguments
    ---------
    url : str
        Address of the file.
    timeout : float
        Socket timeout in seconds.

    Returns
    -------
    int or None
        Size in bytes, or None when the server does not tell.
    """
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
    return int(length) if length is not None else None


def download_file(
    url: str, dest: str, timeout: float = 60.0, retries: int = 3
) -> str:
    """Download ``url`` to ``dest``, resuming a partial ``dest + ".part"``.

    A present ``dest`` whose size equals the server's ``Content-Length`` is
    kept (a HEAD request checks it; if the server cannot be reached the local
    file is trusted with a warning). Otherwise the data go to ``dest.part``,
    asking for the missing bytes with a ``Range`` header (a server that
    ignores it restarts the file from zero), with a tqdm progress bar; the
    final size is checked against the announced size before ``dest.part``
    is renamed to ``dest``. Network errors are retried, resuming each time.

    Arguments
    ---------
    url : str
        Address of the file.
    dest : str
        Local path of the complete file.
    timeout : float
        Socket timeout in seconds.
    retries : int
        Further attempts after a network error or a size mismatch.

    Returns
    -------
    str
        ``dest``.
    """
    part = dest + ".part"
    if os.path.isfile(dest):
        try:
            expected = remote_size(url, timeout)
        except (urllib.error.URLError, OSError) as err:
            logger.warning("cannot check %s (%s); keeping the local file", url, err)
            return dest
        local = os.path.getsize(dest)
        if expected is None or expected == local:
            return dest
        logger.warning("%s: %d bytes, server has %d; fetching again", dest, local, expected)
        if local < expected:
            os.replace(dest, part)
        else:
            os.remove(dest)
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout)
            os.replace(part, dest)
            return dest
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code == 404:
                raise
            if attempt == retries:
                raise
            logger.warning("download of %s failed (%s); retrying", url, err)
            time.sleep(min(2.0**attempt, 10.0))
    return dest  # pragma: no cover (the loop returns or raises)


def _fetch(url: str, part: str, timeout: float) -> None:
    """Append the missing bytes of ``url`` to ``part``; check the size."""
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as err:
        if err.code != 416:
            raise
        # Range not satisfiable: the part is complete (or longer than the file)
        if remote_size(url, timeout) == offset:
            return
        os.remove(part)
        raise IOError(f"{part} is larger than {url}; removed it") from err
    with response:
        length = response.headers.get("Content-Length")
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else None
            if total is None and length:
                total = offset + int(length)
            mode = "ab"
        else:  # a full answer: the server ignored the Range header
            total, offset, mode = (int(length) if length else None), 0, "wb"
        name = os.path.basename(part[: -len(".part")])
        with open(part, mode) as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True,
            unit_divisor=1024, desc=name, disable=None,
        ) as bar:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
    size = os.path.getsize(part)
    if total is not None and size != total:
        raise IOError(f"{part}: got {size} bytes of {total}")


def download_openslr54(
    data_folder: str,
    shards: Iterable[str] = ALL_SHARDS,
    mirror: Optional[str] = None,
    timeout: float = 60.0,
) -> List[str]:
    """Download ``utt_spk_text.tsv`` and the shards into ``data_folder``.

    Arguments
    ---------
    data_folder : str
        Destination folder (created if needed).
    shards : iterable of str
        Shard suffixes to fetch, e.g. ``"01"`` or ``["0", "1"]``.
    mirror : str, optional
        Base URL to use instead of :data:`OPENSLR54_URL` (e.g. a local
        server), or a key of :data:`OPENSLR54_MIRRORS` (``"us"``, ``"eu"``,
        ``"cn"``).
    timeout : float
        Socket timeout in seconds.

    Returns
    -------
    list of str
        Paths of the downloaded (or already present) files.
    """
    base = OPENSLR54_MIRRORS.get(mirror or "", mirror or OPENSLR54_URL).rstrip("/") + "/"
    os.makedirs(data_folder, exist_ok=True)
    names = [TSV_NAME] + [shard_name(s) for s in shards]
    return [download_file(base + n, os.path.join(data_folder, n), timeout) for n in names]


# --------------------------------------------------------------------------
# Extraction and discovery
# --------------------------------------------------------------------------
def find_zips(data_folder: str) -> List[str]:
    """Return the sorted paths of the ``asr_nepali_<c>.zip`` in ``data_folder``.

    Example
    -------
    >>> find_zips(SAMPLE_DATA_DIR)[0].endswith("asr_nepali_0.zip")
    True
    """
    if not os.path.isdir(data_folder):
        return []
    names = {shard_name(s) for s in ALL_SHARDS}
    return sorted(os.path.join(data_folder, n) for n in os.listdir(data_folder) if n in names)


def _file_stamp(path: str) -> List:
    """``[basename, size, mtime_ns]`` of ``path``."""
    st = os.stat(path)
    return [os.path.basename(path), st.st_size, st.st_mtime_ns]


def extract_shard(zip_path: str, dest: str) -> Dict[str, int]:
    """Extract the FLACs and TSV of one shard under ``dest`` once.

    Members outside ``asr_nepali/`` or with unsafe names are ignored; a
    member that cannot be read (bad CRC, truncated archive) is skipped and
    counted; every file is written atomically. The TSV goes to
    ``asr_nepali/utt_spk_text.tsv`` unless a different one is already there,
    in which case it is kept beside it as ``utt_spk_text.<shard>.tsv``.
    Files already there with the right size are kept (writes are atomic, so
    they are complete: an interrupted extraction resumes quickly). A marker ``asr_nepali/.extracted_<zip name>`` (zip size and mtime) makes
    the next call a no-op.

    Arguments
    ---------
    zip_path : str
        Path of ``asr_nepali_<c>.zip``.
    dest : str
        Folder that receives ``asr_nepali/``.

    Returns
    -------
    dict
        ``{"files": extracted, "bad_members": unreadable, "bad_zip": 0 or 1}``.
    """
    root = os.path.join(dest, CORPUS_DIR)
    name = os.path.basename(zip_path)
    marker = os.path.join(root, f".extracted_{name}")
    stamp = json.dumps(_file_stamp(zip_path))
    stats = {"files": 0, "bad_members": 0, "bad_zip": 0}
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            if f.read() == stamp:
                return stats
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        logger.error("%s is not a readable zip (%s); skipped", zip_path, err)
        stats["bad_zip"] = 1
        return stats
    shard = name[len(CORPUS_DIR) + 1 : -len(".zip")]
    with archive:
        for info in archive.infolist():
            target = _member_target(info, root, shard)
            if target is None or (
                os.path.isfile(target) and os.path.getsize(target) == info.file_size
            ):  # ignored, or complete from an interrupted earlier extraction
                continue
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
                logger.warning("%s: cannot read %s (%s)", name, info.filename, err)
                stats["bad_members"] += 1
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            _write_bytes_atomic(target, data)
            stats["files"] += 1
    _write_bytes_atomic(marker, stamp.encode("utf-8"))
    return stats


def _member_target(info: zipfile.ZipInfo, root: str, shard: str) -> Optional[str]:
    """Where a zip member goes, or None for members to ignore."""
    parts = info.filename.split("/")
    if info.is_dir() or parts[0] != CORPUS_DIR or any(p in ("", ".", "..") for p in parts):
        return None
    if len(parts) == 4 and parts[1] == "data" and parts[3].endswith(".flac"):
        return os.path.join(root, *parts[1:])
    if parts[1:] == [TSV_NAME]:
        main = os.path.join(root, TSV_NAME)
        if os.path.isfile(main) and _crc32_file(main) != info.CRC:
            return os.path.join(root, f"utt_spk_text.{shard}.tsv")
        return main
    return None


def _crc32_file(path: str) -> int:
    """CRC-32 of a file's content (as stored in zip headers)."""
    with open(path, "rb") as f:
        return zlib.crc32(f.read())


def _write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``path.tmp`` and ``os.replace``."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


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


def read_transcripts(paths: Sequence[str]) -> Tuple[Dict[str, Tuple[str, str]], List[str], int]:
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
        Utterance id to ``(speaker, raw transcript)``, in file order.
    duplicates : list of str
        Ids of the dropped duplicate lines.
    malformed : int
        Lines with fewer than two fields.

    Example
    -------
    >>> import tempfile
    >>> tsv = os.path.join(tempfile.mkdtemp(), "utt_spk_text.tsv")
    >>> _ = open(tsv, "w").write("a1\\ts1\\tक ख\\na1\\ts2\\tग\\nb2\\ts1\\n")
    >>> read_transcripts([tsv, tsv])
    ({'a1': ('s1', 'क ख'), 'b2': ('s1', '')}, ['a1'], 0)
    """
    entries: Dict[str, Tuple[str, str]] = {}
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
            row = (uid, spk, fields[2] if len(fields) == 3 else "")
            if row in earlier:
                continue
            current.add(row)
            if uid in entries:
                duplicates.append(uid)
            else:
                entries[uid] = row[1:]
        earlier |= current
    return entries, duplicates, malformed


def scan_audio(root: Optional[str]) -> Dict[str, Tuple[str, int, int]]:
    """Map utterance id to ``(path, size, mtime_ns)`` for every FLAC under
    ``root/data/*/`` (one ``scandir`` per folder, no per-file ``exists``)."""
    found: Dict[str, Tuple[str, int, int]] = {}
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
                    found.setdefault(entry.name[:-5], (entry.path, st.st_size, st.st_mtime_ns))
    return found


# --------------------------------------------------------------------------
# Audio metadata
# --------------------------------------------------------------------------
def audio_info(path: str) -> Tuple[Optional[str], int, int, int]:
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
    tuple
        ``(reason, sample_rate, channels, frames)``; ``reason`` is None for a
        usable file, else ``"empty_file"``, ``"unreadable"``,
        ``"zero_length"`` or ``"corrupt"``.

    Example
    -------
    >>> import tempfile, numpy
    >>> path = os.path.join(tempfile.mkdtemp(), "x.flac")
    >>> sf.write(path, numpy.zeros(8000, dtype="int16"), 16000)
    >>> audio_info(path)
    (None, 16000, 1, 8000)
    >>> _ = open(path, "r+b").truncate(os.path.getsize(path) - 3)
    >>> audio_info(path)[0]
    'corrupt'
    """
    try:
        if os.path.getsize(path) == 0:
            return "empty_file", 0, 0, 0
        with sf.SoundFile(path) as audio:
            rate, channels, frames = audio.samplerate, audio.channels, audio.frames
            if frames >= _UNKNOWN_LENGTH:  # libsndfile cannot read such a stream
                return "unreadable", rate, channels, 0
            if frames <= 0:
                return "zero_length", rate, channels, 0
            try:
                audio.seek(frames - 1)
                ok = len(audio.read(1, dtype="int16")) == 1
            except (sf.LibsndfileError, RuntimeError):
                ok = False
            return (None if ok else "corrupt"), rate, channels, frames
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError):
        return "unreadable", 0, 0, 0


def read_audio_info(
    paths: Sequence[str], num_workers: Optional[int] = None, executor: str = "process"
) -> List[Tuple[Optional[str], int, int, int]]:
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
    list of tuple
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


def ctc_min_frames(labels: Sequence) -> int:
    """Frames CTC needs for ``labels``: their number plus one blank between
    each pair of equal neighbours (characters: a space is the ``|`` label).

    Example
    -------
    >>> ctc_min_frames("कक ख"), ctc_min_frames("")
    (5, 0)
    """
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


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


def _fingerprint(options: Dict, inputs: Dict) -> str:
    """sha256 of the options and the input listing."""
    blob = json.dumps([_FORMAT_VERSION, options, inputs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _listing_digest(audio: Dict[str, Tuple[str, int, int]]) -> str:
    """sha256 over the sorted ``(id, size, mtime_ns)`` of the audio files."""
    digest = hashlib.sha256()
    for uid in sorted(audio):
        _, size, mtime = audio[uid]
        digest.update(f"{uid}\t{size}\t{mtime}\n".encode("utf-8"))
    return digest.hexdigest()


def _outputs_current(save_folder: str, fingerprint: str) -> Optional[Dict]:
    """The existing report if all outputs exist and match ``fingerprint``."""
    report_path = os.path.join(save_folder, REPORT_NAME)
    if not all(os.path.isfile(os.path.join(save_folder, f"{s}.csv")) for s in SPLITS):
        return None
    try:
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    return report if report.get("fingerprint") == fingerprint else None


def write_outputs(save_folder: str, rows: Dict[str, List[Dict]], report: Dict) -> None:
    """Write the three CSVs and the report atomically.

    The old report goes first (so a run interrupted midway never leaves a
    report vouching for stale CSVs), each file is written to ``<name>.tmp``
    and moved into place with ``os.replace``; leftovers of a failed write are
    removed.
    """
    os.makedirs(save_folder, exist_ok=True)
    report_path = os.path.join(save_folder, REPORT_NAME)
    if os.path.exists(report_path):
        os.remove(report_path)
    targets = [os.path.join(save_folder, f"{s}.csv") for s in SPLITS]
    tmps = [t + ".tmp" for t in targets] + [report_path + ".tmp"]
    try:
        for split, target in zip(SPLITS, targets):
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
        (resuming partial files, checking sizes; see :func:`download_file`).
    mirror : str, optional
        Base URL replacing :data:`OPENSLR54_URL`, or a key of
        :data:`OPENSLR54_MIRRORS` (``"us"``, ``"eu"``, ``"cn"``).
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
        25 with its adapter; None disables the filter. The label length is
        counted in characters (space included), an upper bound for subword
        tokenizers.
    num_workers : int, optional
        Processes reading audio metadata (default: all CPUs).
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
        "root": os.path.abspath(root) if root else None,
    }
    inputs = {
        "zips": [_file_stamp(z) for z in zips],
        "tsv": [[os.path.abspath(t)] + _file_stamp(t)[1:] for t in tsvs],
        "audio": [len(audio), _listing_digest(audio)],
    }
    fingerprint = _fingerprint(options, inputs)
    current = _outputs_current(save_folder, fingerprint)
    if current is not None:
        logger.info("%s is up to date with the inputs and options; skipping", save_folder)
        current["skipped"] = True
        return current

    start = time.time()
    entries, duplicates, malformed = read_transcripts(tsvs)
    drops: Dict[str, List[str]] = {r: [] for r in DROP_REASONS}
    drops["duplicate_id"] = duplicates
    candidates = _filter_text(
        entries, audio, drops, keep_latin, ascii_digits_to_devanagari, drop_empty_text
    )
    infos = read_audio_info([audio[c[0]][0] for c in candidates], num_workers)
    kept, flagged = _filter_audio(
        candidates, infos, audio, drops, min_duration, max_duration, frames_per_second
    )

    assignment, dev_is_test = _assign_splits(kept, entries, split, split_ratio, seed)
    rows: Dict[str, List[Dict]] = {s: [] for s in SPLITS}
    for uid, spk, text, duration, path in sorted(kept):
        rows[assignment[uid]].append(
            {"ID": uid, "duration": f"{duration:.3f}", "wav": os.path.abspath(path),
             "spk_id": spk, "wrd": text}
        )
    if dev_is_test:
        rows["dev"] = rows["test"]

    kept_texts = [k[2] for k in kept]
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
        "kept": {"utterances": len(kept), "hours": round(sum(k[3] for k in kept) / 3600, 4)},
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


def _filter_text(entries, audio, drops, keep_latin, ascii_digits_to_devanagari,
                 drop_empty_text) -> List[Tuple[str, str, str]]:
    """Drop absent audio, Latin and empty lines (appending their ids to
    ``drops``); return ``(id, speaker, normalised text)`` of the others."""
    candidates = []
    for uid, (spk, raw) in entries.items():
        if uid not in audio:
            drops["audio_absent"].append(uid)
        elif not keep_latin and has_latin(raw):
            drops["latin_text"].append(uid)
        else:
            text = normalize_nepali(raw, ascii_digits_to_devanagari)
            if drop_empty_text and not text:
                drops["empty_text"].append(uid)
            else:
                candidates.append((uid, spk, text))
    return candidates


def _filter_audio(candidates, infos, audio, drops, min_duration, max_duration,
                  frames_per_second) -> Tuple[List[Tuple], Dict[str, List[str]]]:
    """Drop bad audio, out-of-range durations and CTC-infeasible utterances
    (appending their ids to ``drops``); flag non-16 kHz and multi-channel
    audio. Returns ``(id, speaker, text, duration, path)`` of the kept
    utterances and the flagged ids."""
    kept = []
    flagged: Dict[str, List[str]] = {"sample_rate": [], "multichannel": []}
    for (uid, spk, text), (reason, rate, channels, frames) in zip(candidates, infos):
        duration = frames / rate if reason is None else 0.0
        if reason is None:
            reason = _length_reason(duration, text, min_duration, max_duration,
                                    frames_per_second)
        if reason is not None:
            drops[reason].append(uid)
            continue
        if rate != 16000:
            flagged["sample_rate"].append(uid)
        if channels != 1:
            flagged["multichannel"].append(uid)
        kept.append((uid, spk, text, duration, audio[uid][0]))
    return kept, flagged


def _length_reason(duration: float, text: str, min_duration: Optional[float],
                   max_duration: Optional[float],
                   frames_per_second: Optional[float]) -> Optional[str]:
    """``"too_short"``, ``"too_long"``, ``"ctc_infeasible"`` or None."""
    if min_duration is not None and duration < min_duration:
        return "too_short"
    if max_duration is not None and duration > max_duration:
        return "too_long"
    if frames_per_second is not None and (
        ctc_frames(duration, frames_per_second) < ctc_min_frames(text)
    ):
        return "ctc_infeasible"
    return None


def _assign_splits(kept, entries, split, split_ratio, seed) -> Tuple[Dict[str, str], bool]:
    """Map each kept utterance id to its split; say whether dev repeats test
    (dev proportion 0)."""
    dev_is_test = _ratios(split_ratio)[1] == 0
    if split == "random":
        return random_split(entries, split_ratio, seed), dev_is_test
    by_speaker = speaker_split({k[1] for k in kept}, split_ratio) if kept else {}
    return {k[0]: by_speaker[k[1]] for k in kept}, dev_is_test


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
