"""The GPU report (bench/gpu_report.py): its smoke run covers every part on
the CPU, its wheel folder serves a bare interpreter without shadowing what
is installed, its batch-size search finds the boundary, a part that runs out
of time is stopped, and the report says what it did not run."""

import json
import os
import subprocess
import sys
import zipfile

import gpu_report
import pytest

from tests.helpers import ROOT

SCRIPT = os.path.join(ROOT, "bench", "gpu_report.py")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run: (report JSON, markdown)."""
    out = tmp_path_factory.mktemp("smoke")
    done = subprocess.run([sys.executable, SCRIPT, "--smoke", "--out-dir", str(out), "--work-dir", str(out / "work"),
                           "--wheels", str(out / "no-wheels")], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    logs = "".join(open(p).read()[-2000:] for p in sorted((out / "work" / "logs").glob("*.log"))) if (
        out / "work" / "logs").is_dir() else ""
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{logs}"
    with open(out / "benchmarks-gpu.json", encoding="utf-8") as f:
        report = json.load(f)
    return report, (out / "benchmarks-gpu.md").read_text(encoding="utf-8")


def rows(report, part, kind):
    return [r for r in report["parts"][part]["rows"] if r["kind"] == kind]


@pytest.mark.recipe  # trains through the recipe, twice
def test_smoke_run_covers_every_part(smoke):
    report, markdown = smoke
    assert report["smoke"] and report["device"] == "cpu"
    assert list(report["parts"]) == list(gpu_report.PARTS)
    for name, part in report["parts"].items():
        assert part["status"] == "ok", (name, part["rows"][-3:])
        assert not rows(report, name, "error") and not rows(report, name, "skip"), name
    # Every planned cell has its row.
    frontend = rows(report, "frontend", "loop")
    assert {r["workload"] for r in frontend} == set(rows(report, "frontend", "plan")[0]["cells"])
    for r in frontend:
        if r["impl"] != "reference":  # the real extractor, compared on every valid frame
            assert r["max_abs_diff"] < 5e-5 and r["median"] > 0
    assert rows(report, "frontend", "tf32")[0]["allow_tf32"] is True
    cells = {f"{r['impl']} @ {r['frames']}" for r in rows(report, "attention", "cell")}
    assert cells == set(rows(report, "attention", "plan")[0]["cells"])
    assert [r["impl"] for r in rows(report, "train_step", "impl")] == [i for i, _ in gpu_report.TRAIN_IMPLS]
    assert all(r["audio_s_per_s"] > 0 for r in rows(report, "train_step", "impl"))
    assert [r["impl"] for r in rows(report, "speechbrain_lobe", "lobe")] == ["speechbrain", "ours"]
    same = rows(report, "speechbrain_lobe", "same_weights")[0]  # both lobes loaded the one saved model
    assert same["max_abs_diff"] < 1e-3 * same["max_abs"]
    searches = rows(report, "max_batch", "search")
    assert [r["checkpointing"] for r in searches] == [label for _, label in gpu_report.CHECKPOINTING]
    assert all(r["capped"] and r["utterances"] == 4 for r in searches)  # the smoke cap, every probe fitting
    for name in ("recipe", "recipe_compile"):
        summary = rows(report, name, "summary")[0]
        assert summary["updates"] == len(rows(report, name, "update")) > 10
        assert summary["loss_falls"] and summary["dev_decoded"] and summary["test_wer"] is not None
    export = rows(report, "recipe", "export")[0]
    assert {"encoder.ckpt", "hyperparams.yaml"} <= set(export["inference_files"])
    assert "config.json" in export["hf_files"] and export["loaded_on"] == "cpu"
    assert rows(report, "recipe_compile", "summary")[0]["dynamo"]["unique_graphs"] >= 1
    # The markdown: labelled, every part's section, no GPU targets claimed.
    assert markdown.startswith("# GPU report: CPU smoke run")
    assert "None of its numbers is a GPU figure" in markdown and "## Targets" not in markdown
    for name, (title, _) in gpu_report.PARTS.items():
        if name != "environment":
            assert f"## {title}" in markdown
    assert "compiled vs eager, same updates" in markdown


def test_largest_fitting_finds_the_boundary():
    def search(limit, cap=128, start=8, probes_allowed=100):
        calls = []

        def has_time():
            return len(calls) < probes_allowed

        def fits(n):
            calls.append(n)
            return n <= limit

        return gpu_report.largest_fitting(fits, start, cap, has_time)

    fit, fail, probes = search(37)
    assert (fit, fail) == (37, 38) and [n for n, _ in probes][:4] == [8, 16, 32, 64]
    assert search(500)[:2] == (128, None)  # everything fits: the cap
    assert search(128)[:2] == (128, None)
    assert search(3)[:2] == (3, 4)  # the start fails: down, then up again
    assert search(0)[:2] == (0, 1)
    fit, fail, _ = search(37, probes_allowed=5)  # out of time: the bracket so far
    assert fit < 37 < fail and fail - fit > 1


def make_wheel(folder, name, version, module_text):
    """A minimal pure-Python wheel holding one module."""
    dist = f"{name}-{version}.dist-info"
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name}.py", module_text)
        whl.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{dist}/RECORD", "")
    return path


def test_wheels_fill_in_only_what_the_interpreter_lacks(tmp_path):
    """A wheel of a missing distribution is installed into the report's own
    site folder and imported from there (in children too); a wheel of an
    installed one (here a fake pytest) is left alone."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "gpu_report_probe", "1.0", "VALUE = 42\n")
    make_wheel(str(wheels), "pytest", "0.0.1", "raise ImportError('the fake pytest wheel shadowed the real one')\n")
    code = (f"import sys; sys.path.insert(0, {os.path.join(ROOT, 'bench')!r}); import gpu_report; "
            f"used = gpu_report.use_wheels({str(wheels)!r}, {str(tmp_path / 'work')!r}); "
            "import gpu_report_probe, pytest, subprocess; "
            "child = subprocess.run([sys.executable, '-c', 'import gpu_report_probe; print(gpu_report_probe.VALUE)'], "
            "capture_output=True, text=True).stdout.strip(); "
            "print(used, gpu_report_probe.VALUE, child, pytest.__version__ != '0.0.1')")
    for _ in range(2):  # the second run finds the folder installed
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path))
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["['gpu_report_probe-1.0-py3-none-any.whl']", "42", "42", "True"]
    assert os.listdir(tmp_path / "work") == [f"site-{sys.implementation.cache_tag}"]


def test_wheels_unpack_without_pip(tmp_path):
    """An image without pip: the wheels are unpacked, ``.data/purelib`` to the top."""
    wheel = make_wheel(str(tmp_path), "gpu_report_probe", "1.0", "VALUE = 42\n")
    with zipfile.ZipFile(wheel, "a") as whl:
        whl.writestr("gpu_report_probe-1.0.data/purelib/gpu_report_extra.py", "VALUE = 7\n")
        whl.writestr("gpu_report_probe-1.0.data/scripts/probe", "#!/bin/sh\n")
    gpu_report.install_wheels([wheel], str(tmp_path / "site"), use_pip=False)
    installed = sorted(os.listdir(tmp_path / "site"))
    assert installed == ["gpu_report_extra.py", "gpu_report_probe-1.0.dist-info", "gpu_report_probe.py"]
    done = subprocess.run([sys.executable, "-c", "import gpu_report_probe, gpu_report_extra; "
                           "print(gpu_report_probe.VALUE + gpu_report_extra.VALUE)"],
                          env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")), capture_output=True, text=True)
    assert done.stdout.strip() == "49", done.stderr[-2000:]


def test_wheel_list_is_pinned_to_the_lock_and_fetched_by_make():
    from tools.envcheck import canonical_name, read_lock

    lines = gpu_report.wheel_requirements()
    pins = read_lock(os.path.join(ROOT, "requirements", "lock.txt"))
    assert [canonical_name(line.split("==")[0]) for line in lines] == [canonical_name(n) for n in gpu_report.GPU_WHEELS]
    for line in lines:
        name, version = line.split("==")
        assert pins[canonical_name(name)][1] == version
    assert "speechbrain" in {canonical_name(n) for n in gpu_report.GPU_WHEELS}
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        makefile = f.read()
    assert "bench/gpu_report.py --list-wheels" in makefile and "--python-version 3.12" in makefile


def test_parts_are_stopped_at_their_budget_and_failures_recorded(tmp_path):
    """In one process: a failing part is recorded and the next one runs; the
    process past its parts' budgets is stopped with its process group, the
    part it was in keeping the rows it wrote; a part after it is reported as
    not run."""
    runner = os.path.join(ROOT, "tests", "gpu_report_runner.py")
    records = gpu_report.run_parts(["fails", "rows_then_sleep", "frontend"], [3, 1, 1], "cpu", True, str(tmp_path),
                                   str(tmp_path), 1, grace=0, script=runner)
    failed, stopped, never = records["fails"], records["rows_then_sleep"], records["frontend"]
    assert failed["status"] == "error" and "this part fails on purpose" in failed["rows"][-2]["error"]
    assert stopped["status"] == "timeout" and [r["cell"] for r in stopped["rows"] if r["kind"] == "result"] == ["first"]
    assert gpu_report.missing_cells(stopped) == ["second (stopped at the budget)"]
    assert never["status"] == "skipped" and never["rows"] == []
    assert not (tmp_path / "rows_then_sleep").exists()  # the scratch folder is removed


def test_report_lists_what_a_stopped_part_did_not_run():
    part = {"title": "Attention", "status": "timeout", "budget_s": 40, "wall_s": 50, "rows": [
        {"kind": "plan", "cells": ["eager @ 500", "sdpa @ 500", "sdpa_bucketed @ 500", "eager @ 1500"]},
        {"kind": "setup", "config": "24 x 1024", "batch": 4, "repeats": 3, "precision": "bf16"},
        {"kind": "cell", "cell": "eager @ 500", "impl": "eager", "frames": 500, "seconds": 0.5, "peak_mb": 9000.0},
        {"kind": "cell", "cell": "sdpa @ 500", "impl": "sdpa", "frames": 500, "seconds": 0.4, "peak_mb": 8000.0},
        {"kind": "skip", "cell": "eager @ 1500", "why": "budget: 2 s left, about 6 s needed"}]}
    assert gpu_report.missing_cells(part) == ["eager @ 1500 (budget: 2 s left, about 6 s needed)",
                                              "sdpa_bucketed @ 500 (stopped at the budget)"]
    text = gpu_report.render_attention(part, {"parts": {"attention": part}})
    assert "| 500 | HF eager | 0.500 | 9,000 | 1.25x | 1.12x |" in text
