"""Training-step benchmark: the Hugging Face blog recipe vs ours, same data.

An epoch of synthetic utterances with an OpenSLR 54-like duration mix
(1-15 s, mean about 4 s; 20,000 by default) is batched by each side's own
sampler, with the same mean seconds of audio per optimiser step. Each side
then trains the same number of its steps: its largest batch of the epoch
(which sets the memory the epoch needs) and steps drawn at random from the
others (a fair sample of its speed). Each worker runs in its own process of
this one run, so that each peak memory is its own; all use the same encoder
configuration and seeds:

- ``hf``: what the Hugging Face blog "Fine-Tune W2V2-Bert for low-resource
  ASR" does. Features computed once by ``SeamlessM4TFeatureExtractor``
  before training (the blog's ``dataset.map``) and padded per batch by its
  data collator; ``Wav2Vec2BertForCTC`` with ``attn_implementation="sdpa"``
  and ``gradient_checkpointing=True`` (the blog's ``TrainingArguments``);
  a fixed number of utterances per batch padded to the longest, batches
  grouped by length like the Trainer's ``group_by_length`` (mega-batches of
  50 batches sorted by length).
- ``hf_nockpt``: the same without gradient checkpointing, to show how much
  of the difference checkpointing accounts for.
- ``ours``: the recipe's step with the recipe's defaults (no gradient
  checkpointing). ``SeamlessFbank`` on the training device, ``W2VBert``
  (bucketed relative-key attention), a linear head with fp32 log-softmax
  and CTC (``speechbrain_w2vbert.models.ctc``), and SpeechBrain's
  ``DynamicBatchSampler`` batching by seconds of audio. ``ours_ckpt``: the
  same with ``gradient_checkpointing=True``; ``ours_ckpt2`` (only with
  ``--impls``): every second layer checkpointed.

Both sides step a fused AdamW and clip gradients to norm 1.0, as the
Trainer's defaults and the recipe do.

The encoder configuration is the blog's on both sides: attention, hidden
and feature-projection dropout, time masking and layerdrop off (the others
at transformers' defaults, which the blog leaves: activation dropout 0, and
``Wav2Vec2BertForCTC``'s dropout of 0.1 before its head on the hf side),
``add_adapter=True``, CTC loss averaged.

Reports seconds of audio trained per wall second over the timed steps
(after one untimed warm-up step), padding fraction, peak memory (CPU: growth
of peak RSS over the start of the timed steps, from a second run, see
common.py; CUDA: ``torch.cuda.max_memory_allocated``) and, on CUDA, model
FLOPs utilisation. Prints a table and one JSON line.

Usage::

    python bench/train_step.py                              # CPU, 4 x 512 encoder
    python bench/train_step.py --precision bf16             # bf16 autocast on both sides
    python bench/train_step.py --precision bf16 --hf-precision fp16  # each recipe's default
    python bench/train_step.py --full --device cuda --bf16  # the real 24 x 1024 encoder

``--hf-precision fp16`` runs the hf side as the blog sets it
(``fp16=True``: fp16 autocast with a gradient scaler) while ours keeps the
recipe's ``precision: bf16``; it compares defaults, not implementations.
"""

import argparse
import json
import os
import sys
import time

from common import add_json_option, durations, emit, reset_peak_rss, rss_mb, run_worker

import numpy as np

SAMPLE_RATE = 16000
VOCAB_SIZE = 64  # characters, blank = 0
CHARS_PER_SECOND = 12  # label density of read Nepali speech
#: the workers, in table order: the blog, the blog without checkpointing, ours,
#: ours with checkpointing (every layer; ours_ckpt2: every second layer, not run by default).
IMPLEMENTATIONS = ("hf", "hf_nockpt", "ours", "ours_ckpt", "ours_ckpt2")
#: Dense (no sparsity) bf16 tensor-core peak by GPU name, FLOP/s, from
#: NVIDIA's datasheets; the first entry whose key is in
#: ``torch.cuda.get_device_name()`` applies, so the longer names come first.
PEAK_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("A100", 312e12),
)


def peak_flops(device_name):
    """The dense bf16 peak (FLOP/s) of the GPU named ``device_name`` (see
    :data:`PEAK_FLOPS`), None for a GPU not in the table."""
    return next((flops for key, flops in PEAK_FLOPS if key in device_name), None)


def make_utterance(seconds, index):
    """(waveform, labels) of a synthetic utterance; content is irrelevant to speed."""
    rng = np.random.default_rng(index)
    length = int(seconds * SAMPLE_RATE)
    envelope = np.abs(np.sin(np.linspace(0, seconds * 3, length)))
    wav = (0.1 * envelope * rng.standard_normal(length)).astype(np.float32)
    labels = rng.integers(1, VOCAB_SIZE, max(1, int(seconds * CHARS_PER_SECOND)))
    return wav, labels


def encoder_config(full):
    """The encoder configuration both workers train."""
    from transformers import Wav2Vec2BertConfig

    if full:
        config = Wav2Vec2BertConfig()  # facebook/w2v-bert-2.0's architecture
    else:
        config = Wav2Vec2BertConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048)
    # The blog's fine-tuning configuration.
    for name in ("attention_dropout", "hidden_dropout", "feat_proj_dropout", "mask_time_prob", "layerdrop"):
        setattr(config, name, 0.0)
    config.add_adapter = True
    config.vocab_size = VOCAB_SIZE
    config.pad_token_id = 0
    config.ctc_loss_reduction = "mean"
    return config


def hf_batches(lengths, batch_size, seed):
    """Index batches like transformers' LengthGroupedSampler: random
    mega-batches of 50 batches, each sorted by length, then cut."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    mega = 50 * batch_size
    batches = []
    for start in range(0, len(order), mega):
        group = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return batches


def sample_steps(batches, lengths, steps, seed):
    """The epoch's largest batch (padded seconds) first, then ``steps - 1`` others at random."""
    padded = [len(b) * max(float(lengths[i]) for i in b) for b in batches]
    largest = int(np.argmax(padded))
    others = [i for i in range(len(batches)) if i != largest]
    chosen = np.random.default_rng(seed).choice(others, size=min(steps - 1, len(others)), replace=False)
    return [batches[largest]] + [batches[i] for i in chosen]


def epoch_steps(impl, lengths, args):
    """The steps one side trains (lists of utterance indices), see the module docstring."""
    hf_epoch = hf_batches(lengths, hf_batch_size(lengths, args.seconds_per_step), args.seed)
    if impl.startswith("hf"):
        return sample_steps(hf_epoch, lengths, args.steps, args.seed)
    # The same mean audio per step as the hf side's fixed batch size gives.
    audio = sum(float(lengths[i]) for b in hf_epoch for i in b) / len(hf_epoch)
    return sample_steps(our_batches(lengths, audio, args.seed), lengths, args.steps, args.seed)


def hf_batch_size(lengths, seconds_per_step):
    """Utterances per batch giving about ``seconds_per_step`` of audio."""
    return max(1, round(seconds_per_step / float(np.mean(lengths))))


def our_batches(lengths, seconds_per_step, seed):
    """Index batches from SpeechBrain's DynamicBatchSampler with the GPU recipe's 40 buckets.

    Its ``max_batch_length`` bounds the *padded* seconds of a batch (batch
    size x its bucket's longest duration), so the audio per step comes out
    lower; the bound is scaled until the mean audio per step equals
    ``seconds_per_step``, the hf side's, within 2%.
    """
    from speechbrain.dataio.dataset import DynamicItemDataset
    from speechbrain.dataio.sampler import DynamicBatchSampler

    dataset = DynamicItemDataset({str(i): {"duration": float(d)} for i, d in enumerate(lengths)})
    bound = seconds_per_step
    for _ in range(20):
        sampler = DynamicBatchSampler(
            dataset, max_batch_length=bound, num_buckets=40, length_func=lambda x: x["duration"],
            shuffle=True, batch_ordering="random", seed=seed,
        )
        batches = [[int(i) for i in batch] for batch in sampler]
        audio = sum(float(lengths[i]) for b in batches for i in b) / len(batches)
        if abs(audio / seconds_per_step - 1) < 0.02:
            break
        bound *= seconds_per_step / audio
    return batches


def training_flops(config, frames_per_utterance):
    """Forward + backward FLOPs of the encoder for a padded batch: 6 x params
    x frames for the dense layers, plus the attention products."""
    from transformers import Wav2Vec2BertModel

    params = sum(p.numel() for p in Wav2Vec2BertModel(config).parameters()) if config.num_hidden_layers < 8 else 580e6
    frames = sum(frames_per_utterance)
    attention = sum(12 * config.num_hidden_layers * config.hidden_size * t * t for t in frames_per_utterance)
    return 6 * params * frames + attention


def worker(args):
    """Trains one pass with one implementation; prints its JSON result."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    lengths = durations(args.pool, args.seed)
    batches = epoch_steps(args.impl, lengths, args)
    data = {i: make_utterance(lengths[i], i) for b in batches for i in b}
    config = encoder_config(args.full)
    precision = args.precision
    if args.impl.startswith("hf") and args.hf_precision:
        precision = args.hf_precision
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")  # as the Trainer does for fp16

    if args.impl.startswith("hf"):
        from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertForCTC

        extractor = SeamlessM4TFeatureExtractor()
        # The blog's dataset.map: features once per utterance, before training.
        features = {i: {"input_features": extractor(wav, sampling_rate=SAMPLE_RATE).input_features[0]}
                    for i, (wav, _) in data.items()}
        with device:  # initialised where it trains (a 580M CPU initialisation takes tens of seconds)
            model = Wav2Vec2BertForCTC._from_config(config, attn_implementation="sdpa")
        model = model.to(device).train()
        if args.impl == "hf":  # what the Trainer calls for gradient_checkpointing=True (the older name before 5.2x)
            (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()

        def step(indices):
            # The blog's DataCollatorCTCWithPadding: pad features, labels with -100.
            inputs = extractor.pad([features[i] for i in indices], padding=True, return_tensors="pt")
            labels = torch.full((len(indices), max(len(data[i][1]) for i in indices)), -100)
            for row, i in enumerate(indices):
                labels[row, : len(data[i][1])] = torch.from_numpy(data[i][1])
            with autocast:
                loss = model(**{k: v.to(device) for k, v in inputs.items()}, labels=labels.to(device)).loss
            return loss

    else:
        from speechbrain_w2vbert.models.ctc import ctc_log_probs, ctc_loss
        from speechbrain_w2vbert.models.w2vbert import W2VBert

        checkpointing = {"ours": 0, "ours_ckpt": 1, "ours_ckpt2": 2}[args.impl]  # every n-th layer
        with device:
            encoder = W2VBert(config=config.to_dict(), pretrained=False, gradient_checkpointing=checkpointing)
            head = torch.nn.Linear(config.hidden_size, VOCAB_SIZE)
        model = torch.nn.ModuleDict({"encoder": encoder, "head": head}).to(device).train()

        def step(indices):
            longest = max(len(data[i][0]) for i in indices)
            wavs = torch.zeros(len(indices), longest)
            labels = torch.zeros(len(indices), max(len(data[i][1]) for i in indices), dtype=torch.long)
            for row, i in enumerate(indices):
                wavs[row, : len(data[i][0])] = torch.from_numpy(data[i][0])
                labels[row, : len(data[i][1])] = torch.from_numpy(data[i][1])
            wav_lens = torch.tensor([len(data[i][0]) / longest for i in indices])
            label_lens = torch.tensor([len(data[i][1]) / labels.shape[1] for i in indices])
            wavs, wav_lens = wavs.to(device, non_blocking=True), wav_lens.to(device)
            with autocast:
                hidden, out_lens = encoder(wavs, wav_lens, return_lengths=True)
                logits = head(hidden)
            loss, _ = ctc_loss(ctc_log_probs(logits), out_lens, labels.to(device), label_lens.to(device))
            return loss

    # Both sides as their recipes run: fused AdamW (the Trainer's default optim
    # on torch >= 2.8, the recipe's fused_adamw: True; on the CPU too) and
    # gradient clipping to norm 1.0 (the Trainer's max_grad_norm default, the
    # recipe's max_grad_norm).
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    def train(indices):
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(step(indices)).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()

    train(batches[0])  # warm-up (allocations, kernels), not timed; the pass below includes this batch again
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = reset_peak_rss()
    start = time.perf_counter()
    for indices in batches:
        train(indices)
    elapsed = time.perf_counter() - start

    timed = batches
    audio = sum(float(lengths[i]) for b in timed for i in b)
    padded = sum(len(b) * max(float(lengths[i]) for i in b) for b in timed)
    result = {
        "impl": args.impl,
        "steps": len(timed),
        "utterances_per_step": float(np.mean([len(b) for b in timed])),
        "audio_s_per_step": audio / len(timed),
        "audio_s_per_s": audio / elapsed,
        "padding_fraction": 1 - audio / padded,
    }
    if device.type == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        frames = [int(max(lengths[i] for i in b) * 50) for b in timed for _ in b]
        peak = peak_flops(torch.cuda.get_device_name())
        if peak:
            result["mfu"] = training_flops(config, frames) / elapsed / peak
    else:
        result["peak_mb"] = rss_mb("VmHWM") - base
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="24 x 1024 (w2v-BERT 2.0) instead of 4 x 512")
    parser.add_argument("--pool", type=int, default=20000, help="synthetic utterances in the epoch both sides batch")
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps each side trains (timed)")
    parser.add_argument("--seconds-per-step", type=float, default=32.0, help="seconds of audio per optimiser step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                        help="autocast precision of both sides (CTC stays fp32)")
    parser.add_argument("--bf16", action="store_const", const="bf16", dest="precision", help="same as --precision bf16")
    parser.add_argument("--hf-precision", choices=["fp32", "bf16", "fp16"], default=None,
                        help="the hf rows' precision, if not --precision (fp16: the blog's fp16=True)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--impls", nargs="+", default=list(IMPLEMENTATIONS[:4]), choices=IMPLEMENTATIONS,
                        help="workers to run, in this order (the first is the reference of the ratios)")
    parser.add_argument("--impl", default=None, help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args()
    if args.impl:
        return worker(args)

    rows = []
    for impl in args.impls:
        # A worker is this run's command line plus --impl (it ignores --impls).
        command = [sys.executable, os.path.abspath(__file__), "--impl", impl] + sys.argv[1:]
        try:
            rows.append(run_worker(command, args.device))
        except RuntimeError as error:
            sys.exit(f"{impl} worker failed: {error}")

    reference = rows[0]  # the ratios are relative to the first worker (hf by default)
    config = "24 x 1024" if args.full else "4 x 512"
    print(f"# encoder {config}, {args.steps} steps of an epoch of {args.pool} utterances "
          f"(mean {durations(args.pool, args.seed).mean():.1f} s), "
          f"{args.seconds_per_step:g} s of audio per step, device {args.device}, {args.threads} CPU threads, "
          f"{args.precision}" + (f" (hf rows: {args.hf_precision})" if args.hf_precision else ""))
    header = (f"{'recipe':<10} {'steps':>5} {'utt/step':>8} {'audio s/s':>10} {'padding':>8} {'peak MB':>9} {'MFU':>6} "
              f"{'speed':>6} {'memory':>6}")
    print(header)
    print("-" * len(header))
    for row in rows:
        mfu = f"{100 * row['mfu']:.1f}%" if "mfu" in row else "-"
        row["speed_ratio"] = row["audio_s_per_s"] / reference["audio_s_per_s"]
        row["memory_ratio"] = row["peak_mb"] / reference["peak_mb"]
        print(f"{row['impl']:<10} {row['steps']:>5} {row['utterances_per_step']:>8.1f} {row['audio_s_per_s']:>10.2f} "
              f"{100 * row['padding_fraction']:>7.1f}% {row['peak_mb']:>9.0f} {mfu:>6} "
              f"{row['speed_ratio']:>5.2f}x {row['memory_ratio']:>5.2f}x")
    print(f"(speed and memory relative to {reference['impl']})")
    emit({"bench": "train_step", "config": config, "device": args.device, "precision": args.precision,
          "hf_precision": args.hf_precision or args.precision, "steps": args.steps, "pool": args.pool,
          "mean_utterance_s": float(durations(args.pool, args.seed).mean()),
          "seconds_per_step": args.seconds_per_step, "rows": rows}, args.json, args.threads)

if __name__ == "__main__":
    main()
