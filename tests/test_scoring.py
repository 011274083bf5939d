"""Scoring transcripts to clean a corpus (recipes/OpenSLR54/score_transcripts.py):
deliberately corrupted transcripts rank first, the ranking feeds the data
preparation's exclusion list, bad rows are reported and the others scored."""

import csv
import os
import random
import sys

import pytest

from tests.helpers import MODEL, ROOT

sys.path.insert(0, os.path.join(ROOT, "recipes", "OpenSLR54"))  # the recipe's scripts, as train.py imports them
import score_transcripts  # noqa: E402


def _write_rows(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)


def _score(model, source, out, *options):
    """score_transcripts.main on a CSV: (exit status, the ranked rows)."""
    status = score_transcripts.main([model, str(source), "--output", str(out), *map(str, options)])
    with open(out, encoding="utf-8") as f:
        return status, list(csv.DictReader(f))


def _corrupt(rows, seed=0):
    """Copies of the rows with 3 pairs of transcripts swapped and 6 cut to
    their first half of words; the corrupted ids."""
    rows = [dict(r) for r in rows]
    rng = random.Random(seed)
    picked = rng.sample(range(len(rows)), 12)
    bad = set()
    for a, b in zip(picked[0:6:2], picked[1:6:2]):
        rows[a]["wrd"], rows[b]["wrd"] = rows[b]["wrd"], rows[a]["wrd"]
        bad |= {rows[a]["ID"], rows[b]["ID"]}
    for i in picked[6:]:
        words = rows[i]["wrd"].split()
        rows[i]["wrd"] = " ".join(words[:max(1, len(words) // 2)])
        bad.add(rows[i]["ID"])
    return rows, bad


@pytest.mark.slow
def test_corrupted_transcripts_rank_first_and_feed_the_exclusion_list(sample_corpus, tmp_path):
    """All 273 prepared utterances of the sample corpus, 12 corrupted: the
    12 flagged by CTC loss per character hold them (measured: precision and
    recall 12/12; loss per frame and CER 11/12, alignment score 7/12).
    Asserted: at least 10 of 12; then the flagged CSV given to the data
    preparation drops exactly those ids."""
    from openslr54_prepare import SAMPLE_DATA_DIR, prepare_openslr54

    rows = sample_corpus.rows("train") + sample_corpus.rows("dev") + sample_corpus.rows("test")
    corrupted, bad = _corrupt(rows)
    _write_rows(tmp_path / "corrupted.csv", corrupted)
    out = tmp_path / "scores.csv"
    status, ranked = _score(MODEL, tmp_path / "corrupted.csv", out, "--flag", len(bad), "--savedir", tmp_path / "sb")
    assert status == 0
    assert [int(r["rank"]) for r in ranked] == list(range(1, len(rows) + 1))
    flagged = {r["ID"] for r in ranked if r["flagged"] == "1"}
    assert len(flagged) == len(bad) and len(flagged & bad) >= 10, sorted(flagged & bad)
    losses = [float(r["loss_per_char"]) for r in ranked]
    assert losses == sorted(losses, reverse=True)

    report = prepare_openslr54(SAMPLE_DATA_DIR, str(tmp_path / "prep"), extract_folder=sample_corpus.extract_folder,
                               exclude_list=str(out))
    assert report["drops"]["excluded"] == len(flagged)
    kept = {r["ID"] for split in ("train", "dev", "test") for r in csv.DictReader(
        open(tmp_path / "prep" / f"{split}.csv", encoding="utf-8"))}
    assert not kept & flagged and len(kept) == len(rows) - len(flagged)
    again = prepare_openslr54(SAMPLE_DATA_DIR, str(tmp_path / "prep"), extract_folder=sample_corpus.extract_folder,
                              exclude_list=str(out))
    assert again["skipped"]  # same options and list: nothing redone


def test_unscorable_rows_are_listed_first_and_the_others_scored(sample_test_rows, tmp_path, capsys):
    rows = [dict(r) for r in sample_test_rows[:3]]
    rows[0]["wav"] = str(tmp_path / "missing.flac")
    rows[1]["wrd"] = "hello"
    _write_rows(tmp_path / "rows.csv", rows)
    status, ranked = _score(MODEL, tmp_path / "rows.csv", tmp_path / "scores.csv", "--flag", 0,
                            "--savedir", tmp_path / "sb")
    assert status == 1
    assert [r["flagged"] for r in ranked] == ["1", "1", "0"] and ranked[2]["ID"] == rows[2]["ID"]
    assert {r["ID"] for r in ranked[:2]} == {rows[0]["ID"], rows[1]["ID"]}
    err = capsys.readouterr().err
    assert "missing.flac" in err and "characters outside the model's vocabulary: 'h'" in err
