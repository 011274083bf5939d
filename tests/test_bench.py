"""The benchmarks' batching (bench/train_step.py, bench/frontend.py) and CPU
memory helpers (bench/common.py): what makes their comparisons fair,
checked without running a benchmark."""

import common
import frontend
import numpy as np
import pytest
import torch
import train_step


@pytest.fixture(scope="module")
def args():
    from argparse import Namespace

    return Namespace(pool=4000, steps=12, seconds_per_step=32.0, seed=0)


def test_both_sides_train_the_same_audio_per_step_over_the_epoch(args):
    lengths = train_step.durations(args.pool, args.seed)
    assert 1.0 <= lengths.min() and lengths.max() <= 15.0 and 3.5 < lengths.mean() < 4.5
    hf = train_step.hf_batches(lengths, train_step.hf_batch_size(lengths, args.seconds_per_step), args.seed)
    hf_audio = np.mean([lengths[b].sum() for b in hf])
    ours = train_step.our_batches(lengths, hf_audio, args.seed)
    assert sorted(i for b in hf for i in b) == list(range(args.pool))  # one epoch each
    assert sorted(i for b in ours for i in b) == list(range(args.pool))
    assert abs(np.mean([lengths[b].sum() for b in ours]) / hf_audio - 1) < 0.02


@pytest.mark.parametrize("impl", ["hf", "ours"])
def test_steps_start_with_the_epochs_largest_batch(impl, args):
    lengths = train_step.durations(args.pool, args.seed)
    steps = train_step.epoch_steps(impl, lengths, args)
    padded = [len(b) * lengths[b].max() for b in steps]
    assert len(steps) == args.steps and len({tuple(b) for b in steps}) == args.steps
    assert padded[0] == max(padded)
    if impl == "hf":  # the blog's fixed batch size meets the longest utterances together
        assert padded[0] > 2 * np.mean(padded)


def test_peak_rss_reset_follows_live_memory():
    """After a reset the peak is the current resident set, and a large
    tensor allocated and freed since raises it by about its size."""
    base = common.reset_peak_rss()
    assert common.rss_mb("VmHWM") <= base + 5
    block = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
    del block
    assert common.rss_mb("VmHWM") - base > 60


def test_frontend_loop_batches_are_the_recipes():
    """The in-the-loop frontend bench draws the GPU recipe's batches: its
    batcher's settings, a new shape at almost every call, the epoch's
    largest batch first; and the CLI workload sends single 2-15 s files."""
    settings = frontend.recipe_batching()
    with open(frontend.RECIPE_HPARAMS, encoding="utf-8") as f:
        text = f.read()
    for key, value in settings.items():  # the yaml's own lines
        assert f"\n{key}: {value:g}  #" in text, key
    batches = frontend.recipe_batches(12, seed=0)
    assert len(batches) == 12 and all(1 <= len(b) <= settings["max_batch_ex"] for b in batches)
    assert all(len(b) * max(b) <= settings["max_batch_length"] + 15 for b in batches)  # padded s, one bucket's spread
    assert len({(len(b), round(max(b), 2)) for b in batches}) >= 11  # new shapes
    assert len(batches[0]) * max(batches[0]) == max(len(b) * max(b) for b in batches)
    files = frontend.cli_files(20, seed=0)
    assert all(len(f) == 1 and 2.0 <= f[0] <= 15.0 for f in files)


def test_mfu_peak_is_the_gpu_models_own():
    """The dense bf16 peak by GPU name: the PCIe and NVL H100s are not the SXM's."""
    assert train_step.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert train_step.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert train_step.peak_flops("NVIDIA H100 NVL") == 835e12
    assert train_step.peak_flops("NVIDIA H200") == 989e12
    assert train_step.peak_flops("NVIDIA A100-SXM4-80GB") == train_step.peak_flops("NVIDIA A100 80GB PCIe") == 312e12
    assert train_step.peak_flops("Tesla T4") is None
