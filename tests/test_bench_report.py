"""bench/report.py and the host record of bench/common.py: docs/benchmarks.md
assembled from the benches' recorded JSON results (tests/data/bench_report/,
written by a real `make bench-report`), checked without running a bench."""

import copy
import json
import os
import shutil
import subprocess
import sys

import common
import pytest
import report

RECORDED = os.path.join(os.path.dirname(__file__), "data", "bench_report")


@pytest.fixture(scope="module")
def results():
    return report.load_results(RECORDED)


def sections(text):
    """{title: section text} of a rendered report."""
    parts = text.split("\n## ")[1:]
    return {part.split("\n", 1)[0]: part for part in parts}


def table_rows(section_text):
    """Data lines of the markdown tables of a section (header and rule left out)."""
    lines = [line for line in section_text.splitlines() if line.startswith("| ")]
    return [line for line in lines if not line.startswith("| ---") and not _is_header(line, lines)]


def _is_header(line, lines):
    index = lines.index(line)
    return index + 1 < len(lines) and lines[index + 1].startswith("| ---")


def expected_rows(name, result):
    """How many table rows a result must give."""
    if name == "frontend":
        return len(result.get("loop", [])) + len(result.get("back_to_back", []))
    if name == "prepare":
        return len(result["utt_per_s"])
    return len(result["rows"])


def test_every_bench_has_a_recorded_result(results):
    assert sorted(results) == sorted(b.name for b in report.BENCHES)
    for bench in report.BENCHES:
        result = results[bench.name]
        assert result is not None and "error" not in result, bench.name
        # the recorded command is the one the report runs (the --json option left out)
        assert result["host"]["command"] == "python " + " ".join(bench.args), bench.name


def test_each_section_names_its_command_host_and_libraries_and_holds_every_row(results):
    text = report.render(results)
    by_title = sections(text)
    assert [b.title for b in report.BENCHES] == list(by_title)
    for bench in report.BENCHES:
        result, section = results[bench.name], by_title[bench.title]
        host = result["host"]
        assert f"- Command: `{host['command']}`" in section
        assert f"commit `{host['commit']}`" in section and host["date"][:10] in section
        assert host["cpu"]["model"] in section and "AVX2 " in section and "AVX-512 " in section
        assert f"{host['threads']} torch thread" in section or f"{host['threads']} worker process" in section
        for name in ("torch", "transformers", "speechbrain"):
            assert f"{name} {host['versions'][name]}" in section
        assert len(table_rows(section)) == expected_rows(bench.name, result), bench.title
    assert "None" not in text and " nan" not in text.lower() and "| nan" not in text.lower()
    assert text.count("](#") == len(report.BENCHES)  # the contents list links every section


def test_rewriting_from_results_is_idempotent_and_atomic(tmp_path):
    folder = tmp_path / "results"
    shutil.copytree(RECORDED, folder)
    output = tmp_path / "docs" / "benchmarks.md"
    output.parent.mkdir()
    output.write_text("an older report\n")
    argv = ["--from-results", "--results", str(folder), "--output", str(output)]
    assert report.main(argv) == 0
    first = output.read_bytes()
    assert report.main(argv) == 0
    assert output.read_bytes() == first and first.startswith(b"# Benchmarks\n")
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_missing_failed_and_busy_results_are_named(results):
    changed = copy.deepcopy(results)
    changed["attention"] = None
    changed["decode"] = {"error": "RuntimeError: kenlm cannot read this language model", "date": "2026-12-07 10:00 UTC"}
    changed["prepare"]["run"] = {"wall_s": 20.0, "other_cores": 1.25, "steal": 0.0}
    by_title = sections(report.render(changed))
    assert "Not run yet: `python bench/report.py --only attention`" in by_title["Attention"]
    assert "failed (2026-12-07 10:00 UTC): RuntimeError: kenlm cannot read" in by_title["Decoding"]
    assert "**The machine was busy**: other processes took 1.25 CPUs" in by_title["Data preparation"]
    header = report.render(changed).split("\n## ")[0]
    assert "Data preparation" in next(line for line in header.splitlines() if "busy machine" in line)


def test_a_failing_bench_is_named_and_the_others_still_written(tmp_path, monkeypatch, results):
    """Two stand-in benches run as real processes: one writes its result as
    the benches do (common.emit), one fails; the report keeps the first,
    names the second's error, and exits 1."""
    recorded = {k: v for k, v in results["prepare"].items() if k not in ("host", "run")}
    good = ("import sys; sys.path.insert(0, 'bench'); import common, json; "
            f"common.emit(json.loads({json.dumps(json.dumps(recorded))}), sys.argv[sys.argv.index('--json') + 1], 2)")
    bad = "import sys; sys.exit('RuntimeError: out of memory in the worker')"
    benches = [report.Bench("prepare", ["-c", good], "Data preparation", "", report.prepare_table),
               report.Bench("decode", ["-c", bad], "Decoding", "", report.decode_table)]
    monkeypatch.setattr(report, "BENCHES", benches)
    output = tmp_path / "benchmarks.md"
    assert report.main(["--results", str(tmp_path / "results"), "--output", str(output)]) == 1
    by_title = sections(output.read_text())
    assert "failed" in by_title["Decoding"] and "out of memory in the worker" in by_title["Decoding"]
    saved = json.loads((tmp_path / "results" / "prepare.json").read_text())
    assert saved["utt_per_s"] == recorded["utt_per_s"] and saved["run"]["wall_s"] > 0
    assert len(table_rows(by_title["Data preparation"])) == len(recorded["utt_per_s"])


def test_other_processes_load_from_proc_stat():
    hz = os.sysconf("SC_CLK_TCK")
    # 10 s: 12 CPU-seconds busy, of which the bench's own 8; 1 s of 20 stolen
    before, after = [0] * 10, [10 * hz, 0, 2 * hz, 7 * hz, 0, 0, 0, hz, 0, 0]
    assert report.other_load(before, after, own_cpu_s=8.0, wall_s=10.0) == {"other_cores": 0.4, "steal": 0.05}
    assert report.other_load(before, after, own_cpu_s=20.0, wall_s=10.0)["other_cores"] == 0.0
    assert len(report.cpu_times()) >= 8


def test_flags_that_change_the_figures_are_named_yes_or_no():
    assert report.flag_summary(["avx2", "fma"]) == "AVX2 yes · AVX-512 no · VNNI no · AMX no"
    assert report.flag_summary(["avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_bf16"]) == (
        "AVX2 yes · AVX-512 yes · VNNI yes (AVX-512) · AMX yes (tile, bf16)")


def test_host_record_names_this_machine_and_the_command():
    import torch

    info = common.host_info(threads=3)
    assert info["threads"] == 3 and info["cpus"] == os.cpu_count()
    assert set(info["cpu"]["flags"]) <= set(common.CPU_FLAGS)
    assert info["versions"]["torch"] == torch.__version__.split("+")[0]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=common.ROOT, capture_output=True, text=True).stdout
    assert head.startswith(info["commit"].removesuffix("-dirty"))
    argv = [os.path.join(common.ROOT, "bench", "frontend.py"), "--calls", "20", "--json", "out.json", "--json=x"]
    assert common.command_line(argv) == "python bench/frontend.py --calls 20"
    assert sys.modules.get("torch") is torch and info["torch_cpu_capability"]
