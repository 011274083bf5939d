"""Download and extraction of OpenSLR 54 (Large Nepali ASR training data set).

:func:`download_openslr54` fetches ``utt_spk_text.tsv`` and the shards
``asr_nepali_{0..9,a..f}.zip`` from openslr.org or a mirror, resuming partial
files and checking their sizes (:func:`download_file`). :func:`extract_shard`
unpacks one shard's FLACs and TSV under ``asr_nepali/`` once, skipping
members that fail their CRC check and writing every file atomically;
:func:`find_zips` lists the shards present in a folder.
``openslr54_prepare.py`` calls these before it reads the corpus.

Authors
 * speechbrain-w2vbert contributors
"""

import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from typing import Dict, Iterable, List, NamedTuple, Optional

from tqdm import tqdm

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
#: Top folder of the corpus inside every shard.
CORPUS_DIR = "asr_nepali"
#: The transcript file (utterance id, speaker id, transcript; tab separated).
TSV_NAME = "utt_spk_text.tsv"


class FileStamp(NamedTuple):
    """Name, size and modification time of a file (a JSON list when dumped)."""

    name: str
    size: int
    mtime_ns: int


def file_stamp(path: str) -> FileStamp:
    """Return the :class:`FileStamp` (basename, size, mtime_ns) of ``path``.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.zip")
    >>> _ = open(path, "wb").write(b"12345")
    >>> stamp = file_stamp(path)
    >>> stamp.name, stamp.size
    ('x.zip', 5)
    """
    st = os.stat(path)
    return FileStamp(os.path.basename(path), st.st_size, st.st_mtime_ns)


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
# Extraction
# --------------------------------------------------------------------------
def find_zips(data_folder: str) -> List[str]:
    """Return the sorted paths of the ``asr_nepali_<c>.zip`` in ``data_folder``.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("asr_nepali_3.zip", "asr_nepali_0.zip", "other.zip"):
    ...     open(os.path.join(folder, name), "wb").close()
    >>> [os.path.basename(p) for p in find_zips(folder)]
    ['asr_nepali_0.zip', 'asr_nepali_3.zip']
    """
    if not os.path.isdir(data_folder):
        return []
    names = {shard_name(s) for s in ALL_SHARDS}
    return sorted(os.path.join(data_folder, n) for n in os.listdir(data_folder) if n in names)


def extract_shard(zip_path: str, dest: str) -> Dict[str, int]:
    """Extract the FLACs and TSV of one shard under ``dest`` once.

    Members outside ``asr_nepali/`` or with unsafe names are ignored; a
    member that cannot be read (bad CRC, truncated archive) is skipped and
    counted; every file is written atomically. The TSV goes to
    ``asr_nepali/utt_spk_text.tsv`` unless a different one is already there,
    in which case it is kept beside it as ``utt_spk_text.<shard>.tsv``.
    Files already there with the right size are kept (writes are atomic, so
    they are complete: an interrupted extraction resumes quickly). A marker
    ``asr_nepali/.extracted_<zip name>`` (the zip's :func:`file_stamp`)
    makes the next call a no-op.

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
    stamp = json.dumps(file_stamp(zip_path))
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
