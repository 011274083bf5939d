"""The manifest of an exported folder: each file's size and SHA-256, written
last by the export and checked before anything in the folder is loaded, so
that a truncated download or a swapped file is one clear error naming it
rather than a failure deep inside ``torch.load`` or onnxruntime.

``manifest.json``::

    {"format": "speechbrain-w2vbert", "version": "0.2.0", "kind": "encoder_asr",
     "files": {"encoder.ckpt": {"bytes": 7914165, "sha256": "..."}, ...}}

Nothing here needs torch.

Example
-------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> _ = open(os.path.join(folder, "a.txt"), "w").write("hello")
>>> _ = write_manifest(folder, "example")
>>> sorted(verify_manifest(folder)["files"])
['a.txt']
>>> _ = open(os.path.join(folder, "a.txt"), "w").write("hell")
>>> verify_manifest(folder)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
speechbrain_w2vbert.inference.manifest.ManifestError: ...a.txt: 4 bytes where the export wrote 5 (truncated or replaced): re-download or re-export the folder

Authors: speechbrain-w2vbert contributors
"""

import hashlib
import json
import os
from typing import Dict, Iterable, Optional

from speechbrain_w2vbert import __version__

__all__ = ["MANIFEST", "ManifestError", "file_digest", "write_manifest", "read_manifest", "verify_manifest"]

#: The manifest's file name.
MANIFEST = "manifest.json"
#: What ``format`` says in every manifest this package writes.
FORMAT = "speechbrain-w2vbert"


class ManifestError(ValueError):
    """A folder whose files are not the ones its export wrote (the message
    names the file and says what to do)."""


def file_digest(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str, kind: str, files: Optional[Iterable[str]] = None, **extra) -> str:
    """Writes ``folder/manifest.json`` (atomically) listing ``files`` (default:
    every file of the folder, subfolders included, the manifest itself
    excepted) with their sizes and SHA-256.

    Arguments
    ---------
    folder : str
        The exported folder.
    kind : str
        What the folder is (``encoder_asr``, ``onnx``, ...).
    files : iterable of str, optional
        Paths relative to ``folder``.
    **extra
        More top-level fields (JSON values).

    Returns
    -------
    str
        The manifest's path.
    """
    if files is None:
        files = sorted(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
                       for root, _, names in os.walk(folder) for name in names
                       if name != MANIFEST and not name.endswith(".tmp"))
    listing = {}
    for name in files:
        path = os.path.join(folder, name)
        listing[name] = {"bytes": os.path.getsize(path), "sha256": file_digest(path)}
    manifest = {"format": FORMAT, "version": __version__, "kind": kind, **extra, "files": listing}
    path = os.path.join(folder, MANIFEST)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    os.replace(path + ".tmp", path)
    return path


def read_manifest(folder: str) -> Optional[Dict]:
    """The folder's manifest, or None when it has none (folders written
    before 0.2.0).

    Raises
    ------
    ManifestError
        The manifest is not JSON, or not one this package wrote.
    """
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path}: unreadable manifest ({error}): re-download or re-export the folder") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise ManifestError(f"{path}: not a {FORMAT} manifest: re-download or re-export the folder")
    return manifest


def verify_manifest(folder: str) -> Optional[Dict]:
    """Checks every file the manifest lists: present, of its size, of its
    SHA-256; returns the manifest (None for a folder without one).

    Raises
    ------
    ManifestError
        The first file that differs, named, with what to do.
    """
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    for name, expected in manifest["files"].items():
        path = os.path.join(folder, name)
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise ManifestError(f"{os.path.join(folder, MANIFEST)}: lists {name!r}, outside the folder")
        if not os.path.isfile(path):
            raise ManifestError(f"{path}: missing (the export wrote it): re-download or re-export the folder")
        size = os.path.getsize(path)
        if size != expected.get("bytes"):
            raise ManifestError(f"{path}: {size} bytes where the export wrote {expected.get('bytes')} "
                                "(truncated or replaced): re-download or re-export the folder")
        if file_digest(path) != expected.get("sha256"):
            raise ManifestError(f"{path}: its SHA-256 is not the one the export wrote (corrupt or replaced): "
                                "re-download or re-export the folder")
    return manifest
