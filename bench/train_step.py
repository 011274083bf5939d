"""Training-step benchmark: the Hugging Face blog recipe vs ours, same data.

A fixed set of synthetic utterances with an OpenSLR 54-like duration mix
(1-15 s, mean about 4 s) is trained for one pass by two workers, each in its
own process of this one run (so that each peak memory is its own), with the
same encoder configuration, seeds and seconds of audio per optimiser step:

- ``hf``: what the Hugging Face blog does. ``SeamlessM4TFeatureExtractor``
  on the CPU per batch, ``Wav2Vec2BertForCTC`` with
  ``attn_implementation="sdpa"``, a fixed number of utterances per batch
  padded to the longest, batches grouped by length like the Trainer's
  ``group_by_length`` (mega-batches of 50 batches sorted by length).
- ``ours``: the recipe's step. ``SeamlessFbank`` on the training device,
  ``W2VBert`` (bucketed relative-key attention), a linear
  head with fp32 log-softmax and CTC (``speechbrain_w2vbert.ctc``), and
  SpeechBrain's ``DynamicBatchSampler`` batching by seconds of audio.

Reports seconds of audio trained per wall second (the first step excluded
as warm-up), padding fraction, peak memory (CPU: growth of peak RSS over
the loaded model; CUDA: ``torch.cuda.max_memory_allocated``) and, on CUDA,
model FLOPs utilisation. Prints a table and one JSON line.

Usage::

    python bench/train_step.py                              # CPU, 4 x 512 encoder
    python bench/train_step.py --full --device cuda --bf16  # the real 24 x 1024 encoder
"""

import argparse
import json
import os
import subprocess
import sys
import time

from common import rss_mb

import numpy as np

SAMPLE_RATE = 16000
VOCAB_SIZE = 64  # characters, blank = 0
CHARS_PER_SECOND = 12  # label density of read Nepali speech
#: bf16 dense peak of the GPUs we compare on (FLOP/s).
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def durations(count, seed):
    """OpenSLR 54-like durations: log-normal around 4 s, clipped to 1-15 s."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(3.6), 0.45, count), 1.0, 15.0)


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
    config.layerdrop = 0.0
    config.mask_time_prob = 0.05
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
    lengths = durations(args.utterances, args.seed)
    data = [make_utterance(d, i) for i, d in enumerate(lengths)]
    config = encoder_config(args.full)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    if args.impl == "hf":
        from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertForCTC

        extractor = SeamlessM4TFeatureExtractor()
        model = Wav2Vec2BertForCTC._from_config(config, attn_implementation="sdpa").to(device).train()
        batches = hf_batches(lengths, hf_batch_size(lengths, args.seconds_per_step), args.seed)

        def step(indices):
            inputs = extractor([data[i][0] for i in indices], sampling_rate=SAMPLE_RATE, return_tensors="pt")
            labels = torch.full((len(indices), max(len(data[i][1]) for i in indices)), -100)
            for row, i in enumerate(indices):
                labels[row, : len(data[i][1])] = torch.from_numpy(data[i][1])
            with autocast:
                loss = model(**{k: v.to(device) for k, v in inputs.items()}, labels=labels.to(device)).loss
            return loss

    else:
        from speechbrain_w2vbert.ctc import ctc_log_probs, ctc_loss
        from speechbrain_w2vbert.lobe import W2VBert

        encoder = W2VBert(config=config.to_dict(), pretrained=False)
        head = torch.nn.Linear(config.hidden_size, VOCAB_SIZE)
        model = torch.nn.ModuleDict({"encoder": encoder, "head": head}).to(device).train()
        # The same mean audio per step as the hf side's fixed batch size gives.
        hf_side = hf_batches(lengths, hf_batch_size(lengths, args.seconds_per_step), args.seed)
        batches = our_batches(lengths, sum(float(lengths[i]) for b in hf_side for i in b) / len(hf_side), args.seed)

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

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")

    def train(indices):
        optimizer.zero_grad(set_to_none=True)
        step(indices).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    train(batches[0])  # warm-up, not timed
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = rss_mb("VmRSS")
    start = time.perf_counter()
    for indices in batches[1:]:
        train(indices)
    elapsed = time.perf_counter() - start

    timed = batches[1:]
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
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
        if peak:
            result["mfu"] = training_flops(config, frames) / elapsed / peak
    else:
        result["peak_mb"] = rss_mb("VmHWM") - base
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="24 x 1024 (w2v-BERT 2.0) instead of 4 x 512")
    parser.add_argument("--utterances", type=int, default=240, help="synthetic utterances trained once")
    parser.add_argument("--seconds-per-step", type=float, default=32.0, help="seconds of audio per optimiser step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (both sides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--impl", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.impl:
        return worker(args)

    rows = []
    for impl in ("hf", "ours"):
        command = [sys.executable, os.path.abspath(__file__), "--impl", impl] + [
            a for a in sys.argv[1:] if a != "--impl"
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"{impl} worker failed:\n{result.stderr}")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))

    hf, ours = rows
    config = "24 x 1024" if args.full else "4 x 512"
    print(f"# encoder {config}, {args.utterances} utterances (mean {durations(args.utterances, args.seed).mean():.1f} s), "
          f"{args.seconds_per_step:g} s of audio per step, device {args.device}, {args.threads} CPU threads, "
          f"{'bf16' if args.bf16 else 'fp32'}")
    header = f"{'recipe':<6} {'steps':>5} {'utt/step':>8} {'audio s/s':>10} {'padding':>8} {'peak MB':>9} {'MFU':>6}"
    print(header)
    print("-" * len(header))
    for row in rows:
        mfu = f"{100 * row['mfu']:.1f}%" if "mfu" in row else "-"
        print(f"{row['impl']:<6} {row['steps']:>5} {row['utterances_per_step']:>8.1f} {row['audio_s_per_s']:>10.2f} "
              f"{100 * row['padding_fraction']:>7.1f}% {row['peak_mb']:>9.0f} {mfu:>6}")
    print(f"ours / hf: {ours['audio_s_per_s'] / hf['audio_s_per_s']:.2f}x audio per second, "
          f"{ours['peak_mb'] / hf['peak_mb']:.2f}x peak memory")
    print(json.dumps({"bench": "train_step", "config": config, "device": args.device, "rows": rows,
                      "speed_ratio": ours["audio_s_per_s"] / hf["audio_s_per_s"],
                      "memory_ratio": ours["peak_mb"] / hf["peak_mb"]}))


if __name__ == "__main__":
    main()
