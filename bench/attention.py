"""Attention benchmark: encoder forward + backward at 10 s and 30 s.

Compares, with the same weights and inputs, transformers' ``eager`` and
``sdpa`` attention (both build an (L, L, head_size) relative-position tensor
per layer) with ours (``W2VBert(attn_implementation="sdpa_bucketed")``:
(B, H, L, 73) scores spread into the SDPA bias). Each cell runs in a fresh
worker process of this one run so that its peak memory is its own: CPU peak
RSS growth over the step's start (see common.py), or ``torch.cuda.max_memory_allocated``
on CUDA. Prints a table and one JSON line.

Usage::

    python bench/attention.py                  # mid config: 4 layers x 512, batch 2
    python bench/attention.py --full --device cuda   # the real 24 x 1024 config
"""

import argparse
import json
import os
import sys
import time

from common import add_json_option, emit, reset_peak_rss, rss_mb, run_worker

#: transformers' eager and sdpa (unmodified Wav2Vec2BertModel) and ours.
IMPLEMENTATIONS = ["eager", "sdpa", "sdpa_bucketed"]
FRAMES = [500, 1500]  # 20 ms frames: 10 s and 30 s


def worker(args):
    """Runs one cell and prints its JSON result (in a child process)."""
    import torch
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

    from speechbrain_w2vbert.models.w2vbert import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.full:
        config = Wav2Vec2BertConfig()  # facebook/w2v-bert-2.0's architecture
    else:
        config = Wav2Vec2BertConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048)
    config.layerdrop = 0.0
    config.mask_time_prob = 0.0
    with torch.device(args.device):  # initialised where it runs (faster for the 580M model)
        if args.impl == "sdpa_bucketed":
            model = build_model(config, "sdpa_bucketed")
        else:
            model = Wav2Vec2BertModel._from_config(config, attn_implementation=args.impl)
    model = model.to(args.device).train()
    features = torch.randn(args.batch, args.frames, 160, device=args.device)
    mask = torch.ones(args.batch, args.frames, dtype=torch.long, device=args.device)
    mask[-1, int(args.frames * 0.8) :] = 0  # one padded utterance

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16):
            hidden = model(features, attention_mask=mask).last_hidden_state
        hidden.float().square().mean().backward()
        if args.device == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (allocations, kernels)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = reset_peak_rss()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = rss_mb("VmHWM") - base
    print(json.dumps({"impl": args.impl, "frames": args.frames, "seconds": min(times), "peak_mb": peak}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="24 x 1024 (w2v-BERT 2.0) instead of 4 x 512")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="timed steps per cell (best kept)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--frames", type=int, nargs="*", default=FRAMES)
    parser.add_argument("--impl", nargs="*", default=IMPLEMENTATIONS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args()
    if args.worker:
        args.frames, args.impl = args.frames[0], args.impl[0]
        return worker(args)

    rows = []
    for frames in args.frames:
        for impl in args.impl:
            command = [sys.executable, os.path.abspath(__file__), "--worker", "--frames", str(frames), "--impl", impl,
                       "--device", args.device, "--batch", str(args.batch), "--threads", str(args.threads),
                       "--repeats", str(args.repeats)] + (["--full"] if args.full else []) + (["--bf16"] if args.bf16 else [])
            try:
                rows.append(run_worker(command, args.device))
            except RuntimeError as error:  # e.g. out of memory: reported in the table
                rows.append({"impl": impl, "frames": frames, "error": str(error)})

    config = "24 x 1024" if args.full else "4 x 512"
    print(f"# encoder {config}, batch {args.batch}, device {args.device}, {args.threads} CPU threads, "
          f"{'bf16' if args.bf16 else 'fp32'}, forward + backward, best of {args.repeats}")
    header = f"{'frames':>6} {'attention':<14} {'s/step':>8} {'peak MB':>9} {'time vs sdpa':>13} {'memory vs sdpa':>15}"
    print(header)
    print("-" * len(header))
    for row in rows:
        if "error" in row:
            print(f"{row['frames']:>6} {row['impl']:<14} {row['error']}")
            continue
        base = next((r for r in rows if r["frames"] == row["frames"] and r["impl"] == "sdpa" and "error" not in r), None)
        if base:
            row["time_vs_sdpa"] = row["seconds"] / base["seconds"]
            row["memory_vs_sdpa"] = row["peak_mb"] / base["peak_mb"]
        time_ratio = f"{row['time_vs_sdpa']:.2f}x" if base else "-"
        memory_ratio = f"{row['memory_vs_sdpa']:.2f}x" if base else "-"
        print(f"{row['frames']:>6} {row['impl']:<14} {row['seconds']:>8.2f} {row['peak_mb']:>9.0f} "
              f"{time_ratio:>13} {memory_ratio:>15}")
    emit({"bench": "attention", "config": config, "device": args.device, "batch": args.batch,
          "precision": "bf16" if args.bf16 else "fp32", "repeats": args.repeats, "rows": rows}, args.json, args.threads)


if __name__ == "__main__":
    main()
