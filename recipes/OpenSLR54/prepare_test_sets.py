"""Standard Nepali test sets in the recipe's CSV format.

OpenSLR 54 has no official split, so figures on it compare with nothing
published. This module prepares the sets that papers and model cards use,
each from the layout it is distributed in (see ``docs/test-sets.md``):

``fleurs``
    FLEURS as ``google/fleurs`` ships it: a language folder (``ne_np``, or
    the repository's ``data/ne_np``) with headerless ``train.tsv``,
    ``dev.tsv``, ``test.tsv`` (id, file name, raw transcription, normalised
    transcription, characters, number of samples, gender) and the audio in
    ``audio/<split>.tar.gz`` (members ``<split>/<file name>``) or extracted
    in ``audio/<split>/``.
``fleurs_hf``
    FLEURS as a Hugging Face ``datasets`` folder: written by
    ``save_to_disk`` (``dataset_dict.json`` / ``state.json`` and
    ``data-*.arrow``) or parquet shards (``test-00000-of-00001.parquet``,
    ``fleurs-test.parquet``, ``test/0000.parquet``), the audio as bytes in
    an ``audio`` column ``{bytes, path}``. Needs ``pyarrow``.
``cv``
    Common Voice: ``<release>/ne-NP/test.tsv`` (a header row; ``path``,
    ``sentence`` and ``client_id`` are used, whatever other columns the
    release has) and MP3 clips in ``clips/``.
``openslr43``
    OpenSLR 43 (Google's Nepali multi-speaker recordings):
    ``ne_np_female/line_index.tsv`` (``<id>\\t<text>``) and
    ``wavs/<id>.wav`` at 48 kHz; the speaker is the id without its last
    ``_`` part (``nep_0258_0119737288`` -> ``nep_0258``).
``tsv``
    Any TSV/CSV with a header and an id, an audio path and a transcript
    column (names given as options; audio paths relative to the file).

Each writes ``test.csv`` (``ID,duration,wav,spk_id,wrd``, the columns of
``openslr54_prepare``) and ``prep_report.json`` into its folder, with the data
preparation's rules: transcripts normalised by ``normalize_nepali``; digits
written in Devanagari (ASCII ``0-9`` become ``०-९``, the one digits rule of
training, references and scoring); Latin-script lines dropped; audio that
is not 16 kHz mono FLAC/WAV on disk (MP3, 48 kHz WAV, archive members,
parquet bytes) decoded with :func:`speechbrain_w2vbert.audio.read_audio`
and written as 16 kHz FLAC in ``audio/``. The speaker column is empty where
the corpus does not say (FLEURS).

Every line is accounted for: each dropped utterance is counted once in the
report, under the first reason that applies, in this order:
``malformed_line`` (too few fields, no id or audio name), ``duplicate_id``
(the first line of an id wins), ``latin_text``, ``empty_text``,
``audio_absent`` (no such clip or archive member), ``empty_file``,
``unreadable``, ``zero_length``, ``corrupt`` (last frame undecodable),
``too_short`` (under ``min_duration``, by default the 35 ms the model needs)
and ``too_long`` (over ``max_duration``, off by default). A byte-order mark,
quoted fields and columns beyond the expected ones are read and noted in
the report, not dropped. Outputs are written atomically, and a re-run with
the same options and inputs (file sizes and mtimes) does nothing.

Authors
 * speechbrain-w2vbert contributors
"""

import csv
import hashlib
import json
import logging
import os
import re
import tarfile
import time
from collections import Counter
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qsl

import soundfile as sf

from speechbrain_w2vbert.audio import AudioError, read_audio
from speechbrain_w2vbert.text.normalize import char_inventory, has_latin, normalize_nepali, out_of_inventory

from openslr54_download import file_stamp  # the recipe folder is on sys.path
from openslr54_prepare import (
    AudioFile,
    audio_info,
    inputs_fingerprint,
    listing_digest,
    outputs_current,
    write_outputs,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SPLIT = "test"  #: the CSV each preparer writes: test.csv
AUDIO_DIR = "audio"  #: converted 16 kHz FLACs, inside the output folder
DROP_REASONS = (
    "malformed_line", "duplicate_id", "latin_text", "empty_text", "audio_absent",
    "empty_file", "unreadable", "zero_length", "corrupt", "too_short", "too_long",
)
LAYOUTS = ("fleurs", "fleurs_hf", "cv", "openslr43", "tsv")
FLEURS_COLUMNS = ("id", "file_name", "raw_transcription", "transcription", "characters",
                  "num_samples", "gender")
_MAX_EXAMPLES = 20
_FORMAT_VERSION = 1
_IN_PLACE_SUFFIXES = (".wav", ".flac")
_SPLIT_ALIASES = {"dev": ("dev", "validation"), "validation": ("dev", "validation"),
                  "test": ("test",), "train": ("train",)}
_CANDIDATES = {
    "id": ("ID", "id", "utt_id", "utterance_id", "key"),
    "audio": ("wav", "path", "audio", "audio_path", "audio_filepath", "file", "filename"),
    "text": ("wrd", "text", "sentence", "transcript", "transcription"),
    "speaker": ("spk_id", "speaker", "speaker_id", "client_id"),
}

#: Where an utterance's audio is: a file path, or bytes read from an archive
#: member or a table cell.
AudioSource = Union[str, bytes]


class Entry(NamedTuple):
    """One utterance as its index lists it."""

    uid: str
    speaker: str
    text: str  #: raw transcript
    audio: Optional[str]  #: file path; None when the audio comes from an archive or a table


class Listing(NamedTuple):
    """What a layout's reader found: the entries, the lines already dropped
    (``malformed_line``, ``duplicate_id``) and notes on the file format."""

    entries: List[Entry]
    drops: Dict[str, List[str]]
    notes: Dict[str, object]


class SetSpec(NamedTuple):
    """A parsed ``name: layout:path?key=value&...`` entry."""

    name: str
    layout: str
    path: str
    options: Dict[str, str]


# --------------------------------------------------------------------------
# Reading index files
# --------------------------------------------------------------------------
def read_text_lines(path: str) -> Tuple[List[str], bool]:
    """The lines of a UTF-8 text file, and whether it began with a byte-order
    mark (removed). Bytes that are not UTF-8 become U+FFFD.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.tsv")
    >>> _ = open(path, "wb").write("\\ufeffa\\tb\\r\\n\\nc\\n".encode("utf-8"))
    >>> read_text_lines(path)
    (['a\\tb', '', 'c'], True)
    """
    with open(path, "rb") as f:
        raw = f.read()
    bom = raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines], bom


def split_fields(line: str, delimiter: str = "\t") -> Tuple[List[str], bool]:
    """Split an unquoted TSV line (as Common Voice, FLEURS and OpenSLR write
    them: a quote inside a field is a character); a field wholly wrapped in
    double quotes, as spreadsheet tools write them, is unwrapped (``""`` ->
    ``"``). Returns the fields and whether any was unwrapped.

    Example
    -------
    >>> split_fields('a.mp3\\t"उनले ""हो"" भने"\\t"x')
    (['a.mp3', 'उनले "हो" भने', '"x'], True)
    """
    fields = line.split(delimiter)
    quoted = False
    for i, field in enumerate(fields):
        if len(field) >= 2 and field[0] == field[-1] == '"':
            fields[i] = field[1:-1].replace('""', '"')
            quoted = True
    return fields, quoted


def unquoted_rows(path: str, delimiter: str = "\t") -> Tuple[List[Tuple[int, List[str]]], Dict]:
    """The non-blank lines of a delimited file as ``(line number, fields)``
    (:func:`split_fields`), and notes: ``bom``, ``quoted_fields`` (lines
    with an unwrapped field), ``extra_fields`` (0, for the readers to
    count) and ``lines``."""
    lines, bom = read_text_lines(path)
    rows = []
    quoted_lines = 0
    for number, line in enumerate(lines, 1):
        if line.strip():
            fields, quoted = split_fields(line, delimiter)
            quoted_lines += quoted
            rows.append((number, fields))
    return rows, {"bom": bom, "quoted_fields": quoted_lines, "extra_fields": 0, "lines": len(rows)}


def _add(entries: Dict[str, Entry], drops: Dict[str, List[str]], entry: Entry) -> None:
    """Keep ``entry`` unless its id was seen (then count a ``duplicate_id``)."""
    if entry.uid in entries:
        drops["duplicate_id"].append(entry.uid)
    else:
        entries[entry.uid] = entry


def _new_drops() -> Dict[str, List[str]]:
    return {reason: [] for reason in DROP_REASONS}


def _stem(name: str) -> str:
    """File name without folders and extension (``a/b/x.wav`` -> ``x``)."""
    return os.path.splitext(os.path.basename(name.replace("\\", "/")))[0]


def read_fleurs_tsv(path: str, audio_dir: Optional[str], text: str = "raw") -> Listing:
    """Read a FLEURS split TSV (headerless, 7 columns: :data:`FLEURS_COLUMNS`).

    The utterance id is the file name without ``.wav`` (the ``id`` column is
    the FLoRes sentence, shared by all its recordings). Lines with fewer than
    7 fields or a non-numeric sample count are ``malformed_line``; fields after
    the 7th are ignored (counted in ``notes["extra_fields"]``).

    Arguments
    ---------
    path : str
        ``<split>.tsv``.
    audio_dir : str, optional
        Folder of the extracted WAVs; None when they are in an archive.
    text : str
        ``"raw"`` (raw transcription, default) or ``"normalized"`` (FLEURS'
        own normalised transcription).

    Returns
    -------
    Listing
        Entries without speaker (FLEURS has none), drops and notes.

    Example
    -------
    >>> import tempfile
    >>> tsv = os.path.join(tempfile.mkdtemp(), "test.tsv")
    >>> _ = open(tsv, "w").write("7\\t11.wav\\tनमस्ते ।\\tनमस्ते\\tन म स ् त े |\\t16000\\tMALE\\n7\\t12.wav\\n")
    >>> listing = read_fleurs_tsv(tsv, "/data/audio/test")
    >>> listing.entries, listing.drops["malformed_line"]
    ([Entry(uid='11', speaker='', text='नमस्ते ।', audio='/data/audio/test/11.wav')], ['line 2'])

    Example
    -------
    >>> rows, notes = unquoted_rows(os.path.join(TEST_SETS_DIR, "fleurs", "ne_np", "dev.tsv"))
    >>> [fields[1] for _, fields in rows], notes["bom"], notes["lines"]
    (['2001.wav', '2002.wav'], False, 2)
    """
    if text not in ("raw", "normalized"):
        raise ValueError(f"text must be 'raw' or 'normalized', got {text!r}")
    rows, notes = unquoted_rows(path)
    entries: Dict[str, Entry] = {}
    drops = _new_drops()
    for number, fields in rows:
        if len(fields) < len(FLEURS_COLUMNS) or not fields[1].strip() or not fields[5].strip().isdigit():
            drops["malformed_line"].append(f"line {number}")
            continue
        notes["extra_fields"] += len(fields) > len(FLEURS_COLUMNS)
        file_name = fields[1].strip()
        audio = os.path.join(audio_dir, os.path.basename(file_name)) if audio_dir else None
        _add(entries, drops, Entry(_stem(file_name), "", fields[2 if text == "raw" else 3], audio))
    return Listing(list(entries.values()), drops, notes)


def read_header_table(path: str, columns: Dict[str, Optional[str]], audio_root: str,
                      delimiter: Optional[str] = None, quoting: bool = False,
                      required: Sequence[str] = ("audio", "text")) -> Listing:
    """Read a TSV/CSV with a header row into entries.

    ``columns`` maps ``id``, ``audio``, ``text`` and ``speaker`` to column
    names (``""``: no such column); a None name is looked up among common names (``ID``/``id``,
    ``wav``/``path``/``audio``..., ``wrd``/``sentence``/``text``...,
    ``spk_id``/``client_id``...). Without an id column the audio file name
    (no extension) is the id; without a speaker column the speaker is empty.

    Arguments
    ---------
    path : str
        The table.
    columns : dict
        Role (``id``, ``audio``, ``text``, ``speaker``) to column name or None.
    audio_root : str
        Folder that relative audio paths are relative to.
    delimiter : str, optional
        Default: tab for ``.tsv``, else comma.
    quoting : bool
        Read CSV quoting (fields with delimiters or line breaks inside
        quotes) with :mod:`csv`; False reads unquoted lines, unwrapping
        fully quoted fields (see :func:`split_fields`), as Common Voice is
        written.
    required : sequence of str
        Roles that must have a column.

    Returns
    -------
    Listing
        A row with fewer fields than the header needs, or without an audio
        path, is ``malformed_line``; extra fields are noted.

    Raises
    ------
    ValueError
        A required column is missing (the message lists the header).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> tsv = os.path.join(folder, "test.tsv")
    >>> _ = open(tsv, "w").write("client_id\\tpath\\tsentence\\nc1\\ta.mp3\\tनमस्ते\\n")
    >>> read_header_table(tsv, {"id": None, "audio": None, "text": None, "speaker": None}, "/cv/clips").entries
    [Entry(uid='a', speaker='c1', text='नमस्ते', audio='/cv/clips/a.mp3')]
    """
    if delimiter is None:
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
    if quoting:
        lines, bom = read_text_lines(path)
        rows = [(n, r) for n, r in enumerate(csv.reader(lines, delimiter=delimiter), 1) if r]
        notes: Dict[str, object] = {"bom": bom, "quoted_fields": 0, "extra_fields": 0, "lines": len(rows)}
    else:
        rows, notes = unquoted_rows(path, delimiter)
    notes["lines"] = max(0, len(rows) - 1)  # the header is no entry
    if not rows:
        return Listing([], _new_drops(), notes)
    header = [h.strip() for h in rows[0][1]]
    index: Dict[str, Optional[int]] = {}
    for role in ("id", "audio", "text", "speaker"):
        name = columns.get(role)
        if name == "":  # the role has no column
            index[role] = None
            continue
        names = (name,) if name else _CANDIDATES[role]
        found = [header.index(n) for n in names if n in header]
        if name and not found:
            raise ValueError(f"{path}: no column {name!r} for the {role} (header: {header})")
        if role in required and not found:
            raise ValueError(f"{path}: no {role} column among {list(names)} (header: {header}); "
                             f"name it with the {role}_column option")
        index[role] = found[0] if found else None
    entries: Dict[str, Entry] = {}
    drops = _new_drops()
    needed = max(i for i in index.values() if i is not None)
    for number, fields in rows[1:]:
        if len(fields) <= needed or not fields[index["audio"]].strip():
            drops["malformed_line"].append(f"line {number}")
            continue
        notes["extra_fields"] += len(fields) > len(header)
        audio = fields[index["audio"]].strip()
        uid = fields[index["id"]].strip() if index["id"] is not None else _stem(audio)
        if not uid:
            drops["malformed_line"].append(f"line {number}")
            continue
        speaker = fields[index["speaker"]].strip() if index["speaker"] is not None else ""
        text = fields[index["text"]] if index["text"] is not None else ""
        _add(entries, drops, Entry(uid, speaker, text, os.path.join(audio_root, audio)))
    return Listing(list(entries.values()), drops, notes)


def read_line_index(path: str, wav_dir: str) -> Listing:
    """Read OpenSLR 43's ``line_index.tsv`` (``<id>\\t<text>``; a line
    ``<id>\\t\\t<text>``, with an empty middle field, too). The speaker is
    the id without its last ``_`` part. A line with no text field, or more
    than one non-empty field after the id, is ``malformed_line``.

    Example
    -------
    >>> import tempfile
    >>> tsv = os.path.join(tempfile.mkdtemp(), "line_index.tsv")
    >>> _ = open(tsv, "w").write("nep_0258_01\\tनमस्ते\\nnep_0546_02\\t\\tधन्यवाद\\n")
    >>> [(e.uid, e.speaker, e.text) for e in read_line_index(tsv, "/w").entries]
    [('nep_0258_01', 'nep_0258', 'नमस्ते'), ('nep_0546_02', 'nep_0546', 'धन्यवाद')]
    """
    rows, notes = unquoted_rows(path)
    entries: Dict[str, Entry] = {}
    drops = _new_drops()
    for number, fields in rows:
        uid = fields[0].strip()
        rest = [f for f in fields[1:] if f.strip()]
        if not uid or len(fields) < 2 or len(rest) > 1:
            drops["malformed_line"].append(f"line {number}")
            continue
        speaker = uid.rsplit("_", 1)[0] if "_" in uid else uid
        _add(entries, drops, Entry(uid, speaker, rest[0] if rest else "",
                                   os.path.join(wav_dir, uid + ".wav")))
    return Listing(list(entries.values()), drops, notes)


# --------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------
class AudioResult(NamedTuple):
    """What :func:`load_audio` made of one source: ``reason`` is None for a
    usable one; ``path`` is the file the CSV points to."""

    reason: Optional[str]
    path: str
    duration: float
    converted: bool
    error: str


def _safe_name(uid: str) -> str:
    """A file name for ``uid`` (other characters become ``_``; a hash keeps
    changed names apart)."""
    safe = re.sub(r"[^\w.-]", "_", uid)
    if safe != uid or safe.startswith("."):
        safe = f"{safe.lstrip('.')}_{hashlib.sha1(uid.encode('utf-8')).hexdigest()[:8]}"
    return safe


def load_audio(uid: str, source: AudioSource, out_dir: str) -> AudioResult:
    """Check or convert one utterance's audio.

    A 16 kHz mono WAV/FLAC file is used in place, after the checks of
    :func:`openslr54_prepare.audio_info` (header, then the last frame
    decoded). Anything else (other rates, MP3, bytes from an archive or a
    table) is decoded by :func:`speechbrain_w2vbert.audio.read_audio`
    (down-mixed, resampled) and written to ``out_dir/<uid>.flac`` (16-bit,
    atomically).

    Arguments
    ---------
    uid : str
        Utterance id (names the converted file).
    source : str or bytes
        File path, or the file's bytes.
    out_dir : str
        Folder of the converted files.

    Returns
    -------
    AudioResult
        ``reason`` is None or one of ``audio_absent``, ``empty_file``,
        ``unreadable``, ``zero_length``, ``corrupt``, ``too_short``.

    Example
    -------
    >>> import tempfile, numpy
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "a.wav")
    >>> sf.write(path, numpy.zeros(48000, dtype="int16"), 48000)
    >>> result = load_audio("a", path, os.path.join(folder, "out"))
    >>> result.reason, result.duration, result.converted, os.path.basename(result.path)
    (None, 1.0, True, 'a.flac')
    >>> load_audio("b", b"not audio", folder).reason
    'unreadable'
    """
    label = source if isinstance(source, str) else f"{uid} ({len(source)} bytes)"
    if isinstance(source, str):
        if not os.path.isfile(source):
            return AudioResult("audio_absent", source, 0.0, False, "no such file")
        if os.path.getsize(source) == 0:
            return AudioResult("empty_file", source, 0.0, False, "0 bytes")
        if source.lower().endswith(_IN_PLACE_SUFFIXES):
            info = audio_info(source)
            if info.reason is not None:
                return AudioResult(info.reason, source, 0.0, False, info.reason)
            if info.sample_rate == SAMPLE_RATE and info.channels == 1:
                return AudioResult(None, os.path.abspath(source), info.frames / SAMPLE_RATE,
                                   False, "")
    elif not source:
        return AudioResult("empty_file", label, 0.0, False, "0 bytes")
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, _safe_name(uid) + ".flac")
    staged = source if isinstance(source, str) else target + ".src.tmp"
    try:
        if staged is not source:  # bytes: decoded from a file, like any other (format sniffed)
            with open(staged, "wb") as f:
                f.write(source)
        wav = read_audio(staged, SAMPLE_RATE)
    except AudioError as error:
        message = str(error).replace(staged, label)
        reason = ("zero_length" if message.startswith("empty") else
                  "too_short" if message.startswith("too short") else "unreadable")
        return AudioResult(reason, label, 0.0, False, message)
    finally:
        if staged is not source and os.path.exists(staged):
            os.remove(staged)
    sf.write(target + ".tmp", wav.numpy(), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(target + ".tmp", target)
    return AudioResult(None, os.path.abspath(target), wav.shape[0] / SAMPLE_RATE, True, "")


def iter_tar_members(path: str, wanted: Iterable[str],
                     errors: Dict[str, str]) -> Iterator[Tuple[str, bytes]]:
    """Yield ``(file stem, bytes)`` for the members of a (gzip) tar archive
    whose stem is in ``wanted``, in archive order, without extracting it. A
    damaged archive ends the iteration; the error goes to
    ``errors["archive"]``.

    Example
    -------
    >>> errors = {}
    >>> archive = os.path.join(TEST_SETS_DIR, "fleurs", "ne_np", "audio", "train.tar.gz")
    >>> [(stem, data[:4]) for stem, data in iter_tar_members(archive, ["3001", "9999"], errors)], errors
    ([('3001', b'RIFF')], {})
    """
    wanted = set(wanted)
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                stem = _stem(member.name)
                if member.isfile() and stem in wanted:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        wanted.discard(stem)
                        yield stem, handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        errors["archive"] = f"{path}: {error}"


# --------------------------------------------------------------------------
# Hugging Face datasets folders
# --------------------------------------------------------------------------
def _split_names(split: str) -> Tuple[str, ...]:
    if split not in _SPLIT_ALIASES:
        raise ValueError(f"split must be one of {sorted(_SPLIT_ALIASES)}, got {split!r}")
    return _SPLIT_ALIASES[split]


def hf_data_files(folder: str, split: str) -> List[str]:
    """The arrow or parquet files of ``split`` in a ``datasets`` folder.

    ``save_to_disk`` folders: a ``DatasetDict`` (``dataset_dict.json`` and
    one folder per split, ``validation`` for ``dev``) or one ``Dataset``
    (``state.json``, its ``_data_files`` in order). Parquet: ``folder`` is a
    file, or every ``*.parquet`` below it whose path names the split
    (``test-00000-of-00001.parquet``, ``fleurs-test.parquet``,
    ``test/0000.parquet``); when no file names any split, all are taken.

    Raises
    ------
    FileNotFoundError
        Nothing of the split is there (the message says what is).

    Example
    -------
    >>> parquet = os.path.join(TEST_SETS_DIR, "fleurs_hf", "parquet")
    >>> [os.path.relpath(f, parquet) for f in hf_data_files(parquet, "dev")]
    ['ne_np/validation-00000-of-00001.parquet']
    """
    names = _split_names(split)
    if os.path.isfile(folder):
        return [folder]
    if os.path.isfile(os.path.join(folder, "dataset_dict.json")):
        with open(os.path.join(folder, "dataset_dict.json"), encoding="utf-8") as f:
            splits = json.load(f).get("splits", [])
        for name in names:
            if name in splits:
                return hf_data_files(os.path.join(folder, name), split)
        raise FileNotFoundError(f"{folder}: no {split} split (dataset_dict.json lists {splits})")
    if os.path.isfile(os.path.join(folder, "state.json")):
        with open(os.path.join(folder, "state.json"), encoding="utf-8") as f:
            files = [d["filename"] for d in json.load(f).get("_data_files", [])]
        return [os.path.join(folder, name) for name in files]
    found = sorted(os.path.join(root, n) for root, _, files in os.walk(folder)
                   for n in files if n.endswith(".parquet"))
    if not found:
        raise FileNotFoundError(f"{folder}: no dataset_dict.json, state.json or *.parquet")

    def tokens(path: str) -> set:
        """The words of a file's path below ``folder``."""
        return set(re.split(r"[-_./\\\\]", os.path.relpath(path, folder).lower()))

    every = {n for aliases in _SPLIT_ALIASES.values() for n in aliases}
    if not any(tokens(p) & every for p in found):
        return found
    chosen = [p for p in found if tokens(p) & set(names)]
    if not chosen:
        raise FileNotFoundError(f"{folder}: no parquet file of the {split} split among {found}")
    return chosen


def _arrow_batches(path: str, columns: Sequence[str]):
    """Record batches of an arrow (``datasets`` writes the IPC stream
    format) or parquet file, with ``columns`` only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.endswith(".parquet"):
        parquet = pq.ParquetFile(path)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        yield from parquet.iter_batches(batch_size=64, columns=present)
        return
    with pa.memory_map(path) as source:
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i)
                yield batch.select([c for c in columns if c in batch.schema.names])
            return
        for batch in reader:
            yield batch.select([c for c in columns if c in batch.schema.names])


def _schema_names(path: str) -> List[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.endswith(".parquet"):
        return list(pq.ParquetFile(path).schema_arrow.names)
    with pa.memory_map(path) as source:
        try:
            return list(pa.ipc.open_stream(source).schema.names)
        except pa.ArrowInvalid:
            return list(pa.ipc.open_file(source).schema.names)


def _hf_uid(audio_path: Optional[str], path: Optional[str], split: str, row: int) -> str:
    for name in (audio_path, path):
        if name:
            return _stem(name)
    return f"{split}_{row:06d}"


def read_hf_table(files: Sequence[str], split: str, text: str = "raw") -> Listing:
    """Entries of a ``datasets`` FLEURS table (text columns only: the audio
    bytes are read later by :func:`iter_hf_audio`). The id is the audio
    file name without extension (``audio.path``, else ``path``), else
    ``<split>_<row>``.

    Raises
    ------
    ValueError
        A file without an ``audio`` or transcription column.

    Example
    -------
    >>> files = hf_data_files(os.path.join(TEST_SETS_DIR, "fleurs_hf", "save_to_disk"), "test")
    >>> [(e.uid, e.text) for e in read_hf_table(files, "test").entries][:2]
    [('1001', 'नमस्ते साथी ।'), ('1002', 'म 2 वटा किताब किन्छु।')]
    """
    column = "raw_transcription" if text == "raw" else "transcription"
    entries: Dict[str, Entry] = {}
    drops = _new_drops()
    notes: Dict[str, object] = {"files": len(files), "lines": 0}
    row = 0
    for path in files:
        names = _schema_names(path)
        if "audio" not in names or column not in names:
            raise ValueError(f"{path}: needs 'audio' and {column!r} columns (has {names})")
        for batch in _arrow_batches(path, ["audio", "path", column]):
            empty = [None] * batch.num_rows
            audio_paths = batch.column("audio").field("path").to_pylist()  # not the bytes
            outer = batch.column("path").to_pylist() if "path" in batch.schema.names else empty
            texts = batch.column(column).to_pylist()
            for i in range(batch.num_rows):
                notes["lines"] += 1
                uid = _hf_uid(audio_paths[i], outer[i], split, row)
                _add(entries, drops, Entry(uid, "", texts[i] or "", None))
                row += 1
    return Listing(list(entries.values()), drops, notes)


def iter_hf_audio(files: Sequence[str], split: str, wanted: Iterable[str],
                  errors: Dict[str, str]) -> Iterator[Tuple[str, AudioSource]]:
    """Yield ``(uid, bytes or path)`` for the ``wanted`` rows of a
    ``datasets`` table, batch by batch: the cell's bytes, or its ``path``
    when the bytes are null and that file exists (a dataset saved without
    embedding its audio)."""
    wanted = set(wanted)
    row = 0
    seen = set()
    for path in files:
        for batch in _arrow_batches(path, ["audio", "path"]):
            audio = batch.column("audio")
            paths = audio.field("path").to_pylist()
            blobs = audio.field("bytes").to_pylist()
            outer = batch.column("path").to_pylist() if "path" in batch.schema.names else [None] * len(paths)
            for i in range(batch.num_rows):
                uid = _hf_uid(paths[i], outer[i], split, row)
                row += 1
                if uid not in wanted or uid in seen:
                    continue
                seen.add(uid)
                if blobs[i] is not None:
                    yield uid, blobs[i]
                elif paths[i] and os.path.isfile(paths[i]):
                    yield uid, paths[i]
                else:
                    errors[uid] = "no audio bytes and no such file"


# --------------------------------------------------------------------------
# The common part: filters, audio, outputs
# --------------------------------------------------------------------------
def _file_listing(entries: Sequence[Entry]) -> List:
    """``[count, digest]`` of the entries' audio files (size, mtime)."""
    found: Dict[str, AudioFile] = {}
    for e in entries:
        if e.audio is not None:
            try:
                st = os.stat(e.audio)
                found[e.uid] = AudioFile(e.audio, st.st_size, st.st_mtime_ns)
            except OSError:
                found[e.uid] = AudioFile(e.audio, -1, 0)
    return [len(found), listing_digest(found)]


def _run(layout: str, source: str, save_folder: str, options: Dict, inputs: Dict, listing: Listing,
         stream: Optional[Callable[[List[str], Dict[str, str]], Iterator[Tuple[str, AudioSource]]]],
         keep_latin: bool, ascii_digits_to_devanagari: bool, min_duration: Optional[float],
         max_duration: Optional[float]) -> Dict:
    """Filter, check or convert the audio, write ``test.csv`` and the report
    (see the module docstring); ``stream`` yields the audio of archive or
    table sources, None when every entry has a file path."""
    start = time.time()
    drops = listing.drops
    candidates: List[Entry] = []
    for entry in listing.entries:
        if not keep_latin and has_latin(entry.text):
            drops["latin_text"].append(entry.uid)
            continue
        text = normalize_nepali(entry.text, ascii_digits_to_devanagari)
        if not text:
            drops["empty_text"].append(entry.uid)
            continue
        candidates.append(entry._replace(text=text))
    out_dir = os.path.join(save_folder, AUDIO_DIR)
    errors: Dict[str, str] = {}
    results: Dict[str, AudioResult] = {}
    if stream is None:
        for entry in candidates:
            results[entry.uid] = load_audio(entry.uid, entry.audio, out_dir)
    else:
        for uid, src in stream([e.uid for e in candidates], errors):
            results[uid] = load_audio(uid, src, out_dir)
    rows, kept_texts, durations, speakers = [], [], [], set()
    converted = 0
    for entry in candidates:
        result = results.get(entry.uid)
        if result is None:
            result = AudioResult("audio_absent", "", 0.0, False, errors.get(entry.uid, "not found"))
        reason = result.reason
        if reason is None and min_duration is not None and result.duration < min_duration:
            reason = "too_short"
        if reason is None and max_duration is not None and result.duration > max_duration:
            reason = "too_long"
        if reason is not None:
            drops[reason].append(entry.uid)
            if result.error and len(errors) < 10 * _MAX_EXAMPLES:
                errors[entry.uid] = result.error
            continue
        converted += result.converted
        rows.append({"ID": entry.uid, "duration": f"{result.duration:.3f}", "wav": result.path,
                     "spk_id": entry.speaker, "wrd": entry.text})
        kept_texts.append(entry.text)
        durations.append(result.duration)
        if entry.speaker:
            speakers.add(entry.speaker)
    _remove_stale(out_dir, {os.path.basename(r["wav"]) for r in rows})
    oov = Counter("".join(out_of_inventory(t, keep_latin) for t in kept_texts))
    report = {
        "fingerprint": inputs_fingerprint(options, inputs),
        "skipped": False,
        "layout": layout,
        "source": os.path.abspath(source),
        "options": options,
        "inputs": inputs,
        "notes": dict(listing.notes, converted=converted),
        "entries": len(listing.entries) + len(drops["malformed_line"]) + len(drops["duplicate_id"]),
        "kept": {
            "utterances": len(rows),
            "hours": round(sum(durations) / 3600, 4),
            "words": sum(len(t.split()) for t in kept_texts),
            "speakers": len(speakers) if speakers else None,
        },
        "drops": {r: len(v) for r, v in drops.items()},
        "drop_examples": {r: v[:_MAX_EXAMPLES] for r, v in drops.items() if v},
        "errors": dict(list(errors.items())[:_MAX_EXAMPLES]),
        "char_inventory": dict(sorted(char_inventory(kept_texts).items())),
        "out_of_inventory": dict(oov.most_common()),
        "seconds": round(time.time() - start, 2),
    }
    write_outputs(save_folder, {SPLIT: rows}, report)
    log_summary(report)
    return report


def _remove_stale(out_dir: str, keep: set) -> None:
    """Delete converted files of an earlier run that no row uses now."""
    if os.path.isdir(out_dir):
        for name in os.listdir(out_dir):
            if name.endswith((".flac", ".tmp")) and name not in keep:
                os.remove(os.path.join(out_dir, name))


def log_summary(report: Dict) -> None:
    """Log one test set's preparation in a few lines."""
    kept = report["kept"]
    dropped = ", ".join(f"{r} {n}" for r, n in report["drops"].items() if n) or "none"
    logger.info(
        "%s %s: %d entries, %d kept (%.3f h, %d words, %s speakers, %d converted to 16 kHz FLAC); "
        "dropped: %s", report["layout"], report["source"], report["entries"], kept["utterances"],
        kept["hours"], kept["words"], kept["speakers"] if kept["speakers"] is not None else "unknown",
        report["notes"]["converted"], dropped,
    )


def _prepare(layout: str, source: str, save_folder: str, listing: Listing, inputs: Dict,
             layout_options: Dict, stream, keep_latin: bool, ascii_digits_to_devanagari: bool,
             min_duration: Optional[float], max_duration: Optional[float]) -> Dict:
    """Return the existing report when the outputs match these options and
    inputs (``skipped`` True), else prepare (:func:`_run`)."""
    options = {"format": _FORMAT_VERSION, "layout": layout, **layout_options, "keep_latin": keep_latin,
               "ascii_digits_to_devanagari": ascii_digits_to_devanagari,
               "min_duration": min_duration, "max_duration": max_duration}
    current = outputs_current(save_folder, inputs_fingerprint(options, inputs), splits=(SPLIT,))
    if current is not None:
        logger.info("%s is up to date with the inputs and options; skipping", save_folder)
        current["skipped"] = True
        return current
    return _run(layout, source, save_folder, options, inputs, listing, stream, keep_latin,
                ascii_digits_to_devanagari, min_duration, max_duration)


# --------------------------------------------------------------------------
# One function per layout
# --------------------------------------------------------------------------
#: Default shortest utterance, s: w2v-BERT 2.0's shortest input (560 samples
#: at 16 kHz, its encoder's ``min_samples``), which gives it one output frame.
_DEFAULT_MIN = 0.035


def find_fleurs_folder(data_folder: str, lang: str = "ne_np") -> str:
    """The FLEURS language folder: ``data_folder`` itself when it holds
    split TSVs, else ``data_folder/lang`` or ``data_folder/data/lang``.

    Raises
    ------
    FileNotFoundError
        None of them has a split TSV.

    Example
    -------
    >>> files = hf_data_files(os.path.join(TEST_SETS_DIR, "fleurs_hf", "save_to_disk"), "test")
    >>> errors = {}
    >>> [uid for uid, _ in iter_hf_audio(files, "test", ["1001", "test_000003"], errors)], errors
    (['1001'], {'test_000003': 'no audio bytes and no such file'})
    """
    for folder in (data_folder, os.path.join(data_folder, lang), os.path.join(data_folder, "data", lang)):
        if any(os.path.isfile(os.path.join(folder, f"{s}.tsv")) for s in ("test", "dev", "train")):
            return folder
    raise FileNotFoundError(f"{data_folder}: no FLEURS test.tsv/dev.tsv/train.tsv here, in {lang}/ "
                            f"or in data/{lang}/ (the google/fleurs repository's layout)")


def prepare_fleurs(data_folder: str, save_folder: str, split: str = "test", lang: str = "ne_np",
                   text: str = "raw", keep_latin: bool = False, ascii_digits_to_devanagari: bool = True,
                   min_duration: Optional[float] = _DEFAULT_MIN, max_duration: Optional[float] = None) -> Dict:
    """Prepare a FLEURS split from the ``google/fleurs`` repository layout.

    Arguments
    ---------
    data_folder : str
        The language folder (``.../data/ne_np``), or a folder above it.
    save_folder : str
        Output folder (``test.csv``, ``prep_report.json``, ``audio/``).
    split : str
        ``test`` (default), ``dev`` (or ``validation``) or ``train``.
    lang : str
        Language folder name, when ``data_folder`` is above it.
    text : str
        ``raw`` (raw transcription, normalised here; default) or
        ``normalized`` (FLEURS' normalised transcription column).
    keep_latin, ascii_digits_to_devanagari : bool
        As in ``openslr54_prepare``; digits map to Devanagari by default
        (the scoring's digits rule).
    min_duration, max_duration : float, optional
        Duration bounds in seconds (default: at least 35 ms, no maximum).

    Returns
    -------
    dict
        The report (also in ``prep_report.json``), ``skipped`` True when
        the outputs were current.

    Example
    -------
    >>> import tempfile
    >>> report = prepare_fleurs(os.path.join(TEST_SETS_DIR, "fleurs"), tempfile.mkdtemp())
    >>> report["kept"]["utterances"], report["drops"]["audio_absent"]
    (2, 1)
    """
    names = _split_names(split)
    folder = find_fleurs_folder(data_folder, lang)
    tsv = next((os.path.join(folder, f"{n}.tsv") for n in names
                if os.path.isfile(os.path.join(folder, f"{n}.tsv"))), None)
    if tsv is None:
        raise FileNotFoundError(f"{folder}: no {split}.tsv")
    name = os.path.splitext(os.path.basename(tsv))[0]
    audio_dir = os.path.join(folder, "audio", name)
    archive = next((os.path.join(folder, "audio", name + ext) for ext in (".tar.gz", ".tgz", ".tar")
                    if os.path.isfile(os.path.join(folder, "audio", name + ext))), None)
    extracted = os.path.isdir(audio_dir) or archive is None
    listing = read_fleurs_tsv(tsv, audio_dir if extracted else None, text)
    inputs = {"tsv": file_stamp(tsv),
              "audio": _file_listing(listing.entries) if extracted else file_stamp(archive)}
    stream = None
    if not extracted:
        def stream(wanted, errors):
            """The archive members of the wanted utterances."""
            return iter_tar_members(archive, wanted, errors)
    return _prepare("fleurs", folder, save_folder, listing, inputs, {"split": name, "text": text}, stream,
                    keep_latin, ascii_digits_to_devanagari, min_duration, max_duration)


def prepare_fleurs_hf(data_folder: str, save_folder: str, split: str = "test", text: str = "raw",
                      keep_latin: bool = False, ascii_digits_to_devanagari: bool = True,
                      min_duration: Optional[float] = _DEFAULT_MIN,
                      max_duration: Optional[float] = None) -> Dict:
    """Prepare a FLEURS split saved by Hugging Face ``datasets``
    (``save_to_disk`` folder or parquet shards, audio bytes inside). The
    audio is decoded from the bytes and written as 16 kHz FLAC.

    Arguments are those of :func:`prepare_fleurs` (``data_folder``: the
    saved folder, a parquet folder or one parquet file).

    Example
    -------
    >>> import tempfile
    >>> folder = os.path.join(TEST_SETS_DIR, "fleurs_hf", "save_to_disk")
    >>> prepare_fleurs_hf(folder, tempfile.mkdtemp())["kept"]["utterances"]
    2
    """
    files = hf_data_files(data_folder, split)
    listing = read_hf_table(files, split, text)
    inputs = {"files": [file_stamp(f) for f in files]}

    def stream(wanted, errors):
        """The audio cells of the wanted rows."""
        return iter_hf_audio(files, split, wanted, errors)

    return _prepare("fleurs_hf", data_folder, save_folder, listing, inputs, {"split": split, "text": text},
                    stream,
                    keep_latin, ascii_digits_to_devanagari, min_duration, max_duration)


def find_cv_folder(data_folder: str, locale: str = "ne-NP") -> str:
    """The Common Voice locale folder: ``data_folder`` itself when it has
    ``clips/`` or a TSV, else ``data_folder/locale``."""
    for folder in (data_folder, os.path.join(data_folder, locale)):
        if os.path.isdir(os.path.join(folder, "clips")) or os.path.isfile(os.path.join(folder, "test.tsv")):
            return folder
    raise FileNotFoundError(f"{data_folder}: no Common Voice clips/ or test.tsv here or in {locale}/")


def prepare_common_voice(data_folder: str, save_folder: str, tsv: str = "test.tsv", locale: str = "ne-NP",
                         keep_latin: bool = False, ascii_digits_to_devanagari: bool = True,
                         min_duration: Optional[float] = _DEFAULT_MIN,
                         max_duration: Optional[float] = None) -> Dict:
    """Prepare a Common Voice TSV (``test.tsv`` by default) and its MP3 clips.

    The columns are found by name in the header (``path``, ``sentence``;
    ``client_id`` is the speaker), so the releases' varying columns
    (``sentence_id``, ``sentence_domain``, ``variant``...) do not matter.
    MP3s are decoded (libsndfile >= 1.1) and written as 16 kHz FLAC.

    Arguments
    ---------
    data_folder : str
        ``<release>/ne-NP`` or the release folder above it.
    save_folder : str
        Output folder.
    tsv : str
        The TSV in the locale folder (``test.tsv``, ``dev.tsv``...).
    locale : str
        Locale folder name, when ``data_folder`` is the release.
    keep_latin, ascii_digits_to_devanagari, min_duration, max_duration
        As in :func:`prepare_fleurs`.

    Example
    -------
    >>> import tempfile
    >>> release = os.path.join(TEST_SETS_DIR, "cv", "cv-corpus-17.0-2024-03-15")
    >>> prepare_common_voice(release, tempfile.mkdtemp())["kept"]["utterances"]
    2
    """
    folder = find_cv_folder(data_folder, locale)
    path = os.path.join(folder, tsv)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such Common Voice TSV")
    columns = {"id": "", "audio": "path", "text": "sentence", "speaker": None}
    listing = read_header_table(path, columns, os.path.join(folder, "clips"), delimiter="\t")
    inputs = {"tsv": file_stamp(path), "audio": _file_listing(listing.entries)}
    return _prepare("cv", path, save_folder, listing, inputs, {"tsv": tsv}, None,
                    keep_latin, ascii_digits_to_devanagari, min_duration, max_duration)


def prepare_openslr43(data_folder: str, save_folder: str, keep_latin: bool = False,
                      ascii_digits_to_devanagari: bool = True,
                      min_duration: Optional[float] = _DEFAULT_MIN,
                      max_duration: Optional[float] = None) -> Dict:
    """Prepare OpenSLR 43 (``line_index.tsv`` and ``wavs/`` at 48 kHz; the
    WAVs are resampled to 16 kHz FLAC). OpenSLR 43 has no split: the whole
    corpus is the test set.

    Arguments
    ---------
    data_folder : str
        ``ne_np_female/`` (extracted ``ne_np_female.zip``) or its parent.
    save_folder : str
        Output folder.
    keep_latin, ascii_digits_to_devanagari, min_duration, max_duration
        As in :func:`prepare_fleurs`.

    Example
    -------
    >>> import tempfile
    >>> report = prepare_openslr43(os.path.join(TEST_SETS_DIR, "openslr43"), tempfile.mkdtemp())
    >>> report["kept"]["utterances"], report["kept"]["speakers"]
    (2, 2)
    """
    folder = next((f for f in (data_folder, os.path.join(data_folder, "ne_np_female"))
                   if os.path.isfile(os.path.join(f, "line_index.tsv"))), None)
    if folder is None:
        raise FileNotFoundError(f"{data_folder}: no line_index.tsv here or in ne_np_female/ "
                                "(unzip ne_np_female.zip)")
    index = os.path.join(folder, "line_index.tsv")
    listing = read_line_index(index, os.path.join(folder, "wavs"))
    inputs = {"tsv": file_stamp(index), "audio": _file_listing(listing.entries)}
    return _prepare("openslr43", folder, save_folder, listing, inputs, {}, None,
                    keep_latin, ascii_digits_to_devanagari, min_duration, max_duration)


def prepare_tsv(path: str, save_folder: str, id_column: Optional[str] = None,
                audio_column: Optional[str] = None, text_column: Optional[str] = None,
                speaker_column: Optional[str] = None, delimiter: Optional[str] = None,
                audio_root: Optional[str] = None, keep_latin: bool = False,
                ascii_digits_to_devanagari: bool = True, min_duration: Optional[float] = _DEFAULT_MIN,
                max_duration: Optional[float] = None) -> Dict:
    """Prepare any TSV/CSV with a header: one row per utterance with an id,
    an audio path and a transcript (CSV quoting is read).

    Arguments
    ---------
    path : str
        The table (``.tsv``: tab separated, else comma, unless
        ``delimiter``).
    save_folder : str
        Output folder.
    id_column, audio_column, text_column, speaker_column : str, optional
        Column names; by default the first present of common names
        (``ID``/``id``..., ``wav``/``path``/``audio``...,
        ``wrd``/``text``/``sentence``..., ``spk_id``/``speaker``...). No id
        column: the audio file name is the id.
    delimiter : str, optional
        Field separator.
    audio_root : str, optional
        Folder relative audio paths start from (default: the table's).
    keep_latin, ascii_digits_to_devanagari, min_duration, max_duration
        As in :func:`prepare_fleurs`.

    Example
    -------
    >>> import tempfile
    >>> table = os.path.join(TEST_SETS_DIR, "generic", "test.csv")
    >>> prepare_tsv(table, tempfile.mkdtemp(), id_column="utt", audio_column="file")["kept"]["utterances"]
    2
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    root = audio_root or os.path.dirname(os.path.abspath(path))
    columns = {"id": id_column, "audio": audio_column, "text": text_column, "speaker": speaker_column}
    listing = read_header_table(path, columns, root, delimiter, quoting=True)
    inputs = {"tsv": file_stamp(path), "audio": _file_listing(listing.entries)}
    layout_options = {"columns": columns, "delimiter": delimiter, "audio_root": os.path.abspath(root)}
    return _prepare("tsv", path, save_folder, listing, inputs, layout_options, None,
                    keep_latin, ascii_digits_to_devanagari, min_duration, max_duration)


PREPARERS: Dict[str, Callable[..., Dict]] = {
    "fleurs": prepare_fleurs,
    "fleurs_hf": prepare_fleurs_hf,
    "cv": prepare_common_voice,
    "openslr43": prepare_openslr43,
    "tsv": prepare_tsv,
}

#: Options a spec may give, per layout (values are strings, converted here).
SPEC_OPTIONS = {
    "fleurs": ("split", "lang", "text"),
    "fleurs_hf": ("split", "text"),
    "cv": ("tsv", "locale"),
    "openslr43": (),
    "tsv": ("id_column", "audio_column", "text_column", "speaker_column", "delimiter", "audio_root"),
}


# --------------------------------------------------------------------------
# Specs and the dispatcher
# --------------------------------------------------------------------------
def parse_test_set(spec: Union[str, Dict[str, str]]) -> SetSpec:
    """Parse ``"name: layout:path?key=value&..."``.

    The name is optional (default: the layout, with the split for FLEURS);
    ``name:layout:path`` (no space: one shell word) is read the same, and
    so is the one-key mapping YAML makes of ``name: layout:path``. Options
    after ``?`` are those of :data:`SPEC_OPTIONS` (e.g.
    ``fleurs:/data/ne_np?split=dev``, ``tsv:/x.csv?audio_column=file``); an
    option written ``key value`` is read as ``key=value`` (SpeechBrain's
    command-line overrides turn ``=`` into a space).

    Raises
    ------
    ValueError
        No known layout, an empty path, or an option the layout lacks.

    Example
    -------
    >>> parse_test_set("fleurs_dev: fleurs:/data/fleurs/ne_np?split=dev")
    SetSpec(name='fleurs_dev', layout='fleurs', path='/data/fleurs/ne_np', options={'split': 'dev'})
    >>> parse_test_set({"cv17": "cv:/data/cv-corpus-17.0-2024-03-15"}).name
    'cv17'
    >>> parse_test_set("openslr43:/data/ne_np_female").name
    'openslr43'
    >>> parse_test_set("cv: cv:/data/cv").name
    'cv'
    >>> parse_test_set("cv17:cv:/data/cv-corpus-17.0-2024-03-15")
    SetSpec(name='cv17', layout='cv', path='/data/cv-corpus-17.0-2024-03-15', options={})
    >>> parse_test_set("fleurs_dev: fleurs:/data/ne_np?split dev").options  # as SpeechBrain's overrides pass it
    {'split': 'dev'}
    """
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise ValueError(f"a test set is one 'name: layout:path' entry, got {spec!r}")
        (name, rest), = spec.items()
        text = f"{name}: {rest}"
    else:
        text = str(spec).strip()
    name = ""
    named = re.fullmatch(r"\s*([^:\s]+):\s+(\S.*)", text, flags=re.S)
    if named and ":" in named.group(2):  # "name: layout:path" (no space after a layout's colon)
        name, text = named.group(1), named.group(2).strip()
    else:
        packed = re.fullmatch(r"\s*([^:\s]+):(\w+):(.+)", text, flags=re.S)
        if packed and packed.group(2) in LAYOUTS:  # "name:layout:path", as a shell word
            name, text = packed.group(1), f"{packed.group(2)}:{packed.group(3)}"
    layout, sep, target = text.partition(":")
    layout = layout.strip()
    if not sep or layout not in LAYOUTS:
        raise ValueError(f"test set {spec!r}: expected 'name: layout:path' with a layout among {LAYOUTS}")
    path, _, query = target.strip().partition("?")
    if not path:
        raise ValueError(f"test set {spec!r}: no path")
    # SpeechBrain's command line (--extra_test_sets=[...]) turns every '=' into a space: read "key value" back
    query = "&".join(p if "=" in p or " " not in p.strip() else "=".join(p.strip().split(" ", 1))
                     for p in query.split("&")) if query else query
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(SPEC_OPTIONS[layout]))
    if unknown:
        raise ValueError(f"test set {spec!r}: unknown option(s) {unknown} for {layout} "
                         f"(known: {list(SPEC_OPTIONS[layout])})")
    if not name:
        name = layout + (f"_{options['split']}" if options.get("split") else "")
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"test set {spec!r}: the name {name!r} must be letters, digits, '_', '-' or '.'")
    return SetSpec(name, layout, path, options)


def prepare_test_set(spec: Union[str, Dict[str, str], SetSpec], save_root: str, **common) -> Dict:
    """Prepare one test set into ``save_root/<name>/``.

    Arguments
    ---------
    spec : str, dict or SetSpec
        See :func:`parse_test_set`.
    save_root : str
        Folder of all prepared test sets.
    **common
        ``keep_latin``, ``ascii_digits_to_devanagari``, ``min_duration``,
        ``max_duration``.

    Returns
    -------
    dict
        The report, with ``name``.

    Example
    -------
    >>> import tempfile
    >>> spec = "ovc: openslr43:" + os.path.join(TEST_SETS_DIR, "openslr43")
    >>> root = tempfile.mkdtemp()
    >>> prepare_test_set(spec, root)["kept"]["utterances"]
    2
    >>> sorted(os.listdir(os.path.join(root, "ovc")))
    ['audio', 'prep_report.json', 'test.csv']
    """
    parsed = spec if isinstance(spec, SetSpec) else parse_test_set(spec)
    report = PREPARERS[parsed.layout](parsed.path, os.path.join(save_root, parsed.name),
                                      **parsed.options, **common)
    return dict(report, name=parsed.name)


def prepare_test_sets(specs: Iterable[Union[str, Dict[str, str]]], save_root: str,
                      **common) -> Dict[str, Dict]:
    """Prepare several test sets (see :func:`prepare_test_set`); names must
    be unique. Returns name -> report."""
    parsed = [parse_test_set(s) for s in specs]
    names = Counter(p.name for p in parsed)
    twice = sorted(n for n, c in names.items() if c > 1)
    if twice:
        raise ValueError(f"test set names must be unique: {twice} given more than once")
    return {p.name: prepare_test_set(p, save_root, **common) for p in parsed}


#: The committed fixtures (tests/data/test_sets), for the examples above.
TEST_SETS_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                              os.pardir, "tests", "data", "test_sets"))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Prepare standard Nepali test sets for the recipe")
    parser.add_argument("save_root", help="output folder: one subfolder per test set")
    parser.add_argument("specs", nargs="+", help="'name: layout:path?key=value' (layouts: "
                        + ", ".join(LAYOUTS) + ")")
    parser.add_argument("--keep-latin", action="store_true")
    parser.add_argument("--ascii-digits", action="store_true",
                        help="keep ASCII digits (default: map them to Devanagari)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prepare_test_sets(args.specs, args.save_root, keep_latin=args.keep_latin,
                      ascii_digits_to_devanagari=not args.ascii_digits)
