#!/usr/bin/env python3
"""The GPU report: every figure the project needs from a GPU, from one command.

GPU machines come rarely, for minutes, bare and offline. This script measures
on the GPU it finds, in parts, each in a process of its own (so that a part's
peak memory, global flags and compilation caches are its own; this one never
starts CUDA) with a time budget: a part skips the cells its budget cannot
hold and is stopped past it, what it measured is kept, what it did not run
is listed. The whole run stays under :data:`TOTAL_BUDGET_S` (8 minutes on one
H100), and the report is rewritten after every part.

1. ``environment``: GPU, driver, CUDA, versions, the private names in use.
2. ``frontend``: ``SeamlessFbank`` against ``SeamlessM4TFeatureExtractor``
   (numpy, on the CPU, as users run it), ``bench/frontend.py``'s in-the-loop
   workloads (the recipe's batches, single files), on the CPU and the GPU,
   with TF32 on globally: the GPU's difference to the reference shows that
   TF32 does not reach the features.
3. ``attention``: ``bench/attention.py``'s cells at 500 and 1,500 frames,
   transformers' eager and sdpa against ours (``sdpa_bucketed``), bf16,
   forward + backward: time and ``torch.cuda.max_memory_allocated``.
4. ``train_step``: ``bench/train_step.py`` on the full 580M architecture
   (transformers' default ``Wav2Vec2BertConfig``, random weights) in bf16:
   the Hugging Face blog's recipe, ours, ours checkpointing every 2nd layer:
   audio seconds per second, peak memory, MFU against the GPU's dense bf16
   peak (``train_step.PEAK_FLOPS``).
5. ``speechbrain_lobe``: SpeechBrain's own ``W2VBert`` lobe (numpy features
   on the CPU inside ``forward``) against ours, per training step, same
   weights (both load one saved random model).
6. ``max_batch``: the largest batch of 15 s utterances a bf16 training step
   of the recipe's model fits, without gradient checkpointing, checkpointing
   every layer and every 2nd layer, by a doubling-then-bisection search: the
   largest ``max_batch_length``.
7. ``recipe``: ``recipes/OpenSLR54/train.py hparams/w2vbert_ctc.yaml`` with
   the full architecture (random init) on the bundled sample corpus for a
   few hundred updates: it runs, the loss falls, dev is decoded, the model
   is exported (and the exported folder transcribes on the GPU).
8. ``recipe_compile``: the same with ``--compile
   --compile_using_dynamic_shape_tracing``: speed after compilation and the
   compilation's cost, against the eager run's same updates.

``--smoke`` runs every part on the CPU with tiny sizes, in fp32, all in one
process (about a minute of CPU time; CI runs it, ``tests/test_gpu_report.py``),
so the script cannot rot between GPU loans. Its numbers are not GPU figures,
and its report says so.

The GPU image has Python 3.12, torch, torchaudio, transformers, pandas and
sentencepiece but not SpeechBrain and a few small libraries:
``make gpu-wheels`` downloads them (:data:`GPU_WHEELS`, at the versions of
``requirements/lock.txt``) into ``.gpu-wheels/``. Run there, this script
installs the ones the interpreter lacks (``pip install --no-deps --no-index
--target``) into ``results/gpu-report/site-<tag>`` and puts that first on
``sys.path`` (and on the children's ``PYTHONPATH``), beside the image's torch.

Usage::

    make gpu-wheels                           # here, with a network: .gpu-wheels/ (carry it to the GPU machine)
    python bench/gpu_report.py                # on the GPU: docs/benchmarks-gpu.md and docs/benchmarks-gpu.json
    python bench/gpu_report.py --out-dir $OUT --parts max_batch,recipe   # rerun some parts into an existing report
    python bench/gpu_report.py --smoke        # every part on the CPU, tiny (results/gpu-report-smoke/)
"""

import argparse
import contextlib
import datetime
import gc
import glob
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
import zipfile
from argparse import Namespace

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RECIPE_DIR = os.path.join(ROOT, "recipes", "OpenSLR54")
GPU_HPARAMS = os.path.join(ROOT, "hparams", "w2vbert_ctc.yaml")
SAMPLE_DATA = os.path.join(RECIPE_DIR, "sample_data")
LOCK = os.path.join(ROOT, "requirements", "lock.txt")
WHEEL_DIR = os.path.join(ROOT, ".gpu-wheels")
WORK_DIR = os.path.join(ROOT, "results", "gpu-report")

#: Distributions the report imports that the GPU image lacks (the image has
#: torch, torchaudio, transformers, pandas, sentencepiece and their
#: dependencies), found by running ``--smoke`` in a Python 3.12 venv holding
#: only those: SpeechBrain and what it imports at run time (scipy:
#: ``speechbrain.dataio.sampler``; requests and its urllib3 and
#: charset-normalizer: ``speechbrain.utils.fetching``; hyperpyyaml and
#: ruamel.yaml: the hparams; joblib and its cloudpickle:
#: ``speechbrain.utils.metric_stats``;
#: kenlm, as ufal.kenlm, and pygtrie:
#: ``speechbrain.integrations.decoders.kenlm_scorer``, which train.py imports
#: through ``speechbrain_w2vbert.lm.beam``), soundfile (the recipe reads
#: audio; cffi loads its libsndfile). Not here: pycparser (cffi's, unused by
#: soundfile's prebuilt bindings), kaldingram (the report runs the recipe
#: without LM decoding), matplotlib (the training-curve plot is skipped when
#: it is absent), silero-vad (not imported).
GPU_WHEELS = ("speechbrain", "hyperpyyaml", "ruamel.yaml", "ruamel.yaml.clib", "scipy", "requests", "urllib3",
              "charset-normalizer", "joblib", "cloudpickle", "ufal.kenlm", "pygtrie", "soundfile", "cffi")
#: The whole run's limit on a GPU (s); the part budgets below add up to less,
#: and the last part gets what the others left.
TOTAL_BUDGET_S = 465  # from the start, wheels included; each part stops GRACE_S past its budget at worst
GRACE_S = 10
#: Seconds each part may run on a GPU. A smoke run gives every part
#: :data:`SMOKE_BUDGET_S`: a limit that a slow or busy CI machine should
#: never reach (the test asserts that every part ran whole).
BUDGETS = {
    "environment": 15,
    "frontend": 30,
    "attention": 35,
    "train_step": 70,
    "speechbrain_lobe": 40,
    "max_batch": 55,
    "recipe": 100,
    "recipe_compile": 110,
}
SMOKE_BUDGET_S = 600
#: The targets the GPU figures are held to: (figure, threshold, description).
TARGETS = {
    "train_speed": (2.0, "training step >= 2x the Hugging Face blog's recipe (bf16, full model)"),
    "train_mfu": (0.35, "training step >= 35% MFU (ours, bf16, full model)"),
    "frontend_gpu": (100.0, "features on the GPU >= 100x the numpy extractor (recipe batches)"),
}
SMOKE_THREADS = 1  # one thread: a shared or busy CI machine cannot oversubscribe its cores
SEED = 0


# --------------------------------------------------------------------------- wheels
def wheel_distribution(filename):
    """The canonical distribution name of a wheel file name (``ruamel_yaml-0.18.17-py3-none-any.whl``
    -> ``ruamel-yaml``)."""
    return re.sub(r"[-_.]+", "-", os.path.basename(filename).split("-")[0]).lower()


def use_wheels(wheel_dir=WHEEL_DIR, site_root=WORK_DIR):
    """Installs the wheels of ``wheel_dir`` whose distribution this
    interpreter lacks into a folder of their own and puts it first on
    ``sys.path`` and ``PYTHONPATH`` (children inherit it).

    The image's own packages (torch above all) stay in use: a distribution
    already installed is never shadowed. The folder is
    ``site_root/site-<interpreter tag>``, reinstalled only when the set of
    wheels changes. Returns the installed wheel file names (empty without
    wheels or when nothing is missing).
    """
    import importlib.metadata

    wheels = sorted(glob.glob(os.path.join(wheel_dir, "*.whl")))
    installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()
                 for d in importlib.metadata.distributions() if d.metadata["Name"]}
    missing = [w for w in wheels if wheel_distribution(w) not in installed]
    if not missing:
        return []
    site = os.path.join(site_root, f"site-{sys.implementation.cache_tag}")
    marker = os.path.join(site, ".wheels")
    wanted = "\n".join(os.path.basename(w) for w in missing)
    if not os.path.exists(marker) or open_text(marker) != wanted:
        shutil.rmtree(site, ignore_errors=True)
        install_wheels(missing, site)
        with open(marker, "w") as f:
            f.write(wanted)
    sys.path.insert(0, site)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH")) if p)
    return [os.path.basename(w) for w in missing]


def open_text(path):
    """A small text file's content."""
    with open(path, encoding="utf-8") as f:
        return f.read()


def install_wheels(wheels, target, use_pip=None):
    """Installs wheels, without their dependencies, into ``target``: ``pip
    install --no-deps --no-index --target`` where pip is there (default),
    else unpacked (what pip does with wheels that carry no scripts or
    headers: their ``.data/purelib`` and ``.data/platlib`` go to the top)."""
    import importlib.util

    if use_pip is None:
        use_pip = importlib.util.find_spec("pip") is not None
    if use_pip:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                        "--disable-pip-version-check", "--no-compile", "--target", target, *wheels], check=True)
        return
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                name = re.sub(r"^[^/]+\.data/(purelib|platlib)/", "", member.filename)
                if member.is_dir() or re.match(r"^[^/]+\.data/", name):  # scripts, headers, data: not needed
                    continue
                path = os.path.join(target, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with archive.open(member) as source, open(path, "wb") as out:
                    shutil.copyfileobj(source, out)


def wheel_requirements(lock=LOCK):
    """``name==version`` lines of :data:`GPU_WHEELS` at the lock's versions."""
    from tools.envcheck import canonical_name, read_lock

    pins = read_lock(lock)
    missing = [name for name in GPU_WHEELS if canonical_name(name) not in pins]
    if missing:
        raise SystemExit(f"{lock} pins no version of {', '.join(missing)}")
    return [f"{pins[canonical_name(n)][0]}=={pins[canonical_name(n)][1]}" for n in GPU_WHEELS]


# --------------------------------------------------------------------------- a part's process
class Part:
    """What a part's function gets: its device and sizes, its clock, and its
    record (one JSON line per row, flushed, so that rows written before the
    part is stopped at its budget are kept).

    Every row has a ``kind``: ``plan`` (the cells the part means to run),
    ``skip`` (a cell left out, with why), ``error`` (a cell or the part
    failed), or the part's own kinds.
    """

    def __init__(self, name, device, smoke, deadline, rows_path, workdir, shared_dir, threads):
        self.name, self.device, self.smoke, self.deadline = name, device, smoke, deadline
        self.workdir, self.shared_dir, self.threads = workdir, shared_dir, threads
        self._rows = open(rows_path, "a", encoding="utf-8")

    @property
    def cuda(self):
        """True on a GPU."""
        return self.device == "cuda"

    @property
    def precision(self):
        """bf16 on the GPU; fp32 in the smoke run (a CPU without bf16 units takes 10x longer in bf16)."""
        return "fp32" if self.smoke else "bf16"

    def autocast(self):
        """Autocast at :attr:`precision` on the part's device."""
        import torch

        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def left(self):
        """Seconds left in this part's budget."""
        return self.deadline - time.time()

    def row(self, kind, **fields):
        """Appends one row (a JSON line, flushed)."""
        self._rows.write(json.dumps({"kind": kind, **fields}, default=float) + "\n")
        self._rows.flush()

    def plan(self, cells):
        """Records the cells the part means to run, in order."""
        self.row("plan", cells=list(cells))

    def skip(self, cell, why):
        """Records a cell left out, and why."""
        self.row("skip", cell=cell, why=why)

    def has_time(self, cell, needed):
        """True if ``needed`` seconds are left; else records ``cell`` as skipped."""
        if self.left() >= needed:
            return True
        self.skip(cell, f"budget: {self.left():.0f} s left, about {needed:.0f} s needed")
        return False

    def cell_error(self, cell, error):
        """Records a cell's failure (the exception's first line); the part goes on."""
        first = (str(error).strip().splitlines() or [""])[0][:400]  # CUDA's out-of-memory message: its first line
        self.row("error", cell=cell, error=f"{type(error).__name__}: {first}")

    def free(self):
        """Drops what the last cell left in memory (between cells)."""
        gc.collect()
        torch = sys.modules.get("torch")  # a part that never imported it has nothing to free there
        if self.cuda and torch is not None:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()


def capture_json(fn, *args):
    """Runs a bench worker that prints its result as a last JSON line; returns it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(*args)
    return json.loads(out.getvalue().strip().splitlines()[-1])


# --------------------------------------------------------------------------- parts
PARTS = {}


def part(name, title):
    """Registers a part function under ``name`` (run in the order registered)."""
    def register(fn):
        """Adds ``fn`` to :data:`PARTS`."""
        PARTS[name] = (title, fn)
        return fn
    return register


@part("environment", "Machine and versions")
def environment_part(ctx):
    """The GPU's facts, torch's view of them and the private names this package uses."""
    import torch

    from speechbrain_w2vbert.environment import missing_private_apis

    facts = {"torch_threads": torch.get_num_threads(), "missing_private_apis": missing_private_apis()}
    if ctx.cuda:
        from train_step import peak_flops

        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                     gpu_memory_gb=props.total_memory / 1e9, capability=f"{props.major}.{props.minor}",
                     cuda_runtime=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                     bf16_supported=torch.cuda.is_bf16_supported(),
                     peak_bf16_tflops=(peak_flops(torch.cuda.get_device_name(0)) or 0) / 1e12 or None)
        facts.update(nvidia_smi())
    facts["bf16_matmul_tflops"] = matmul_tflops(ctx.device, 512 if ctx.smoke else 8192)
    ctx.row("facts", **facts)


def matmul_tflops(device, n, repeats=10):
    """bf16 TFLOP/s of an n x n x n matrix product on ``device`` (best of
    ``repeats``, after a warm-up): what dense layers can reach at best, beside
    the datasheet peak that MFU divides by."""
    import torch

    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12


def nvidia_smi():
    """Driver version and the CUDA version it supports, from nvidia-smi (empty without it)."""
    try:
        text = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
        query = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,power.limit,clocks.max.sm",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    facts = {}
    match = re.search(r"CUDA Version:\s*([0-9.]+)", text)
    if match:
        facts["driver_cuda"] = match.group(1)
    fields = [f.strip() for f in query.strip().splitlines()[0].split(",")] if query.strip() else []
    for key, value in zip(("driver", "power_limit", "max_sm_clock"), fields):
        facts[key] = value
    return facts


@part("frontend", "Features: SeamlessFbank vs transformers' SeamlessM4TFeatureExtractor")
def frontend_part(ctx):
    """bench/frontend.py's in-the-loop workloads, TF32 on globally (as the
    recipe's ``tf32: True`` sets it): the GPU's difference to the reference
    shows whether TF32 reaches the features."""
    import frontend
    import torch
    from transformers import SeamlessM4TFeatureExtractor

    from speechbrain_w2vbert.models.features import SeamlessFbank

    torch.set_num_threads(ctx.threads)
    reference = SeamlessM4TFeatureExtractor()
    targets = [("SeamlessFbank (torch, CPU)", SeamlessFbank(), "cpu", lambda: None)]
    if ctx.cuda:
        targets.append(("SeamlessFbank (torch, CUDA)", SeamlessFbank().to("cuda"), "cuda", torch.cuda.synchronize))
    calls = 2 if ctx.smoke else 20
    workloads = [("recipe batches", frontend.recipe_batches(calls, SEED)),
                 ("files (1 x 2-15 s)", frontend.cli_files(2 * calls, SEED))]
    ctx.plan(name for name, _ in workloads)
    with patched((torch.backends.cuda.matmul, "allow_tf32", True), (torch.backends.cudnn, "allow_tf32", True)):
        for name, batches in workloads:
            if ctx.has_time(name, 3 if ctx.smoke else 15):
                for row in frontend.loop_rows(reference, targets, [(name, batches)], SEED):
                    ctx.row("loop", cell=name, **row)
        # TF32 is on for every other fp32 product: one on the device shows its rounding.
        a, b = (torch.randn(1024, 1024, device=ctx.device, dtype=torch.float64) for _ in range(2))
        error = ((a.float() @ b.float()).double() - a @ b).abs().max() / (a @ b).abs().max()
        ctx.row("tf32", allow_tf32=torch.backends.cuda.matmul.allow_tf32, matmul_relative_error=float(error),
                threads=ctx.threads)


@part("attention", "Attention at 500 and 1,500 frames: eager, sdpa and ours")
def attention_part(ctx):
    """bench/attention.py's worker, cell by cell, in this process."""
    import attention

    frames = [20, 60] if ctx.smoke else attention.FRAMES
    batch, repeats = (1, 1) if ctx.smoke else (4, 3)
    cells = [(f, impl) for f in frames for impl in attention.IMPLEMENTATIONS]
    ctx.plan(f"{impl} @ {f}" for f, impl in cells)
    ctx.row("setup", config="4 x 512" if ctx.smoke else "24 x 1024", batch=batch, repeats=repeats,
            precision=ctx.precision)
    for f, impl in cells:
        cell = f"{impl} @ {f}"
        if not ctx.has_time(cell, 2 if ctx.smoke else 6):
            continue
        args = Namespace(device=ctx.device, full=not ctx.smoke, batch=batch, threads=ctx.threads, repeats=repeats,
                         bf16=ctx.precision == "bf16", frames=f, impl=impl)
        try:
            ctx.row("cell", cell=cell, **capture_json(attention.worker, args))
        except Exception as error:  # out of memory above all: reported, the others still run
            ctx.cell_error(cell, error)
        ctx.free()


#: (implementation, label) of the training-step rows, in table order (the first is the reference).
TRAIN_IMPLS = (("hf", "Hugging Face blog (sdpa, checkpointing)"), ("ours", "ours"),
               ("ours_ckpt2", "ours, checkpointing every 2nd layer"))


@part("train_step", "Training step, full architecture: the Hugging Face blog's recipe vs ours")
def train_step_part(ctx):
    """bench/train_step.py's worker for each implementation, in this process."""
    import train_step

    sizes = dict(pool=200, steps=2, seconds_per_step=4.0) if ctx.smoke else dict(pool=20000, steps=20,
                                                                                  seconds_per_step=64.0)
    ctx.plan(impl for impl, _ in TRAIN_IMPLS)
    ctx.row("setup", config="4 x 512" if ctx.smoke else "24 x 1024", precision=ctx.precision, **sizes)
    for impl, _ in TRAIN_IMPLS:
        if not ctx.has_time(impl, 5 if ctx.smoke else 20):
            continue
        args = Namespace(impl=impl, device=ctx.device, full=not ctx.smoke, threads=ctx.threads, precision=ctx.precision,
                         hf_precision=None, seed=SEED, **sizes)
        try:
            ctx.row("impl", cell=impl, **capture_json(train_step.worker, args))
        except Exception as error:
            if impl == "ours_ckpt2" and isinstance(error, ValueError):  # a transformers without every_n_layers
                ctx.skip(impl, str(error))
            else:
                ctx.cell_error(impl, error)
        ctx.free()


def random_batch(indices, lengths, device):
    """Padded waveforms, relative lengths, padded labels and their relative
    lengths of synthetic utterances (bench/train_step.py's), on ``device``."""
    import torch
    import train_step

    data = [train_step.make_utterance(lengths[i], i) for i in indices]
    longest = max(len(w) for w, _ in data)
    most = max(len(y) for _, y in data)
    wavs = torch.zeros(len(data), longest)
    labels = torch.zeros(len(data), most, dtype=torch.long)
    for row, (wav, label) in enumerate(data):
        wavs[row, : len(wav)] = torch.from_numpy(wav)
        labels[row, : len(label)] = torch.from_numpy(label)
    wav_lens = torch.tensor([len(w) / longest for w, _ in data])
    label_lens = torch.tensor([len(y) / most for _, y in data])
    return wavs.to(device), wav_lens.to(device), labels.to(device), label_lens.to(device)


@part("speechbrain_lobe", "SpeechBrain 1.1.2's W2VBert lobe vs ours, per training step")
def speechbrain_lobe_part(ctx):
    """Both lobes load one saved random model; each trains the same batches
    (encoder + linear head, fp32 CTC, fused AdamW, bf16 autocast)."""
    import torch
    import train_step
    from speechbrain.integrations.huggingface.w2v_bert import W2VBert as SpeechBrainW2VBert
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertModel

    from speechbrain_w2vbert.models.ctc import ctc_log_probs, ctc_loss
    from speechbrain_w2vbert.models.w2vbert import W2VBert

    torch.set_num_threads(ctx.threads)
    torch.manual_seed(SEED)
    config = train_step.encoder_config(full=not ctx.smoke)  # dropouts, masking and layerdrop off
    config.add_adapter = False  # the recipe's default
    if ctx.smoke:
        config.num_hidden_layers = 1
    folder = os.path.join(ctx.workdir, "model")
    with torch.device(ctx.device):
        Wav2Vec2BertModel(config).save_pretrained(folder)
    SeamlessM4TFeatureExtractor().save_pretrained(folder)
    steps = 2 if ctx.smoke else 8
    seconds = 4.0 if ctx.smoke else 64.0
    lengths = train_step.durations(2000, SEED)
    batches = train_step.sample_steps(train_step.our_batches(lengths, seconds, SEED), lengths, steps, SEED)
    labels = [("speechbrain", "SpeechBrain 1.1.2 W2VBert (numpy features on the CPU)"),
              ("ours", "ours (SeamlessFbank on the device, sdpa_bucketed)")]
    ctx.plan(name for name, _ in labels)
    ctx.row("setup", config="1 x 512" if ctx.smoke else "24 x 1024", steps=steps, seconds_per_step=seconds,
            precision=ctx.precision)
    probe = random_batch(batches[0][:2], lengths, ctx.device)
    outputs = {}
    for name, _ in labels:
        if not ctx.has_time(name, 5 if ctx.smoke else 15):
            continue
        try:
            if name == "speechbrain":
                encoder = SpeechBrainW2VBert(folder, save_path=os.path.join(ctx.workdir, "cache"), freeze=False)
            else:
                encoder = W2VBert(folder, pretrained=True)
            encoder = encoder.to(ctx.device)
            with torch.no_grad():  # same weights: the same hidden states (fp32, eval mode)
                hidden = encoder.eval()(probe[0], probe[1]).float()
            frames = torch.round(probe[1] * hidden.shape[1]).long()
            outputs[name] = [hidden[i, : max(1, int(n) - 1)].cpu() for i, n in enumerate(frames)]
            torch.manual_seed(SEED)
            head = torch.nn.Linear(config.hidden_size, train_step.VOCAB_SIZE).to(ctx.device)
            model = torch.nn.ModuleDict({"encoder": encoder, "head": head}).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

            def step(indices):
                """One training step on the utterances ``indices``."""
                wavs, wav_lens, targets, target_lens = random_batch(indices, lengths, ctx.device)
                optimizer.zero_grad(set_to_none=True)
                with ctx.autocast():
                    if name == "ours":
                        hidden, out_lens = encoder(wavs, wav_lens, return_lengths=True)
                    else:  # SpeechBrain's lobe returns no lengths: its recipes use the input's
                        hidden, out_lens = encoder(wavs, wav_lens), wav_lens
                    logits = head(hidden)
                loss, _ = ctc_loss(ctc_log_probs(logits), out_lens, targets, target_lens)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                if ctx.cuda:
                    torch.cuda.synchronize()

            step(batches[0])  # warm-up
            ctx.free()
            times = []
            for indices in batches:
                start = time.perf_counter()
                step(indices)
                times.append(time.perf_counter() - start)
            audio = sum(float(lengths[i]) for b in batches for i in b)
            peak = torch.cuda.max_memory_allocated() / 2**20 if ctx.cuda else None
            ctx.row("lobe", cell=name, impl=name, steps=len(times), median_s=statistics.median(times),
                    worst_s=max(times), audio_s_per_s=audio / sum(times), peak_mb=peak)
        except Exception as error:
            ctx.cell_error(name, error)
        encoder = model = optimizer = None
        ctx.free()
    if len(outputs) == 2:  # SpeechBrain's padded batch may carry one frame more: the common frames
        diff = max(float((a[: len(b)] - b[: len(a)]).abs().max()) for a, b in zip(outputs["speechbrain"],
                                                                                   outputs["ours"]))
        scale = max(float(a.abs().max()) for a in outputs["speechbrain"])
        ctx.row("same_weights", max_abs_diff=diff, max_abs=scale)


#: Gradient checkpointing settings of the batch-size search, in order.
CHECKPOINTING = ((False, "none"), (True, "every layer"), (2, "every 2nd layer"))
UTTERANCE_S = 15.0  # the longest utterance the recipe keeps (max_duration)


def largest_fitting(fits, start, cap, has_time):
    """The largest ``n`` in [1, cap] for which ``fits(n)`` is true, assuming
    that whatever fits, fits with fewer: doubling from ``start`` until a
    failure (or ``cap``), then bisection.

    Arguments
    ---------
    fits : callable
        ``n`` -> bool.
    start : int
        First ``n`` tried.
    cap : int
        The largest ``n`` worth trying.
    has_time : callable
        Called before each probe; False stops the search where it is.

    Returns
    -------
    fit : int
        The largest ``n`` found to fit (0: not even 1).
    fail : int or None
        The smallest ``n`` found not to fit (None: none failed up to ``cap``).
    probes : list of (int, bool)
        Every ``n`` tried, with its outcome, in order.
    """
    fit, fail, probes = 0, None, []

    def probe(n):
        """Tries ``n``, remembering the outcome."""
        ok = fits(n)
        probes.append((n, ok))
        return ok

    n = min(start, cap)
    while fail is None and has_time():  # up (or down, if start fails)
        if probe(n):
            fit = n
            if n >= cap:
                break
            n = min(2 * n, cap)
        else:
            fail = n
            if fit == 0 and n > 1:  # even start failed: halve until something fits
                fail, n = None, max(1, n // 2)
                if probes and probes[-1][0] == 1:
                    break
                continue
    while fail is not None and fail - fit > 1 and has_time():
        middle = (fit + fail) // 2
        if probe(middle):
            fit = middle
        else:
            fail = middle
    return fit, fail, probes


@part("max_batch", "The largest max_batch_length that fits (batches of 15 s utterances)")
def max_batch_part(ctx):
    """A training step of the recipe's model (``EncoderCTC``: W2VBert with
    the recipe's settings, layerdrop 0 so that every layer runs, dropout and
    head; fp32 CTC; fused AdamW, whose state is allocated by the first
    probe) on batches of ``n`` 15 s utterances."""
    import frontend
    import torch
    from transformers import Wav2Vec2BertConfig

    from speechbrain_w2vbert import TINY_CONFIG_DIR
    from speechbrain_w2vbert.models.ctc import EncoderCTC, ctc_loss
    from speechbrain_w2vbert.models.w2vbert import W2VBert

    torch.set_num_threads(ctx.threads)
    cap = 4 if ctx.smoke else int(frontend.recipe_batching()["max_batch_ex"])
    seconds = 1.5 if ctx.smoke else UTTERANCE_S
    source = TINY_CONFIG_DIR if ctx.smoke else None
    config = None if ctx.smoke else Wav2Vec2BertConfig().to_dict()
    ctx.plan(label for _, label in CHECKPOINTING)
    ctx.row("setup", utterance_s=seconds, cap=cap, config="tiny (4 x 144)" if ctx.smoke else "24 x 1024",
            precision=ctx.precision,
            total_mb=torch.cuda.get_device_properties(0).total_memory / 2**20 if ctx.cuda else None)
    samples, labels = int(seconds * 16000), int(seconds * 12)
    for checkpointing, label in CHECKPOINTING:
        if not ctx.has_time(label, 5 if ctx.smoke else 15):
            continue
        try:
            with torch.device(ctx.device):
                encoder = W2VBert(source, config=config, pretrained=False, layerdrop=0.0, mask_time_prob=0.05,
                                  hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                                  feat_proj_dropout=0.0, add_adapter=False, gradient_checkpointing=checkpointing)
        except ValueError as error:
            if checkpointing is True or not checkpointing:
                raise
            ctx.skip(label, str(error))  # a transformers without every_n_layers checkpointing
            continue
        model = EncoderCTC(encoder, torch.nn.Linear(encoder.output_size, 64), dropout=0.1).to(ctx.device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
        peaks = {}

        def fits(n):
            """One training step on ``n`` utterances; False if it runs out of memory."""
            ok = False
            try:
                wavs = torch.randn(n, samples, device=ctx.device) * 0.1
                targets = torch.randint(1, 64, (n, labels), device=ctx.device)
                ones = torch.ones(n, device=ctx.device)
                with ctx.autocast():
                    log_probs, out_lens = model(wavs, ones, return_lengths=True)
                loss, _ = ctc_loss(log_probs, out_lens, targets, ones)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                if ctx.cuda:
                    torch.cuda.synchronize()
                    peaks[n] = torch.cuda.max_memory_allocated() / 2**20
                ok = True
            except torch.OutOfMemoryError:
                pass  # the frames holding the batch go with the exception; freed below
            wavs = targets = log_probs = loss = None
            optimizer.zero_grad(set_to_none=True)
            ctx.free()
            return ok

        margin = 3 if ctx.smoke else 8  # seconds a probe may take near the top
        fit, fail, probes = largest_fitting(fits, start=min(8, cap), cap=cap, has_time=lambda: ctx.left() > margin)
        ctx.row("search", cell=label, checkpointing=label, utterances=fit, max_batch_length=fit * seconds,
                first_failing=fail, capped=fail is None and fit == cap, probes=probes, peak_mb=peaks.get(fit))
        model = encoder = optimizer = None
        ctx.free()


def recipe_args(ctx, compile):
    """train.py's command line: the GPU hparams, the sample corpus, the full
    architecture from a config folder (random init), a few hundred updates."""
    from transformers import Wav2Vec2BertConfig

    from speechbrain_w2vbert import TINY_CONFIG_DIR

    if ctx.smoke:
        source, epochs, batch = TINY_CONFIG_DIR, 1, 40
    else:
        source = os.path.join(ctx.workdir, "w2v-bert-2.0-config")
        Wav2Vec2BertConfig().save_pretrained(source)  # facebook/w2v-bert-2.0's architecture, offline
        # 151 batches of 1.5 utterances (4 s of audio) an epoch: eager 2 epochs, compiled the first
        epochs, batch = (1, 6) if compile else (2, 6)
    args = [GPU_HPARAMS, f"--data_folder={SAMPLE_DATA}", f"--extract_folder={os.path.join(ctx.shared_dir, 'corpus')}",
            f"--output_folder={os.path.join(ctx.workdir, 'run')}", f"--encoder_source={source}",
            "--encoder_pretrained=False", f"--number_of_epochs={epochs}", f"--max_batch_length={batch}",
            "--freeze_encoder_steps=20", "--warmup_steps=50", "--lm_decoding=False", "--ckpt_interval_minutes=0",
            f"--hf_export={not compile}", "--noprogressbar", f"--device={'cuda:0' if ctx.cuda else 'cpu'}"]
    if ctx.smoke:  # data loading in the training process, fp32 (bf16 autocast on a CPU is slow)
        args += ["--num_workers=0", "--dataloader_opts={pin_memory: False, prefetch_factor: null, "
                 "persistent_workers: False}", "--precision=fp32", "--eval_precision=fp32"]
    if compile:
        args += ["--compile", "--compile_using_dynamic_shape_tracing"]
        if ctx.smoke:  # the encoder's compilation takes minutes on a CPU (tests/test_lobe.py checks it)
            args += ["--compile_module_keys", "ctc_head"]
    return args


@contextlib.contextmanager
def patched(*changes):
    """Sets attributes, ``(object, name, value)`` each, for the ``with`` block only."""
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in changes]
    try:
        for obj, name, value in changes:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


def run_recipe(ctx, compile):
    """train.main in this process, every update and dev/test batch timed
    (the recipe's own code, its Brain's two batch methods wrapped for the
    time of the run)."""
    import torch
    import train

    torch.set_num_threads(ctx.threads)
    updates = []
    sync = torch.cuda.synchronize if ctx.cuda else (lambda: None)

    def timed(method, kind):
        """``(ASR, method, wrapper)``: the Brain's method timed, each call a row of ``kind``."""
        original = getattr(train.ASR, method)

        def run(self, batch, *rest, **kwargs):
            """The original method, synchronised and timed."""
            sync()
            start = time.perf_counter()
            loss = original(self, batch, *rest, **kwargs)
            sync()
            wavs, lens = batch.sig
            row = dict(index=len(updates) if kind == "update" else None, seconds=time.perf_counter() - start,
                       loss=float(loss), audio_s=float((lens * wavs.shape[1]).sum()) / 16000,
                       utterances=int(wavs.shape[0]))
            if kind == "update":
                updates.append(row)
            ctx.row(kind, **row)
            return loss

        return train.ASR, method, run

    changes = [timed("fit_batch", "update"), timed("evaluate_batch", "eval")]
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # not in the GPU image, nor in .gpu-wheels: no plot, said so
        changes.append((train, "plot_training_curves", lambda log, png, title="": ctx.row(
            "note", text="training-curve plot skipped: matplotlib is not installed") or png))
    if ctx.smoke and compile:  # dynamo's capture without code generation (no C++ build on a CI machine)
        compile_fn = torch.compile
        changes.append((torch, "compile", lambda module, **kw: compile_fn(module, **{**kw, "backend": "eager"})))
        ctx.row("note", text="smoke run: only the CTC head is compiled, by dynamo's eager backend (no code "
                "generation); tests/test_lobe.py compiles the encoder")
    args = recipe_args(ctx, compile)
    ctx.row("setup", args=[a.replace(ROOT + os.sep, "") for a in args])
    start = time.perf_counter()
    with patched(*changes):
        brain = train.main(args)
    wall = time.perf_counter() - start
    output = os.path.join(ctx.workdir, "run")
    summary = recipe_summary(output, updates, wall)
    if compile:
        from torch._dynamo.utils import counters

        summary["dynamo"] = {"unique_graphs": counters["stats"]["unique_graphs"],
                             "graph_breaks": sum(counters["graph_break"].values())}
        torch._dynamo.reset()
    ctx.row("summary", cell=RECIPE_CELL, **summary)
    del brain
    if not compile:
        ctx.row("export", **check_export(ctx, output))


def recipe_summary(output, updates, wall):
    """What the run logged: per-epoch losses and dev scores, test scores."""
    from speechbrain_w2vbert.training.plot import read_train_log

    log = read_train_log(os.path.join(output, "train_log.txt"))
    epochs = [r for r in log if "train loss" in r]
    tests = [r for r in log if "test WER" in r]
    tenth = max(1, len(updates) // 10)
    first = statistics.mean(u["loss"] for u in updates[:tenth]) if updates else None
    last = statistics.mean(u["loss"] for u in updates[-tenth:]) if updates else None
    return dict(wall_s=wall, updates=len(updates), epochs=len(epochs),
                train_loss=[r["train loss"] for r in epochs], dev_wer=[r.get("valid WER") for r in epochs],
                dev_cer=[r.get("valid CER") for r in epochs], test_wer=tests[-1]["test WER"] if tests else None,
                loss_first_tenth=first, loss_last_tenth=last, loss_falls=bool(updates) and last < first,
                dev_decoded=bool(epochs) and all(isinstance(r.get("valid WER"), float) for r in epochs),
                train_s=sum(u["seconds"] for u in updates))


def check_export(ctx, output):
    """The exported folders are there, and the EncoderASR folder loads on the
    device and transcribes a test utterance."""
    import csv

    import torch

    from speechbrain_w2vbert.audio import read_audio
    from speechbrain_w2vbert.inference.folder import load_asr

    inference = os.path.join(output, "inference")
    hf = os.path.join(output, "hf_model")
    result = {"inference_files": sorted(os.listdir(inference)) if os.path.isdir(inference) else [],
              "hf_files": sorted(os.listdir(hf)) if os.path.isdir(hf) else []}
    with open(os.path.join(output, "test.csv"), encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    asr = load_asr(inference, os.path.join(ctx.workdir, "loaded"), device="cuda:0" if ctx.cuda else "cpu")
    wav = read_audio(row["wav"])
    with torch.no_grad():
        words, _ = asr.transcribe_batch(wav[None].to(asr.device), torch.ones(1, device=asr.device))
    result.update(loaded_on=str(next(asr.mods.parameters()).device), transcript_chars=len(words[0]))
    return result


RECIPE_CELL = "train, dev, test"


@part("recipe", "The recipe end to end, full architecture, eager")
def recipe_part(ctx):
    """recipes/OpenSLR54/train.py on the sample corpus (see run_recipe)."""
    ctx.plan([RECIPE_CELL])
    run_recipe(ctx, compile=False)


@part("recipe_compile", "The recipe with --compile --compile_using_dynamic_shape_tracing")
def recipe_compile_part(ctx):
    """The same run compiled (one epoch: the eager run's first)."""
    ctx.plan([RECIPE_CELL])
    run_recipe(ctx, compile=True)


# --------------------------------------------------------------------------- running the parts
def child(config):
    """The parts' process (``--child``): runs its parts one after the other,
    each within its budget from its own start; a part that fails is recorded
    (an ``error`` row with its traceback) and the next one still runs.

    Every part's rows open with ``start`` and, unless the process is stopped
    during it, close with ``end`` (its wall and CPU seconds)."""
    failed = 0
    for item in config["parts"]:
        shutil.rmtree(item["workdir"], ignore_errors=True)
        os.makedirs(item["workdir"])
        start, cpu = time.time(), time.process_time()
        ctx = Part(item["name"], config["device"], config["smoke"], start + item["budget"], item["rows"],
                   item["workdir"], config["work_dir"], config["threads"])
        ctx.row("start", at=start)
        print(f"==== {item['name']}", flush=True)
        try:
            PARTS[item["name"]][1](ctx)
        except Exception as error:  # recorded for the report; the exit status says it too
            ctx.row("error", cell=None, error=f"{type(error).__name__}: {error}",
                    traceback=traceback.format_exc()[-3000:])
            traceback.print_exc()
            failed = 1
        ctx.free()
        shutil.rmtree(item["workdir"], ignore_errors=True)  # models and checkpoints: gigabytes on a GPU
        ctx.row("end", wall_s=time.time() - start, cpu_s=time.process_time() - cpu)
    return failed


def read_rows(path):
    """A part's rows (a line cut by a stop is left out)."""
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                with contextlib.suppress(json.JSONDecodeError):
                    rows.append(json.loads(line))
    return rows


def run_parts(names, budgets, device, smoke, work_dir, log_dir, threads, grace=10, script=__file__):
    """Runs parts one after the other in a process of its own session (on a
    GPU one part a process, so that peak memory, global flags and compilation
    caches are each part's own; the smoke run puts all of them in one, to
    import once), stops the whole session ``grace`` seconds after the sum of
    their budgets (the parts skip what their budgets cannot hold), and returns
    each part's record: status, times, rows, log. ``script`` is what the
    process runs with ``--child-config`` (this file; a test's runner adds parts)."""
    items = [{"name": name, "budget": budget, "rows": os.path.join(work_dir, f"{name}.rows.jsonl"),
              "workdir": os.path.join(work_dir, name)} for name, budget in zip(names, budgets)]
    for item in items:
        if os.path.exists(item["rows"]):
            os.remove(item["rows"])
    log_path = os.path.join(log_dir, f"{names[0] if len(names) == 1 else 'parts'}.log")
    config = {"parts": items, "device": device, "smoke": smoke, "work_dir": work_dir, "threads": threads}
    command = [sys.executable, os.path.abspath(script), "--child-config", json.dumps(config)]
    env = dict(os.environ)
    if smoke:  # numpy's BLAS and OpenMP as torch's threads
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    stopped = False
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
                                   env=env)
        try:
            process.wait(sum(budgets) + grace)
        except subprocess.TimeoutExpired:
            stopped = True
        with contextlib.suppress(ProcessLookupError):  # the parts, or workers they left (DataLoader, compiler)
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    stop = time.time()
    records = {}
    for item in items:
        shutil.rmtree(item["workdir"], ignore_errors=True)
        rows = read_rows(item["rows"])
        begun = next((r for r in rows if r["kind"] == "start"), None)
        end = next((r for r in rows if r["kind"] == "end"), None)
        if begun is None:
            status = "skipped"
        elif end is not None:
            status = "error" if any(r["kind"] == "error" and r.get("cell") is None for r in rows) else "ok"
        else:
            status = "timeout" if stopped else "error"  # killed at the budget, or the process died in it
        records[item["name"]] = {
            "title": PARTS[item["name"]][0] if item["name"] in PARTS else item["name"], "status": status,
            "budget_s": item["budget"],
            "started": begun and datetime.datetime.fromtimestamp(begun["at"], datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "wall_s": end["wall_s"] if end else (stop - begun["at"] if begun else 0.0),
            "cpu_s": end and end["cpu_s"], "rows": rows,
            "log": os.path.relpath(log_path, ROOT) if log_path.startswith(ROOT + os.sep) else log_path}
        if begun is None:
            records[item["name"]]["why"] = "the process stopped before it"
    return records


def commit():
    """The checkout's commit (``+dirty`` with uncommitted changes), or None without git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), else what platform says."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def versions():
    """Versions of the distributions the figures depend on (those installed)."""
    import importlib.metadata

    found = {}
    for name in ("torch", "torchaudio", "transformers", "speechbrain", "numpy", "scipy", "hyperpyyaml", "soundfile"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def gpu_of(environment_part):
    """The GPU an environment part recorded (None for none)."""
    facts = rows_of(environment_part or {}, "facts")
    return facts[0].get("gpu") if facts else None


def write_atomic(path, text):
    """Writes a file through a .tmp beside it and os.replace (readers never see half of it)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# --------------------------------------------------------------------------- the markdown
def rows_of(part, kind):
    """A part record's rows of one kind."""
    return [r for r in part.get("rows", []) if r["kind"] == kind]


def table(header, lines):
    """A Markdown table: the first column left-aligned, the others right."""
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header)))
           + " |"]
    out += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def fmt(value, spec, missing="-"):
    """``format(value, spec)``, or ``missing`` for None."""
    return missing if value is None else format(value, spec)


def render_frontend(part, report):
    """The features part: per-workload calls, times, ratios and max difference; the TF32 line."""
    lines = []
    for r in rows_of(part, "loop"):
        realtime = r["audio"] / r["total"]
        lines.append([r["workload"], "transformers (numpy, CPU)" if r["impl"] == "reference" else r["impl"], r["calls"],
                      f"{r['median']:.4f}", f"{r['worst']:.4f}", f"{realtime:.0f}", f"{r.get('ratio', 1.0):.1f}x",
                      fmt(r.get("max_abs_diff"), ".1e")])
    text = [table(["workload", "implementation", "calls", "median s", "worst s", "x real time", "vs numpy",
                   "max abs diff"], lines)]
    for r in rows_of(part, "tf32"):
        text.append(f"TF32 on globally (`allow_tf32={r['allow_tf32']}`): an fp32 matmul on the device was "
                    f"{r['matmul_relative_error']:.1e} off fp64 (relative), the features stayed within the max abs "
                    f"diff above. CPU threads: {r['threads']}.")
    return "\n\n".join(text)


def render_attention(part, report):
    """The attention part: time and peak memory per cell, against transformers' sdpa."""
    cells = rows_of(part, "cell")
    lines = []
    for r in cells:
        base = next((c for c in cells if c["frames"] == r["frames"] and c["impl"] == "sdpa"), None)
        lines.append([r["frames"], {"sdpa_bucketed": "ours (sdpa_bucketed)"}.get(r["impl"], f"HF {r['impl']}"),
                      f"{r['seconds']:.3f}", f"{r['peak_mb']:,.0f}",
                      f"{r['seconds'] / base['seconds']:.2f}x" if base else "-",
                      f"{r['peak_mb'] / base['peak_mb']:.2f}x" if base and base["peak_mb"] else "-"])
    setup = (rows_of(part, "setup") or [{}])[0]
    return (f"Encoder {setup.get('config')}, batch {setup.get('batch')}, {precision_text(setup)}, forward + "
            f"backward, best of {setup.get('repeats')}; peak memory: `torch.cuda.max_memory_allocated` "
            "(CPU: RSS growth)."
            "\n\n" + table(["frames", "attention", "s/step", "peak MB", "time vs HF sdpa", "memory vs HF sdpa"], lines))


def render_train_step(part, report):
    """The training-step part: throughput, padding, memory and MFU per recipe, against the blog's."""
    impls = rows_of(part, "impl")
    reference = next((r for r in impls if r["impl"] == "hf"), None)
    labels = dict(TRAIN_IMPLS)
    lines = []
    for r in impls:
        speed = r["audio_s_per_s"] / reference["audio_s_per_s"] if reference else None
        memory = r["peak_mb"] / reference["peak_mb"] if reference and reference["peak_mb"] else None
        lines.append([labels.get(r["impl"], r["impl"]), r["steps"], f"{r['utterances_per_step']:.1f}",
                      f"{r['audio_s_per_s']:.1f}", f"{100 * r['padding_fraction']:.1f}%", f"{r['peak_mb']:,.0f}",
                      fmt(r.get("mfu") and 100 * r["mfu"], ".1f") + ("%" if r.get("mfu") else ""),
                      fmt(speed, ".2f") + "x", fmt(memory, ".2f") + "x"])
    setup = (rows_of(part, "setup") or [{}])[0]
    return (f"`bench/train_step.py` workers: encoder {setup.get('config')}, {setup.get('precision')}, "
            f"{setup.get('steps')} timed steps each (the epoch's largest batch and others at random) of an epoch of "
            f"{setup.get('pool')} synthetic utterances (1-15 s), {setup.get('seconds_per_step')} s of audio per step "
            "on average on both sides. MFU: model FLOPs (6 x 580M x frames + attention) over the GPU's dense bf16 "
            "peak."
            "\n\n" + table(["recipe", "steps", "utt/step", "audio s/s", "padding", "peak MB", "MFU", "speed",
                            "memory"], lines))


def render_speechbrain_lobe(part, report):
    """SpeechBrain's lobe against ours: step times, throughput, memory; the same-weights check."""
    rows = rows_of(part, "lobe")
    base = next((r for r in rows if r["impl"] == "speechbrain"), None)
    lines = [[{"speechbrain": "SpeechBrain 1.1.2 `W2VBert` (numpy features on the CPU)",
               "ours": "ours (`SeamlessFbank` on the device)"}[r["impl"]], r["steps"], f"{r['median_s']:.3f}",
              f"{r['worst_s']:.3f}", f"{r['audio_s_per_s']:.1f}", fmt(r["peak_mb"], ",.0f"),
              fmt(base and r["audio_s_per_s"] / base["audio_s_per_s"], ".2f") + "x"] for r in rows]
    setup = (rows_of(part, "setup") or [{}])[0]
    text = (f"Encoder {setup.get('config')} (both load one saved random model), linear head, fp32 CTC, fused AdamW, "
            f"{setup.get('precision')}; {setup.get('steps')} steps of {setup.get('seconds_per_step')} s of audio on "
            "average, after a warm-up step.\n\n"
            + table(["lobe", "steps", "median s/step", "worst s", "audio s/s", "peak MB", "speed"], lines))
    for r in rows_of(part, "same_weights"):
        text += (f"\n\nSame weights: hidden states of one batch (fp32, eval mode) differ by at most "
                 f"{r['max_abs_diff']:.1e} (largest value {r['max_abs']:.1f}).")
    return text


def render_max_batch(part, report):
    """The batch-size search: the largest fitting max_batch_length per checkpointing setting."""
    setup = (rows_of(part, "setup") or [{}])[0]
    lines = []
    for r in rows_of(part, "search"):
        found = f"{r['max_batch_length']:g} s ({r['utterances']} utterances)"
        if r["capped"]:
            found = f">= {found}: the recipe's max_batch_ex caps it"
        elif r["first_failing"] is not None and r["first_failing"] - r["utterances"] > 1:
            found += f"; {r['first_failing']} did not fit, between untried"
        lines.append([r["checkpointing"], found, fmt(r["peak_mb"], ",.0f"),
                      ", ".join(f"{n}{'' if ok else ' (OOM)'}" for n, ok in r["probes"])])
    total = setup.get("total_mb")
    return (f"Batches of {setup.get('utterance_s')} s utterances through a {setup.get('precision')} training step "
            "of the recipe's model "
            f"({setup.get('config')}, layerdrop 0, fused AdamW); GPU memory "
            f"{fmt(total, ',.0f')} MB. `max_batch_length` = utterances x {setup.get('utterance_s')} s.\n\n"
            + table(["gradient checkpointing", "largest max_batch_length", "peak MB", "probes (utterances)"], lines))


def precision_text(setup):
    """'bf16 autocast' or 'fp32' (the smoke run's)."""
    return "bf16 autocast" if setup.get("precision") == "bf16" else str(setup.get("precision"))


def steady(times):
    """Median of the second half (after compilation and warm-up)."""
    return statistics.median(times[len(times) // 2:]) if times else None


def render_recipe(part, report):
    """A recipe run: its command, the checks (updates, loss, dev, test, times) and the export."""
    text = []
    for r in rows_of(part, "setup"):
        text.append("`python recipes/OpenSLR54/train.py " + " ".join(r["args"]) + "`")
    updates = [r["seconds"] for r in rows_of(part, "update")]
    for s in rows_of(part, "summary"):
        losses = ", ".join(f"{x:.2f}" for x in s["train_loss"])
        text.append(table(["check", "result"], [
            ["updates, epochs", f"{s['updates']}, {s['epochs']}"],
            ["train loss per epoch", losses or "-"],
            ["loss falls (mean of the first vs last tenth of updates)",
             f"{fmt(s['loss_first_tenth'], '.2f')} -> {fmt(s['loss_last_tenth'], '.2f')}: "
             + ("yes" if s["loss_falls"] else "**no**")],
            ["dev decoded (WER per epoch)", ", ".join(fmt(w, ".1f") for w in s["dev_wer"]) + (
                "" if s["dev_decoded"] else " **(missing)**")],
            ["test WER (greedy)", fmt(s["test_wer"], ".1f")],
            ["time in updates / whole run", f"{s['train_s']:.1f} s / {s['wall_s']:.1f} s"],
            ["update time: median of the second half", f"{fmt(steady(updates), '.3f')} s"],
        ]))
    for e in rows_of(part, "export"):
        text.append(f"Exported: `inference/` ({', '.join(e['inference_files'])}), `hf_model/` "
                    f"({', '.join(e['hf_files']) or 'not written'}); the `EncoderASR` folder loaded on "
                    f"`{e['loaded_on']}` and transcribed a test utterance ({e['transcript_chars']} characters: "
                    "a random model's output).")
    for n in rows_of(part, "note"):
        text.append(n["text"] + ".")
    return "\n\n".join(text)


def render_recipe_compile(part, report):
    """The compiled run, and its updates against the eager run's same updates."""
    text = [render_recipe(part, report)]
    compiled = [r["seconds"] for r in rows_of(part, "update")]
    eager = [r["seconds"] for r in rows_of(report["parts"].get("recipe", {}), "update")]
    n = min(len(compiled), len(eager))
    if n >= 4:  # the same batches in the same order (same seed): compare update by update
        k = n // 2
        speedup = statistics.median(eager[k:n]) / statistics.median(compiled[k:n])
        overhead = sum(compiled[:k]) - sum(eager[:k])
        text.append(table(["compiled vs eager, same updates", "result"], [
            [f"median update, updates {k + 1}-{n}", f"{statistics.median(compiled[k:n]):.3f} s vs "
             f"{statistics.median(eager[k:n]):.3f} s: **{speedup:.2f}x** " + ("faster" if speedup >= 1 else "slower")],
            [f"compilation: extra time in updates 1-{k}", f"{overhead:.1f} s"],
            ["first update (compiled / eager)", f"{compiled[0]:.1f} s / {eager[0]:.1f} s"],
        ]))
        evals = [r["seconds"] for r in rows_of(part, "eval")]
        if evals:
            text.append(f"Dev/test batches (compiled, recompiled for evaluation): {len(evals)} in {sum(evals):.1f} s, "
                        f"the first {evals[0]:.1f} s.")
    elif part.get("status") == "ok":
        text.append("Too few updates of both runs to compare.")
    for s in rows_of(part, "summary"):
        if "dynamo" in s:
            text.append(f"Dynamo: {s['dynamo']['unique_graphs']} graphs, {s['dynamo']['graph_breaks']} graph breaks.")
    return "\n\n".join(t for t in text if t)


RENDERERS = {
    "frontend": render_frontend, "attention": render_attention, "train_step": render_train_step,
    "speechbrain_lobe": render_speechbrain_lobe, "max_batch": render_max_batch, "recipe": render_recipe,
    "recipe_compile": render_recipe_compile,
}


def target_lines(report):
    """The issue's targets against what was measured (GPU runs only)."""
    parts = report["parts"]
    impls = {r["impl"]: r for r in rows_of(parts.get("train_step", {}), "impl")}
    lines = []
    if "hf" in impls and "ours" in impls:
        speed = impls["ours"]["audio_s_per_s"] / impls["hf"]["audio_s_per_s"]
        threshold, what = TARGETS["train_speed"]
        lines.append([what, f"{speed:.2f}x", "yes" if speed >= threshold else "**no**"])
    if impls.get("ours", {}).get("mfu"):
        mfu = impls["ours"]["mfu"]
        threshold, what = TARGETS["train_mfu"]
        lines.append([what, f"{100 * mfu:.1f}%", "yes" if mfu >= threshold else "**no**"])
    gpu = [r for r in rows_of(parts.get("frontend", {}), "loop")
           if r["workload"] == "recipe batches" and "CUDA" in r["impl"]]
    if gpu:
        threshold, what = TARGETS["frontend_gpu"]
        lines.append([what, f"{gpu[0]['ratio']:.0f}x", "yes" if gpu[0]["ratio"] >= threshold else "**no**"])
    return lines


def render(report):
    """The whole Markdown page of a report (see the module docstring)."""
    env = report["environment"]
    facts = (rows_of(report["parts"].get("environment", {}), "facts") or [{}])[0]
    smoke = report["smoke"]
    out = ["# GPU report" + (": CPU smoke run" if smoke else "")]
    if smoke:
        out.append("**This is a CPU smoke run (`python bench/gpu_report.py --smoke`): every part at tiny sizes on the "
                   "CPU, to show that the report runs. None of its numbers is a GPU figure.**")
    limit = "" if smoke else f" (limit {report['total_budget_s']} s)"
    out.append(f"Written by `{report['command']}` (`bench/gpu_report.py`) on {env['date']}, commit "
               f"`{env['commit'] or 'unknown'}`, in {report['wall_s']:.0f} s{limit}.")
    machine = [["device", facts.get("gpu") or "CPU"],
               ["GPU memory", fmt(facts.get("gpu_memory_gb"), ".1f") + " GB" if facts.get("gpu") else "-"],
               ["driver (CUDA it supports)", f"{facts.get('driver', '-')} ({facts.get('driver_cuda', '-')})"],
               ["CUDA runtime (torch), cuDNN", f"{facts.get('cuda_runtime', '-')}, {facts.get('cudnn', '-')}"],
               ["dense bf16 peak (MFU's denominator)", fmt(facts.get("peak_bf16_tflops"), ".0f") + " TFLOP/s"
                if facts.get("peak_bf16_tflops") else "-"],
               ["bf16 matmul measured (best of 10)", fmt(facts.get("bf16_matmul_tflops"), ".3g") + " TFLOP/s"],
               ["CPU", f"{env['cpu']}, {env['cpu_count']} cores; torch threads {facts.get('torch_threads', '-')}"],
               ["Python", env["python"]]]
    machine += [[name, version] for name, version in env["versions"].items()]
    machine.append(["wheels from .gpu-wheels", ", ".join(" ".join(w.split("-")[:2]) for w in env["wheels_used"])
                    or "none (all installed)"])
    if facts.get("missing_private_apis"):
        machine.append(["private names missing", "; ".join(facts["missing_private_apis"])])
    out.append(table(["", ""], machine))
    summary = [[f"[{p['title']}](#{anchor(p['title'])})", p["status"], f"{p['wall_s']:.0f} s",
                fmt(p.get("cpu_s"), ".0f") + " s", f"{p['budget_s']:.0f} s", len(rows_of(p, "skip")),
                len(rows_of(p, "error"))] for name, p in report["parts"].items() if name != "environment"]
    out.append("## Parts\n\n" + table(["part", "status", "time", "CPU time", "budget", "cells skipped", "errors"],
                                        summary))
    targets = target_lines(report)
    if targets and not smoke:
        out.append("## Targets\n\n" + table(["target", "measured", "met"], targets))
    for name, p in report["parts"].items():
        if name == "environment":
            continue
        section = [f"## {p['title']}"]
        if p["status"] != "ok":
            section.append(f"**{status_text(p)}**")
        missing = missing_cells(p)
        if missing:
            section.append("Not run: " + "; ".join(missing) + ".")
        for e in rows_of(p, "error"):
            section.append(f"Error{' in ' + e['cell'] if e.get('cell') else ''}: `{e['error']}`")
        if p.get("rows"):
            with contextlib.suppress(Exception):  # a partial part renders what it has
                section.append(RENDERERS[name](p, report))
        out.append("\n\n".join(section))
    out.append("## How to run it\n\n" + HOW_TO_RUN)
    return "\n\n".join(out) + "\n"


HOW_TO_RUN = """`make gpu-wheels` (here, with a network) downloads what the GPU image lacks into `.gpu-wheels/`;
on the GPU machine, with `.gpu-wheels/` carried along, `python bench/gpu_report.py` (or `make gpu-report`) writes
this file and `docs/benchmarks-gpu.json` (every row measured). `--parts a,b` reruns some parts into the existing
report; `--smoke` runs every part on the CPU at tiny sizes, all in one process (CI). On a GPU each part runs in its
own process within its budget; a part that runs out of time keeps what it measured and lists what it did not run."""


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def status_text(part):
    """A sentence for a part that did not finish."""
    return {"timeout": f"Stopped at its budget of {part['budget_s']:.0f} s: what it measured before is below.",
            "error": "Failed: see the error below and the part's log" + (f" (`{part.get('log')}`)" if part.get("log")
                                                                         else "") + ".",
            "skipped": f"Not run: {part.get('why', 'no time left')}."}.get(part["status"], part["status"])


def missing_cells(part):
    """The cells a part skipped (with why), then the planned cells without a
    row (a result, a skip or an error names its cell)."""
    plans = rows_of(part, "plan")
    skipped = [f"{r['cell']} ({r['why']})" for r in rows_of(part, "skip")]
    if not plans:
        return skipped
    accounted = {r.get("cell") for r in part["rows"] if r["kind"] != "plan"}
    why = {"timeout": "stopped at the budget", "error": "not reached: the part failed"}.get(part["status"], "not run")
    return skipped + [f"{cell} ({why})" for cell in plans[0]["cells"] if cell not in accounted]


# --------------------------------------------------------------------------- main
def main(argv=None):
    """Runs the report (or, with ``--child-config``, a parts process); 0 when every part ran whole."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every part on the CPU, tiny sizes (CI)")
    parser.add_argument("--parts", help=f"comma-separated parts to run ({', '.join(PARTS)}); the others are "
                        "kept from the existing JSON")
    parser.add_argument("--out-dir", help="where benchmarks-gpu.md and .json go (default: docs/, "
                        "results/gpu-report-smoke/ with --smoke)")
    parser.add_argument("--work-dir", default=WORK_DIR, help="scratch space (models, checkpoints: removed per part)")
    parser.add_argument("--logs", help="folder of the parts' logs (default: <work-dir>/logs)")
    parser.add_argument("--wheels", default=WHEEL_DIR, help="folder of wheels to use where the interpreter lacks them")
    parser.add_argument("--list-wheels", action="store_true", help="print GPU_WHEELS pinned to the lock, and stop")
    parser.add_argument("--child-config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    start = time.monotonic()
    for path in (ROOT, HERE, RECIPE_DIR):  # the package, the benches and the recipe, as their scripts import them
        if path not in sys.path:
            sys.path.insert(0, path)
    if args.list_wheels:
        print("\n".join(wheel_requirements()))
        return 0
    if args.child_config:
        return child(json.loads(args.child_config))
    wheels_used = use_wheels(args.wheels, args.work_dir)
    os.environ["HF_HUB_OFFLINE"] = "1"  # everything is local; a GPU machine has no network anyway
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # the parts own the GPU: this process starts no CUDA
    import torch

    if args.smoke:
        device, threads = "cpu", min(SMOKE_THREADS, os.cpu_count() or 1)
    elif torch.cuda.is_available():
        device, threads = "cuda", torch.get_num_threads()
    else:
        sys.exit("gpu_report.py: no CUDA device; --smoke runs every part on the CPU at tiny sizes")
    out_dir = args.out_dir or (os.path.join(ROOT, "results", "gpu-report-smoke") if args.smoke
                               else os.path.join(ROOT, "docs"))
    json_path = os.path.join(out_dir, "benchmarks-gpu.json")
    md_path = os.path.join(out_dir, "benchmarks-gpu.md")
    chosen = list(PARTS) if not args.parts else ["environment"] + [p for p in args.parts.split(",")
                                                                   if p != "environment"]
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        sys.exit(f"gpu_report.py: unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    parts = {}
    if args.parts and os.path.exists(json_path):  # a rerun of some parts into an existing report
        with open(json_path, encoding="utf-8") as f:
            previous = json.load(f)
        if previous.get("smoke") != args.smoke:
            sys.exit(f"gpu_report.py: {json_path} is a {'smoke' if previous.get('smoke') else 'GPU'} report; "
                     "write this run elsewhere with --out-dir")
        parts = previous["parts"]
    logs = args.logs or os.path.join(args.work_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    os.makedirs(args.work_dir, exist_ok=True)
    environment = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "commit": commit(), "python": platform.python_version(), "cpu": cpu_model(),
                   "cpu_count": os.cpu_count(), "versions": versions(), "wheels_used": wheels_used}
    command = "python bench/gpu_report.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    if args.smoke:  # one process for all: one set of imports
        groups = [(chosen, [SMOKE_BUDGET_S] * len(chosen))]
    else:
        groups = [([name], None) for name in chosen]
    for names, budgets in groups:
        if budgets is None:  # one part: its budget, within what the total leaves
            name = names[0]
            left = TOTAL_BUDGET_S - (time.monotonic() - start) - GRACE_S
            budget = max(BUDGETS[name], left) if name == list(PARTS)[-1] else BUDGETS[name]  # the last: the rest
            budgets = [min(budget, left)]
        if budgets[0] < 10:
            parts[names[0]] = {"title": PARTS[names[0]][0], "status": "skipped", "budget_s": 0, "wall_s": 0,
                               "rows": [], "why": f"no time left in the {TOTAL_BUDGET_S} s total"}
            records = {names[0]: parts[names[0]]}
        else:
            previous_gpu = gpu_of(parts.get("environment")) if "environment" in names else None
            records = run_parts(names, budgets, device, args.smoke, args.work_dir, logs, threads, GRACE_S)
            parts.update(records)
            if "environment" in records:  # the machine's facts at the top of the JSON too
                facts = (rows_of(records["environment"], "facts") or [{}])[0]
                environment.update({key: facts[key] for key in ("gpu", "gpu_memory_gb", "driver", "driver_cuda",
                                                                "cuda_runtime", "cudnn") if key in facts})
            if previous_gpu and previous_gpu != gpu_of(parts["environment"]):  # never merge two machines' figures
                print(f"{json_path} was measured on {previous_gpu}: its parts are not kept", flush=True)
                parts = {name: parts[name] for name in chosen if name in parts}
        for name, p in records.items():
            errors = len(rows_of(p, "error"))
            note = f"; {errors} error(s), log {p.get('log')}" if errors else ""
            print(f"[{time.monotonic() - start:5.0f} s] {name}: {p['status']} ({p['wall_s']:.0f} s of "
                  f"{p['budget_s']:.0f} s{note})", flush=True)
        # Written after every part: a run cut short (the machine taken back) leaves what it measured.
        pending = {n: {"title": PARTS[n][0], "status": "skipped", "budget_s": 0, "wall_s": 0, "rows": [],
                       "why": "the run stopped before it"} for n in chosen if n not in parts}
        report = {"report": "gpu_report", "smoke": args.smoke, "device": device, "command": command,
                  "environment": environment, "total_budget_s": TOTAL_BUDGET_S, "wall_s": time.monotonic() - start,
                  "parts": {n: parts.get(n, pending.get(n)) for n in PARTS if n in parts or n in pending}}
        write_atomic(json_path, json.dumps(report, indent=1, default=float) + "\n")
        write_atomic(md_path, render(report))
    print(f"wrote {md_path} and {json_path}")
    return 0 if all(p["status"] == "ok" for p in report["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
