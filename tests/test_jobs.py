"""Batch jobs (``w2vbert-asr transcribe --manifest FILES.txt --output-dir
DIR``): a job killed in the middle and resumed transcribes exactly the
remaining files and leaves the done ones untouched; two ranks under
``torchrun`` (CPU) split the manifest without overlap; bad files are
reported per file and tried again on resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import MODEL, ROOT, cli


@pytest.fixture(scope="module")
def archive(sample_test_rows, tmp_path_factory):
    """40 recordings in 5 folders (the test speaker's 8 utterances, copied)
    and a manifest of them, with a comment and a blank line."""
    root = tmp_path_factory.mktemp("archive")
    paths = []
    for folder in range(5):
        os.makedirs(root / f"box{folder}")
        for i, row in enumerate(sample_test_rows[:8]):
            path = str(root / f"box{folder}" / f"utt{i}.flac")
            shutil.copy(row["wav"], path)
            paths.append(path)
    manifest = str(root / "files.txt")
    with open(manifest, "w", encoding="utf-8") as f:
        f.write("# the archive\n\n" + "\n".join(paths) + "\n")
    return manifest, paths


def outputs(out):
    """{relative path: (inode, mtime_ns)} of the transcripts written (a
    kill may leave one temporary file, which is not a transcript)."""
    found = {}
    for folder, _, files in os.walk(os.path.join(out, "transcripts")):
        for name in files:
            if name.endswith(".tmp"):
                continue
            stat = os.stat(os.path.join(folder, name))
            found[os.path.relpath(os.path.join(folder, name), out)] = (stat.st_ino, stat.st_mtime_ns)
    return found


def log_files(out, name):
    with open(os.path.join(out, "logs", name), encoding="utf-8") as f:
        return [json.loads(line)["file"] for line in f]


def job_command(manifest, out, *extra):
    return [sys.executable, "-m", "speechbrain_w2vbert.cli", "transcribe", MODEL, "--manifest", manifest,
            "--output-dir", out, *extra]


@pytest.mark.slow
def test_a_killed_job_resumes_with_exactly_the_remaining_files(archive, asr, tmp_path):
    from speechbrain_w2vbert.inference.jobs import TranscriptionJob
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    manifest, paths = archive
    out = str(tmp_path / "job")
    job = TranscriptionJob(out, paths)
    process = subprocess.Popen(job_command(manifest, out, "--batch-size", "1"), cwd=ROOT,
                               env=dict(os.environ, PYTHONPATH=ROOT), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(outputs(out)) < 4:
        assert process.poll() is None and time.monotonic() < deadline, "the job ended before it could be killed"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    before = outputs(out)
    assert 4 <= len(before) < len(paths)
    remaining = job.pending()
    assert len(remaining) == len(paths) - len(before)
    assert not os.path.exists(os.path.join(out, "summary.jsonl"))
    logged = log_files(out, "rank-0-of-1.jsonl")

    _, _, err = cli("transcribe", MODEL, "--manifest", manifest, "--output-dir", out, "--batch-size", 4)
    assert f"{len(remaining)} transcribed, 0 failed" in err and f"{len(before)} already done" in err
    after = outputs(out)
    assert {k: after[k] for k in before} == before  # the done files untouched
    assert len(after) == len(paths)
    assert log_files(out, "rank-0-of-1.jsonl")[len(logged):] == remaining  # the resumed run: exactly those
    leftovers = [n for _, _, files in os.walk(out) for n in files if ".tmp" in n]
    assert leftovers == []

    with open(os.path.join(out, "summary.jsonl"), encoding="utf-8") as f:
        summary = [json.loads(line) for line in f]
    assert [line["file"] for line in summary] == paths
    transcriber = Transcriber(asr)
    expected = transcriber.transcribe_waveforms([transcriber.read(p) for p in paths[:8]])
    assert [line["text"] for line in summary[:8]] == [t.text for t in expected]
    with open(job.output_path(paths[0]), encoding="utf-8") as f:
        assert json.load(f) == {"file": paths[0], **json.loads(json.dumps(expected[0].to_json()))}


@pytest.mark.slow
def test_two_ranks_split_the_work_without_overlap(archive, tmp_path):
    manifest, paths = archive
    out = str(tmp_path / "job")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "speechbrain_w2vbert.cli", "transcribe", MODEL, "--manifest", manifest,
                           "--output-dir", out, "--device", "cpu"],
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [log_files(out, f"rank-{r}-of-2.jsonl") for r in range(2)]
    assert ranks == [paths[0::2], paths[1::2]]  # each its share, once; together the whole manifest
    assert len(outputs(out)) == len(paths)
    with open(os.path.join(out, "summary.jsonl"), encoding="utf-8") as f:
        assert [json.loads(line)["file"] for line in f] == paths


def test_bad_files_are_reported_and_retried_on_resume(tmp_path, sample_test_rows):
    good = sample_test_rows[0]["wav"]
    broken = str(tmp_path / "broken.flac")
    with open(broken, "wb") as f:
        f.write(b"not audio")
    manifest = str(tmp_path / "files.txt")
    with open(manifest, "w", encoding="utf-8") as f:
        f.write(f"{good}\n{broken}\n")
    out = str(tmp_path / "out")
    status, _, err = cli("transcribe", MODEL, "--manifest", manifest, "--output-dir", out, check=False)
    assert status == 1 and "1 transcribed, 1 failed" in err
    with open(os.path.join(out, "summary.jsonl"), encoding="utf-8") as f:
        summary = [json.loads(line) for line in f]
    assert summary[0]["file"] == good and "text" in summary[0]
    assert summary[1]["file"] == broken and "unreadable" in summary[1]["error"]
    shutil.copy(good, broken)  # mended: the resumed job transcribes it
    status, _, err = cli("transcribe", MODEL, "--manifest", manifest, "--output-dir", out)
    assert "1 transcribed, 0 failed" in err and "1 already done" in err
    assert not os.path.exists(os.path.join(out, "errors", broken.lstrip("/") + ".json"))
    with open(os.path.join(out, "summary.jsonl"), encoding="utf-8") as f:
        assert all("text" in json.loads(line) for line in f)


def test_a_manifest_naming_one_output_twice_is_refused(tmp_path):
    manifest = str(tmp_path / "files.txt")
    with open(manifest, "w", encoding="utf-8") as f:
        f.write("/data/a.wav\ndata/a.wav\n")
    with pytest.raises(SystemExit, match="data/a.wav.json"):
        cli("transcribe", MODEL, "--manifest", manifest, "--output-dir", str(tmp_path / "out"))
    with pytest.raises(SystemExit, match="no files"):
        cli("transcribe", MODEL)
