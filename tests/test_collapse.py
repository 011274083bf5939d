"""The collapse-to-blanks watch (``CollapseMonitor``): it counts dev
evaluations after warm-up whose every hypothesis is empty or one repeated
character, warns at ``patience`` of them naming the usual causes, stops the
run with ``stop``, and keeps its count across a resumption."""

import logging

import pytest

from speechbrain_w2vbert.training.collapse import CollapseMonitor, is_degenerate
from speechbrain_w2vbert.training.stops import CollapsedToBlanks, exit_status_of

COLLAPSED = ["", "   ", "ा", "क क क"]


def evaluate(monitor, hypotheses, updates):
    monitor.observe(hypotheses[:2])  # two batches
    monitor.observe(hypotheses[2:])
    return monitor.end_evaluation(updates)


def test_degenerate_hypotheses():
    assert all(is_degenerate(text) for text in COLLAPSED)
    assert not any(is_degenerate(text) for text in ["कक ख", "नमस्ते", "ab"])


def test_it_warns_after_patience_evaluations_past_warm_up(caplog):
    monitor = CollapseMonitor(patience=2, after_updates=100)
    with caplog.at_level(logging.WARNING):
        assert [evaluate(monitor, COLLAPSED, updates) for updates in (40, 99)] == [None, None]  # warm-up
        assert evaluate(monitor, COLLAPSED, 100) is None and monitor.streak == 1
        warning = evaluate(monitor, COLLAPSED, 200)
    assert monitor.streak == 2 and warning in caplog.text
    assert "update 200" in warning and "all 4 utterances" in warning
    for cause in ("learning rate", "frames per token", "add_adapter", "vocabulary", "[UNK]", "frozen encoder",
                  "freeze_encoder_steps"):
        assert cause in warning, cause
    assert "stop_on_collapse: True would end the run here" in caplog.text
    assert evaluate(monitor, COLLAPSED, 300) is not None  # and again while it stays collapsed


def test_one_real_hypothesis_resets_the_count():
    monitor = CollapseMonitor(patience=2)
    evaluate(monitor, COLLAPSED, 10)
    assert evaluate(monitor, COLLAPSED[:3] + ["नमस्ते"], 20) is None and monitor.streak == 0
    assert evaluate(monitor, COLLAPSED, 30) is None and monitor.streak == 1


def test_stop_on_collapse_ends_the_run_with_status_78():
    monitor = CollapseMonitor(patience=1, stop=True)
    with pytest.raises(CollapsedToBlanks, match="collapsed to blanks.*Usual causes.*stop_on_collapse"):
        evaluate(monitor, COLLAPSED, 5)
    assert exit_status_of(lambda: evaluate(monitor, COLLAPSED, 6)) == 78


def test_the_count_survives_a_resumption(tmp_path):
    monitor = CollapseMonitor(patience=3)
    evaluate(monitor, COLLAPSED, 10)
    evaluate(monitor, COLLAPSED, 20)
    monitor.save(tmp_path / "collapse.ckpt")
    resumed = CollapseMonitor(patience=3)
    resumed.load(tmp_path / "collapse.ckpt")
    assert resumed.streak == 2 and evaluate(resumed, COLLAPSED, 30) is not None


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="patience >= 1"):
        CollapseMonitor(patience=0)
