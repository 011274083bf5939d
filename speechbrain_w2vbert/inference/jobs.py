"""Transcribing archives: a list of files read and transcribed in batches
(:func:`transcribe_paths`), and resumable batch jobs that write one JSON per
file (:class:`TranscriptionJob`), shardable across processes and machines.

A job's output folder::

    <output_dir>/transcripts/<file>.json   one per transcribed file: {"file", **Transcript.to_json()}
    <output_dir>/errors/<file>.json        one per file that failed: {"file", "error"}
    <output_dir>/logs/rank-<r>-of-<n>.jsonl  each rank's progress, a line per file
    <output_dir>/summary.jsonl             a line per manifest file, in order, once all have an outcome

``<file>`` is the path as the manifest writes it, made relative (a leading
``/`` dropped, ``..`` written ``__``), so that the tree mirrors the
archive's. Every JSON is written to a temporary name and renamed, so a
killed job leaves only complete files; a transcript that exists is never
redone, so a job run again transcribes exactly the files without one (the
failed ones are tried again). Rank ``r`` of ``n`` (``torchrun`` sets
``RANK`` and ``WORLD_SIZE``) takes the manifest's files ``r, r + n, r +
2n...``: ranks never share a file and need not talk to each other; the rank
that finds every file with an outcome writes the summary. Ranks on
several machines need the output folder on a shared file system.

Example
-------
>>> import tempfile
>>> from speechbrain_w2vbert.inference.results import Transcript
>>> class Stub:  # stands in for a Transcriber
...     batch_size = 2
...     def read(self, path):
...         if path.endswith(".txt"):
...             raise AudioError("unreadable: not audio")
...         return path
...     def transcribe_waveforms(self, wavs, timestamps=False):
...         return [Transcript(f"text of {w}", 1.0) for w in wavs]
>>> job = TranscriptionJob(tempfile.mkdtemp(), ["a.wav", "/data/b.flac", "c.txt"])
>>> job.run(Stub())
{'transcribed': 2, 'failed': 1, 'already_done': 0}
>>> job.run(Stub())  # a second run redoes only the failure
{'transcribed': 0, 'failed': 1, 'already_done': 2}
>>> [line["file"] for line in job.summary()]
['a.wav', '/data/b.flac', 'c.txt']
>>> job.output_path("/data/b.flac")[len(job.output_dir):]
'/transcripts/data/b.flac.json'

Authors: speechbrain-w2vbert contributors
"""

import concurrent.futures
import json
import os
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from speechbrain_w2vbert.audio import AudioError
from speechbrain_w2vbert.inference.results import Transcript

__all__ = ["transcribe_paths", "read_manifest", "relative_name", "distributed_rank", "rank_device", "write_json",
           "TranscriptionJob"]

#: One result per file: ``(path, Transcript)`` or ``(path, error message)``.
PathResult = Tuple[str, object]


def transcribe_paths(transcriber, paths: Sequence[str], timestamps: bool = False) -> List[PathResult]:
    """Reads and transcribes files in one batch: ``(path, Transcript)`` per
    path, in order, or ``(path, message)`` for a file that could not be
    read or transcribed (no speech)."""
    return _transcribed(transcriber, *_read(transcriber, paths), timestamps)


def _read(transcriber, paths: Sequence[str]):
    """``(results, readable, wavs)``: a ``(path, None)`` or ``(path, message)``
    per path, the indices of the readable ones and their waveforms."""
    wavs, readable, results = [], [], []
    for path in paths:
        try:
            wavs.append(transcriber.read(path))
            readable.append(len(results))
            results.append((path, None))
        except AudioError as error:
            results.append((path, str(error)))
    return results, readable, wavs


def _transcribed(transcriber, results, readable, wavs, timestamps) -> List[PathResult]:
    for i, result in zip(readable, transcriber.transcribe_waveforms(wavs, timestamps) if wavs else []):
        results[i] = (results[i][0], result if isinstance(result, Transcript) else str(result))
    return results


def read_manifest(path: str) -> List[str]:
    """The audio paths of a manifest: one per line; blank lines and lines
    starting with ``#`` are skipped; surrounding whitespace is kept out."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def relative_name(path: str) -> str:
    """The relative form of a path that names its outputs.

    Example
    -------
    >>> relative_name("/archive/2024/a.flac"), relative_name("../x/./b.wav")
    ('archive/2024/a.flac', '__/x/b.wav')
    """
    parts = [p for p in os.path.normpath(path).replace(os.sep, "/").split("/") if p not in ("", ".")]
    return "/".join("__" if p == ".." else p for p in parts)


def distributed_rank(environ=None) -> Tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as ``torchrun`` sets them
    (``(0, 1, 0)`` outside it).

    Example
    -------
    >>> distributed_rank({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    (3, 4, 1)
    """
    environ = os.environ if environ is None else environ
    rank, world = int(environ.get("RANK", 0)), int(environ.get("WORLD_SIZE", 1))
    if not 0 <= rank < world:
        raise ValueError(f"RANK {rank} is not in [0, WORLD_SIZE {world})")
    return rank, world, int(environ.get("LOCAL_RANK", 0))


def rank_device(device: str, local_rank: int, world_size: int) -> str:
    """The device of one rank: ``cuda`` without an index becomes
    ``cuda:<local rank>`` when several processes run (one device each).

    Example
    -------
    >>> rank_device("cuda", 1, 2), rank_device("cpu", 1, 2), rank_device("cuda", 0, 1)
    ('cuda:1', 'cpu', 'cuda')
    """
    return f"{device}:{local_rank}" if world_size > 1 and device in ("cuda", "xpu") else device


def write_json(path: str, data, tmp_suffix: str = ".tmp") -> None:
    """Writes ``data`` as UTF-8 JSON atomically (a temporary file renamed)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + tmp_suffix, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
        f.write("\n")
    os.replace(path + tmp_suffix, path)


class TranscriptionJob:
    """A resumable batch job over a list of files (see the module doc).

    Arguments
    ---------
    output_dir : str
        The job's folder (created).
    paths : sequence of str
        The files, as the manifest names them (each once).

    Raises
    ------
    ValueError
        Two paths whose outputs would have the same name.
    """

    def __init__(self, output_dir: str, paths: Sequence[str]):
        self.output_dir = output_dir
        self.paths = list(paths)
        seen: Dict[str, str] = {}
        for path in self.paths:
            name = relative_name(path)
            if name in seen:
                raise ValueError(f"{path} and {seen[name]} would write the same output {name}.json (each file once, "
                                 "and paths that differ otherwise than by a leading / or ..)")
            seen[name] = path

    def output_path(self, path: str) -> str:
        """Where the transcript of ``path`` goes."""
        return os.path.join(self.output_dir, "transcripts", relative_name(path) + ".json")

    def error_path(self, path: str) -> str:
        """Where the error of ``path`` goes."""
        return os.path.join(self.output_dir, "errors", relative_name(path) + ".json")

    def shard(self, rank: int = 0, world_size: int = 1) -> List[str]:
        """The files of rank ``rank`` of ``world_size``: every ``world_size``-th from the ``rank``-th."""
        return self.paths[rank::world_size]

    def pending(self, rank: int = 0, world_size: int = 1) -> List[str]:
        """The shard's files without a transcript yet."""
        return [p for p in self.shard(rank, world_size) if not os.path.exists(self.output_path(p))]

    def _groups(self, transcriber, paths: List[str]) -> Iterator[Tuple[List[str], List[PathResult], List[int], list]]:
        """Groups of ``batch_size`` files, each read in a thread while the previous one is transcribed."""
        size = max(1, int(getattr(transcriber, "batch_size", 8)))
        groups = [paths[i:i + size] for i in range(0, len(paths), size)]

        def read(group):
            """The group with its read results (in the reader thread)."""
            return (group, *_read(transcriber, group))

        with concurrent.futures.ThreadPoolExecutor(1) as reader:
            upcoming = reader.submit(read, groups[0]) if groups else None
            for k in range(len(groups)):
                current = upcoming.result()
                upcoming = reader.submit(read, groups[k + 1]) if k + 1 < len(groups) else None
                yield current

    def run(self, transcriber, rank: int = 0, world_size: int = 1, timestamps: bool = False) -> Dict[str, int]:
        """Transcribes the shard's pending files, writing each outcome as it
        comes, then the summary if every file of the manifest has one.

        Returns
        -------
        dict
            ``transcribed``, ``failed`` and ``already_done`` counts of this rank.
        """
        shard = self.shard(rank, world_size)
        pending = self.pending(rank, world_size)
        counts = {"transcribed": 0, "failed": 0, "already_done": len(shard) - len(pending)}
        log_path = os.path.join(self.output_dir, "logs", f"rank-{rank}-of-{world_size}.jsonl")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as log:
            for group, results, readable, wavs in self._groups(transcriber, pending):
                start = time.perf_counter()
                results = _transcribed(transcriber, results, readable, wavs, timestamps)
                seconds = (time.perf_counter() - start) / max(1, len(group))
                for path, result in results:
                    if isinstance(result, str):
                        write_json(self.error_path(path), {"file": path, "error": result})
                        counts["failed"] += 1
                    else:
                        write_json(self.output_path(path), {"file": path, **result.to_json()})
                        if os.path.exists(self.error_path(path)):
                            os.remove(self.error_path(path))
                        counts["transcribed"] += 1
                    log.write(json.dumps({"file": path, "ok": not isinstance(result, str),
                                          "seconds": round(seconds, 4), "time": round(time.time(), 3)},
                                         ensure_ascii=False) + "\n")
                log.flush()
        self.write_summary()
        return counts

    def summary(self) -> Optional[List[Dict]]:
        """A line per manifest file, in order: ``{"file", "output", "duration",
        "text"}`` or ``{"file", "error"}``; None while a file has no outcome."""
        lines = []
        for path in self.paths:
            output = self.output_path(path)
            try:
                with open(output, encoding="utf-8") as f:
                    data = json.load(f)
                lines.append({"file": path, "output": os.path.relpath(output, self.output_dir),
                              "duration": data["duration"], "text": data["text"]})
                continue
            except FileNotFoundError:
                pass
            try:
                with open(self.error_path(path), encoding="utf-8") as f:
                    lines.append({"file": path, "error": json.load(f)["error"]})
            except FileNotFoundError:
                return None
        return lines

    def write_summary(self) -> bool:
        """Writes ``summary.jsonl`` (atomically) if every file has an outcome; whether it did."""
        lines = self.summary()
        if lines is None:
            return False
        path = os.path.join(self.output_dir, "summary.jsonl")
        with open(f"{path}.tmp{os.getpid()}", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        os.replace(f"{path}.tmp{os.getpid()}", path)
        return True
