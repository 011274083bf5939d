"""End-to-end tests of recipes/OpenSLR54/train.py with the tiny CPU config.

Every run uses a small slice of the bundled sample corpus (short utterances)
so that the module stays within a couple of minutes on two cores. The runs
are subprocesses, as a user would start them (resume after a SIGKILL and
torchrun need real processes anyway).
"""

import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import torch
import yaml

from tests.helpers import DATA_DIR, RECIPE_DIR, ROOT, SLICE_EVAL, SLICE_TRAIN, THREADS, TINY_HPARAMS

pytestmark = pytest.mark.recipe  # every test here trains through the recipe, or uses a trained run

TRAIN = os.path.join(RECIPE_DIR, "train.py")
RUNNER = os.path.join(ROOT, "tests", "recipe_runner.py")


def _env(threads=THREADS):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    return env


@pytest.fixture(scope="module")
def data(recipe_data):
    """The sliced sample corpus (tests/conftest.py)."""
    return recipe_data


def recipe_args(data, output, *extra):
    """train.py's arguments for a short run of the tiny recipe on the slices."""
    return [
        TINY_HPARAMS,
        "--data_folder=unused",
        "--skip_prep=True",
        f"--train_csv={data['train']}",
        f"--dev_csv={data['dev']}",
        f"--test_csv={data['test']}",
        f"--output_folder={output}",
        "--max_batch_length=8",
        "--warmup_steps=2",
        "--noprogressbar",
        # beam search on a barely trained model's flat posteriors is slow: LM decoding where asked only
        *([] if any(e.startswith("--lm_decoding=") for e in extra) else ["--lm_decoding=False"]),
        *extra,
    ]


def run(args, runner=False, check=True, threads=THREADS, launcher=None, env=None):
    """Runs train.py (or the fault-injecting runner) in a subprocess, with
    ``env`` added to the environment."""
    command = [*(launcher or [sys.executable]), RUNNER if runner else TRAIN, *args]
    proc = subprocess.run(command, cwd=ROOT, env={**_env(threads), **(env or {})}, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def read_log(output):
    """A run's train_log.txt, parsed (empty if absent)."""
    from speechbrain_w2vbert.training.plot import read_train_log

    path = os.path.join(output, "train_log.txt")
    return read_train_log(path) if os.path.isfile(path) else []


def epoch_lines(output):
    """The end-of-epoch lines of a run's train_log.txt."""
    return [r for r in read_log(output) if "train loss" in r]


def latest_checkpoint(output):
    """The most recently saved checkpoint folder of a run."""
    found, latest = None, -1.0
    for meta_path in glob.glob(os.path.join(output, "save", "CKPT+*", "CKPT.yaml")):
        with open(meta_path, encoding="utf-8") as f:
            meta = yaml.safe_load(f)
        if meta["unixtime"] > latest:
            found, latest = os.path.dirname(meta_path), meta["unixtime"]
    return found


#: The extra test set of the trained run: OpenSLR 43's layout (48 kHz WAVs), from tests/data/test_sets.
EXTRA_SET = os.path.join(DATA_DIR, "test_sets", "openslr43")


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A 3-epoch run of the whole recipe, with one extra test set: (output
    folder, console output)."""
    output = str(tmp_path_factory.mktemp("trained") / "exp")
    proc = run(recipe_args(data, output, "--number_of_epochs=3", "--valid_interval_steps=4", "--lm_decoding=True",
                           f"--extra_test_sets=[slr43: openslr43:{EXTRA_SET}]"))
    return output, proc.stdout + proc.stderr


def test_recipe_trains_and_writes_its_outputs(trained):
    output, log = trained
    lines = epoch_lines(output)
    assert [r["epoch"] for r in lines] == [1.0, 2.0, 3.0]
    losses = [r["train loss"] for r in lines]
    assert losses[-1] < 0.8 * losses[0], losses
    # the broken file is skipped every epoch, named in the log; the
    # infeasible utterance is counted, not silently zeroed
    assert lines[-1]["unreadable"] == 3 and lines[-1]["ctc_infeasible"] == 3
    assert "broken.flac" in log and "too_many_labels" in log
    # dev is also evaluated every 4 updates, inside the epochs
    mid = [r for r in read_log(output) if "mid-epoch batch" in r]
    assert len(mid) == lines[-1]["updates"] // 4 and all(r["updates"] % 4 == 0 for r in mid)
    with open(os.path.join(output, "wer_test.txt"), encoding="utf-8") as f:
        alignments = f.read()
    assert alignments.startswith("CER\n%WER") and "\nWER\n%WER" in alignments
    assert alignments.count("%WER") == 2 * (SLICE_EVAL + 1)  # summary + one per utterance, for CER and WER
    assert any("test CER" in r and "test WER" in r for r in read_log(output))
    assert os.path.getsize(os.path.join(output, "training_curves.png")) > 10_000
    for name in ("hyperparams.yaml", "encoder.ckpt", "ctc_head.ckpt", "vocab.json", "lm.ckpt", "unigrams.txt"):
        assert os.path.isfile(os.path.join(output, "inference", name))


def test_recipe_decodes_the_test_set_with_the_lm(trained):
    """The LM step: built from train.csv, tuned on the dev subset, test decoded
    greedily and with the LM, both logged, in the card, the plot's input and
    the exports."""
    output, _ = trained
    with open(os.path.join(output, "lm", "lm_report.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert report["order"] == 3 and report["sentences"] == SLICE_TRAIN + 2  # unreadable, infeasible rows too
    with open(os.path.join(output, "lm_tuning.json"), encoding="utf-8") as f:
        tuning = json.load(f)
    assert len(tuning["grid"]) == 6 and tuning["utterances"] == SLICE_EVAL
    tests = [r for r in read_log(output) if "test CER" in r]
    assert [r.get("decoding", "greedy") for r in tests] == ["greedy", "LM"]
    with open(os.path.join(output, "wer_test_lm.txt"), encoding="utf-8") as f:
        alignments = f.read()
    assert alignments.count("%WER") == 2 * (SLICE_EVAL + 1)
    assert f"weight {tuning['lm_weight']}, word bonus {tuning['word_bonus']}" in alignments
    with open(os.path.join(output, "inference", "README.md"), encoding="utf-8") as f:
        card = f.read()
    assert "test WER (greedy)" in card and f"test WER (beam + LM) | {tests[1]['test WER']:.2f}%" in card
    with open(os.path.join(output, "inference", "hyperparams.yaml"), encoding="utf-8") as f:
        assert f"lm_weight: {tuning['lm_weight']}" in f.read()
    assert {"alphabet.json", "language_model"} <= set(os.listdir(os.path.join(output, "hf_model")))


def test_recipe_decodes_the_extra_test_sets(trained, data, tmp_path):
    """The extra set is prepared (its drops counted), decoded with the best
    checkpoint greedily and with the LM, its alignments written beside the
    test split's; both are rows of test_results.md/.json and of the model
    card, with the overlap report; and evaluate.py on the exported folder
    gives the recipe's figures."""
    output, _ = trained
    with open(os.path.join(output, "test_results.json"), encoding="utf-8") as f:
        results = json.load(f)
    test, extra = results["rows"]
    assert (test["set"], extra["set"]) == ("openslr54_test", "slr43")
    logged = {r.get("decoding", "greedy"): r for r in read_log(output) if "test CER" in r}
    assert test["utterances"] == SLICE_EVAL and test["greedy"]["WER"] == pytest.approx(logged["greedy"]["test WER"])
    assert test["lm"]["WER"] == pytest.approx(logged["LM"]["test WER"])
    with open(os.path.join(output, "test_sets", "slr43", "prep_report.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert extra["utterances"] == report["kept"]["utterances"] == 2
    assert extra["preparation"]["dropped"] == {"audio_absent": 1, "empty_file": 1}
    assert extra["lm"] is not None and extra["overlap"]["oov_words"] is not None
    assert test["overlap"]["sentences"] == SLICE_EVAL and test["overlap"]["in_training_text"] is not None
    for name in ("wer_slr43.txt", "wer_slr43_lm.txt"):
        with open(os.path.join(output, name), encoding="utf-8") as f:
            assert f.read().count("%WER") == 2 * (2 + 1)
    with open(os.path.join(output, "inference", "README.md"), encoding="utf-8") as f:
        card = f.read()
    assert "## Test sets (best dev checkpoint)" in card and "| slr43 | 2 |" in card and "2 = २" in card

    import evaluate

    status = evaluate.main([os.path.join(output, "inference"), "--test_set", f"slr43: openslr43:{EXTRA_SET}",
                            "--test_set", f"openslr54_test: tsv:{data['test']}", "--train-text", data["train"],
                            "--output_folder", str(tmp_path / "eval"), "--savedir", str(tmp_path / "sb")])
    with open(tmp_path / "eval" / "test_results.json", encoding="utf-8") as f:
        again = {row["set"]: row for row in json.load(f)["rows"]}
    assert status == 0
    for row in (extra, test):
        for key in ("utterances", "words", "greedy", "overlap"):
            assert again[row["set"]][key] == row[key], (row["set"], key)
        assert again[row["set"]]["lm"]["WER"] == pytest.approx(row["lm"]["WER"])


def test_exported_folders_name_no_path_of_the_machine(trained, data, tmp_path):
    """The model card gives the command as it would be typed again from the
    repository (its paths relative or placeholders), and no file of the
    exported folders holds an absolute path of the run; the folder's
    manifest verifies and it opens through ``load_asr``."""
    from speechbrain_w2vbert.inference.folder import load_asr
    from speechbrain_w2vbert.inference.manifest import verify_manifest

    output, _ = trained
    with open(os.path.join(output, "inference", "README.md"), encoding="utf-8") as f:
        card = f.read()
    assert "python recipes/OpenSLR54/train.py hparams/w2vbert_ctc_tiny.yaml --data_folder=unused" in card
    assert "--output_folder=<output_folder>" in card and "--train_csv=<train_csv>" in card
    machine = {output, os.path.dirname(data["train"]), ROOT, os.path.expanduser("~"), tempfile.gettempdir()}
    for folder in ("inference", "hf_model", "onnx"):
        for root, _, files in os.walk(os.path.join(output, folder)):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    content = f.read()
                leaked = [p for p in machine if p.encode("utf-8") in content]
                assert leaked == [], (os.path.join(root, name), leaked)
    assert verify_manifest(os.path.join(output, "inference"))["kind"] == "encoder_asr"
    asr = load_asr(os.path.join(output, "inference"), str(tmp_path / "asr"))
    audio = os.path.join(ROOT, "tests", "data", "ne_speech_a.flac")
    assert asr.transcribe_file(audio) is not None
    # export_onnx: True (the tiny hparams): onnx/ gives the folder's greedy transcript
    from speechbrain_w2vbert.onnx.runtime import OnnxTranscriber

    assert verify_manifest(os.path.join(output, "onnx"))["kind"] == "onnx"
    onnx = OnnxTranscriber(os.path.join(output, "onnx"), use_lm=False, segmenter=None)
    greedy = load_asr(os.path.join(output, "inference"), str(tmp_path / "greedy"), overrides={"use_lm": False})
    assert onnx.transcribe_waveforms([onnx.read(audio)])[0].text == greedy.transcribe_file(audio)


def test_a_failed_lm_step_keeps_the_model_and_names_the_file(data, tmp_path):
    output = str(tmp_path / "exp")
    missing = str(tmp_path / "missing.txt")
    proc = run(recipe_args(data, output, "--number_of_epochs=1", "--lm_decoding=True", f"--lm_extra_texts=[{missing}]"),
               check=False)
    assert proc.returncode != 0 and f"{missing}: no such text file" in proc.stderr
    assert [r.get("decoding", "greedy") for r in read_log(output) if "test CER" in r] == ["greedy"]
    files = os.listdir(os.path.join(output, "inference"))
    assert "encoder.ckpt" in files and "lm.ckpt" not in files  # exported, greedy
    assert os.path.isfile(os.path.join(output, "wer_test.txt"))


def test_inference_folder_batch_equals_one_by_one(trained, data, tmp_path):
    from speechbrain.inference.ASR import EncoderASR

    output, _ = trained
    asr = EncoderASR.from_hparams(source=os.path.join(output, "inference"), savedir=str(tmp_path / "asr"))
    with open(data["test"], encoding="utf-8") as f:
        paths = [row["wav"] for row in csv.DictReader(f)]
    wavs = [asr.load_audio(p) for p in paths]
    assert len({len(w) for w in wavs}) == len(wavs)  # real padding in the batch
    batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    lens = torch.tensor([len(w) / batch.shape[1] for w in wavs])
    words, _ = asr.transcribe_batch(batch, lens)
    assert words == [asr.transcribe_file(p) for p in paths]
    # the frame posteriors agree too, not only the (possibly short) texts
    with torch.no_grad():
        batched = asr.encode_batch(batch, lens)
        for i, wav in enumerate(wavs):
            alone = asr.encode_batch(wav[None], torch.ones(1))[0]
            torch.testing.assert_close(batched[i, : alone.shape[0]].exp(), alone.exp(), atol=1e-4, rtol=0)
            assert (batched[i, alone.shape[0]:].argmax(-1) == 0).all()


def test_hf_export_gives_the_same_logits(trained, data):
    from transformers import Wav2Vec2BertForCTC, Wav2Vec2BertProcessor

    output, _ = trained
    from speechbrain.inference.ASR import EncoderASR

    asr = EncoderASR.from_hparams(source=os.path.join(output, "inference"), savedir=os.path.join(output, "asr"))
    hf = Wav2Vec2BertForCTC.from_pretrained(os.path.join(output, "hf_model")).eval()
    processor = Wav2Vec2BertProcessor.from_pretrained(os.path.join(output, "hf_model"))
    with open(data["test"], encoding="utf-8") as f:
        wav = asr.load_audio(next(csv.DictReader(f))["wav"])
    inputs = processor(audio=wav.numpy(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ours = asr.encode_batch(wav[None], torch.ones(1))
        theirs = hf(**inputs).logits.log_softmax(-1)
    torch.testing.assert_close(ours, theirs, atol=2e-4, rtol=0)


#: What bitwise resumption needs on a CPU besides the recipe's own per-step
#: seeding (README, "Resuming"): the same thread count in both processes and
#: MKL's conditional numerical reproducibility, which keeps MKL's GEMM
#: results independent of memory alignment and of MKL's own thread choice.
BITWISE_ENV = {"OMP_NUM_THREADS": str(THREADS), "MKL_CBWR": "AUTO,STRICT"}


def same_structure(a, b, where):
    """Asserts that two loaded checkpoint objects are equal, tensors bitwise;
    returns how many tensors were compared."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape, where
        if not torch.equal(a, b):
            bad = (a != b).sum().item()
            worst = (a.double() - b.double()).abs().max().item()
            raise AssertionError(f"{where}: {bad} of {a.numel()} elements differ (max {worst:.3e}); "
                                 f"CPU: {_cpu_model()}")
        return 1
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys differ"
        return sum(same_structure(a[k], b[k], f"{where}.{k}") for k in a)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        return sum(same_structure(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    assert a == b, f"{where}: {a!r} != {b!r}"
    return 0


def _cpu_model():
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")


def assert_same_checkpoint(a, b):
    """Every file of checkpoint folder ``b`` equals ``a``'s (tensors bitwise),
    but the save time in CKPT.yaml; returns the number of tensors compared."""
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    tensors = 0
    for name in names:
        path_a, path_b = os.path.join(a, name), os.path.join(b, name)
        if name == "CKPT.yaml":
            with open(path_a, encoding="utf-8") as fa, open(path_b, encoding="utf-8") as fb:
                meta_a, meta_b = yaml.safe_load(fa), yaml.safe_load(fb)
            del meta_a["unixtime"], meta_b["unixtime"]
            assert meta_a == meta_b, name
            continue
        try:
            state_a, state_b = torch.load(path_a), torch.load(path_b)
        except Exception:  # not a torch file: the JSON / text recoverables
            with open(path_a, "rb") as fa, open(path_b, "rb") as fb:
                assert fa.read() == fb.read(), name
            continue
        tensors += same_structure(state_a, state_b, name)
    return tensors


#: A 2-epoch run (9 updates an epoch) with an intra-epoch checkpoint every 2
#: batches; SpecAugment (numpy's global RNG) and dropout stay on: per-step
#: seeding makes them reproducible across restarts.
RESUMABLE = ["--number_of_epochs=2", "--ckpt_interval_steps=2", "--mask_time_prob=0.2"]


def brain_state(checkpoint):
    """The step counters of a checkpoint folder (its brain.ckpt)."""
    with open(os.path.join(checkpoint, "brain.ckpt"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def unfinished_saves(output):
    return [name for name in os.listdir(os.path.join(output, "save")) if name.startswith(".saving-")]


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """The RESUMABLE run, uninterrupted: its output folder."""
    output = str(tmp_path_factory.mktemp("uninterrupted") / "exp")
    run(recipe_args(data, output, *RESUMABLE), env=BITWISE_ENV)
    return output


def test_interrupted_runs_resume_and_end_like_an_uninterrupted_one(data, uninterrupted, tmp_path):
    """A full disk during a save, a torn checkpoint as 0.1.x leaves it, a
    SIGKILL in the middle of a save and a SIGUSR1 in the middle of an
    update: each rerun of the same command resumes from the newest
    complete checkpoint, and the last one ends bitwise like the
    uninterrupted run."""
    output = str(tmp_path / "exp")
    save = os.path.join(output, "save")
    args = recipe_args(data, output, *RESUMABLE)

    # 1. ENOSPC while the checkpoint after update 4 is written (its encoder optimiser's state)
    full = run(["--enospc-in-save=encoder_optimizer", "--at-update=3", *args], runner=True, check=False,
               env=BITWISE_ENV)
    previous, log = latest_checkpoint(output), full.stdout + full.stderr
    assert full.returncode == 74, log[-3000:]
    assert f"could not write a checkpoint in {save}: RuntimeError: " in log and " free of " in log
    assert f"The previous checkpoint {previous} is intact" in log
    assert brain_state(previous)["optimizer_step"] == 2 and unfinished_saves(output) == []

    # 2. a torn checkpoint in 0.1.x's layout: newer than the others, no sizes in CKPT.yaml, encoder.ckpt cut in half
    torn = os.path.join(save, "CKPT+2099-01-01+00-00-00+00")
    shutil.copytree(previous, torn)
    with open(os.path.join(torn, "CKPT.yaml"), encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    del meta["file-bytes"]
    meta["unixtime"] += 1000
    with open(os.path.join(torn, "CKPT.yaml"), "w", encoding="utf-8") as f:
        yaml.dump(meta, f)
    encoder = os.path.join(torn, "encoder.ckpt")
    with open(encoder, "r+b") as f:
        f.truncate(os.path.getsize(encoder) // 2)

    # 3. SIGKILL with half of encoder.ckpt written, in the checkpoint after update 6
    killed = run(["--kill-at-update=5", "--in-save=encoder:during", *args], runner=True, check=False,
                 env=BITWISE_ENV)
    log = killed.stdout + killed.stderr
    assert killed.returncode == -9, log[-3000:]
    assert f"checkpoint {torn} cannot be loaded: encoder.ckpt is truncated or corrupt" in log
    assert f"Loading a checkpoint from {previous}" in log
    assert sorted(os.listdir(os.path.join(save, "broken"))) == [os.path.basename(torn)]  # moved, not deleted
    assert len(unfinished_saves(output)) == 1 and brain_state(latest_checkpoint(output))["optimizer_step"] == 4

    # 4. SIGUSR1 while update 7 is computed: that update ends, then a checkpoint and exit status 75
    complete = latest_checkpoint(output)
    stopped = run(["--signal-at-update=7:USR1", *args], runner=True, check=False, env=BITWISE_ENV)
    log = stopped.stdout + stopped.stderr
    assert stopped.returncode == 75, log[-3000:]
    assert f"Loading a checkpoint from {complete}" in log
    assert "SIGUSR1: stopped at update 7 (epoch 1, batch 7) with a checkpoint in" in log
    at_signal = latest_checkpoint(output)
    assert brain_state(at_signal)["optimizer_step"] == 7 and unfinished_saves(output) == []

    # 5. the same command again, to the end
    again = run(args, env=BITWISE_ENV)
    assert f"Loading a checkpoint from {at_signal}" in again.stdout + again.stderr
    # Bitwise: the encoder, the head, both optimisers' whole state, the
    # schedules, counters, the data loader's position and the step counters.
    compared = assert_same_checkpoint(latest_checkpoint(uninterrupted), latest_checkpoint(output))
    assert compared > 2 * 133  # the encoder's tensors and more than its Adam moments
    assert [r["train loss"] for r in epoch_lines(uninterrupted)] == [r["train loss"] for r in epoch_lines(output)]


def test_a_collapse_to_blanks_warns_and_can_stop_the_run(data, trained, tmp_path):
    """A learning rate 500 times the tiny recipe's: dev output stays blank
    (or one repeated character) at every evaluation, the warning names the
    usual causes, and stop_on_collapse ends the run. With its own learning
    rate the recipe writes characters by update 8 and never warns (the
    ``trained`` run)."""
    output = str(tmp_path / "exp")
    proc = run(recipe_args(data, output, "--number_of_epochs=2", "--lr_encoder=1.0", "--lr_head=1.0",
                           "--valid_interval_steps=2", "--collapse_patience=4", "--stop_on_collapse=True"),
               check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 78, log[-3000:]
    assert ("dev greedy output has been empty or one repeated character for 4 evaluations in a row after warm-up "
            "(all 5 utterances, update 8): the model has collapsed to blanks") in log
    assert "(1) the learning rate" in log and "Stopped (stop_on_collapse; exit status 78)" in log
    assert [r["updates"] for r in read_log(output)] == [2.0, 4.0, 6.0, 8.0]  # dev inside epoch 1, then the stop
    assert "collapsed to blanks" not in trained[1]


def test_ddp_two_cpu_processes(data, tmp_path):
    """torchrun, gloo, 2 processes, one epoch, with gradient checkpointing
    and LayerDrop (hence find_unused_parameters) switched on, and the LM step
    (both processes run the dev subset's forward, the main one the LM work).
    A SIGUSR1 to rank 1 alone first stops both ranks at the same update with
    a checkpoint; the same command then resumes from it."""
    output = str(tmp_path / "ddp")
    dump = str(tmp_path / "params_{rank}.pt")
    args = recipe_args(
        data, output, "--number_of_epochs=1", "--distributed_backend=gloo", "--gradient_checkpointing=True",
        "--layerdrop=0.3", "--find_unused_parameters", "--lm_decoding=True", "--lm_beam_size=2",
        "--lm_weights=[0.5]", "--lm_word_bonuses=[1.0]", "--lm_tune_workers=1",
    )
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    stopped = run(["--signal-at-update=3:USR1:rank1", *args], runner=True, threads=1, launcher=launcher, check=False)
    log = stopped.stdout + stopped.stderr
    # torchrun reports the first rank's 75 and may end the other with a SIGTERM once that rank has exited
    assert stopped.returncode == 1 and re.search(r"exitcode\s*: 75", log), log[-3000:]
    assert log.count("SIGUSR1 (rank 1): stopped at update 3 (epoch 1, batch 3)") == 2  # both ranks
    at_signal = latest_checkpoint(output)
    assert brain_state(at_signal)["optimizer_step"] == 3
    resumed = run([f"--dump-params={dump}", *args], runner=True, threads=1, launcher=launcher)
    assert f"Loading a checkpoint from {at_signal}" in resumed.stdout + resumed.stderr
    assert [r["epoch"] for r in epoch_lines(output)] == [1.0]
    assert [r.get("decoding", "greedy") for r in read_log(output) if "test CER" in r] == ["greedy", "LM"]
    p0, p1 = torch.load(dump.format(rank=0)), torch.load(dump.format(rank=1))
    assert p0.keys() == p1.keys() and any(k.startswith("encoder.module.") for k in p0)  # DDP-wrapped
    for key in p0:
        torch.testing.assert_close(p0[key], p1[key], atol=0, rtol=0, msg=key)


def test_bf16_with_a_nan_loss_skips_that_update_and_goes_on(data, trained, tmp_path):
    output = str(tmp_path / "bf16")
    dump = str(tmp_path / "params_{rank}.pt")
    run(["--nan-at-batch=2", f"--dump-params={dump}",
         *recipe_args(data, output, "--number_of_epochs=1", "--precision=bf16", "--eval_precision=bf16")],
        runner=True)
    (line,) = epoch_lines(output)
    assert line["nonfinite_skipped"] == 1
    # every other batch of the epoch made its update (same batches as the fp32 run's first epoch)
    assert line["updates"] == epoch_lines(trained[0])[0]["updates"] - 1
    params = torch.load(dump.format(rank=0))
    assert all(torch.isfinite(p).all() for p in params.values())
    assert all(line[k] == line[k] for k in ("train loss", "valid loss", "valid CER"))  # not NaN


def test_head_only_warmup_and_gradient_accumulation(data, trained, tmp_path):
    """With freeze_encoder_steps beyond the run, the encoder keeps its
    initial weights while the head trains; two batches make one update."""
    from hyperpyyaml import load_hyperpyyaml

    output = str(tmp_path / "frozen")
    dump = str(tmp_path / "params_{rank}.pt")
    run([f"--dump-params={dump}", *recipe_args(
        data, output, "--number_of_epochs=1", "--freeze_encoder_steps=1000", "--grad_accumulation_factor=2")],
        runner=True)
    (line,) = epoch_lines(output)
    batches = epoch_lines(trained[0])[0]["updates"]  # one update per batch there
    assert line["updates"] == batches // 2  # SpeechBrain drops the incomplete last group
    assert line["lr_encoder"] == 0.0 and line["lr_head"] > 0  # the encoder's schedule starts after the warm-up
    with open(TINY_HPARAMS, encoding="utf-8") as f:  # the same seed gives the same initial encoder
        initial = load_hyperpyyaml(f, {"data_folder": "unused", "output_folder": str(tmp_path / "init")})
    initial = initial["encoder"].named_parameters()
    params = torch.load(dump.format(rank=0))
    compared = 0
    for name, value in initial:
        torch.testing.assert_close(params[f"encoder.{name}"], value.detach(), atol=0, rtol=0, msg=name)
        compared += 1
    assert compared > 50
    with open(os.path.join(output, "tokenizer", "vocab.json"), encoding="utf-8") as f:
        assert params["ctc_head.weight"].shape == (len(yaml.safe_load(f)), 144)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 autocast needs CUDA in SpeechBrain")
def test_fp16_trains_with_the_grad_scaler(data, trained, tmp_path):
    """fp16 autocast with SpeechBrain's GradScaler: every batch makes its
    update (none lost to overflow), the loss is finite and falls like fp32's,
    and the weights stay finite."""
    output = str(tmp_path / "fp16")
    dump = str(tmp_path / "params_{rank}.pt")
    run([f"--dump-params={dump}",
         *recipe_args(data, output, "--number_of_epochs=2", "--precision=fp16", "--device=cuda:0")], runner=True)
    lines = epoch_lines(output)
    fp32 = epoch_lines(trained[0])
    assert [r["updates"] for r in lines] == [r["updates"] for r in fp32[:2]]
    assert all(r["nonfinite_skipped"] == 0 for r in lines)
    losses = [r["train loss"] for r in lines]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[1] < losses[0], losses
    params = torch.load(dump.format(rank=0))
    assert all(torch.isfinite(p).all() for p in params.values())


def speechbrain_recipe_rows():
    """The rows of tests/recipes/OpenSLR54.csv: this recipe in the format of
    SpeechBrain's own recipe tests (its repository's tests/recipes/*.csv)."""
    with open(os.path.join(ROOT, "tests", "recipes", "OpenSLR54.csv"), encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_every_hparams_file_has_a_speechbrain_recipe_row():
    listed = {row["Hparam_file"] for row in speechbrain_recipe_rows()}
    assert listed == {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "hparams", "*.yaml"))}


def _row_param(row):
    """One row per hparams file; CI runs the tiny one (the full-size files
    train the same code with another encoder: make test-all)."""
    name = os.path.basename(row["Hparam_file"])
    marks = () if name == "w2vbert_ctc_tiny.yaml" else (pytest.mark.extended,)
    return pytest.param(row, id=name, marks=marks)


@pytest.mark.parametrize("row", [_row_param(row) for row in speechbrain_recipe_rows()])
def test_speechbrain_recipe_row_runs(row, tmp_path):
    """What SpeechBrain's harness (tests/utils/recipe_tests.py) does with a
    row: the files it names exist, the command it builds from the row runs
    with ``--debug --debug_persistently`` on the CPU, and the files of
    ``test_debug_checks`` are in the output folder."""
    for column in ("Script_file", "Hparam_file", "Data_prep_file", "Readme_file"):
        assert os.path.isfile(os.path.join(ROOT, row[column])), (column, row[column])
    output = tmp_path / "out"
    flags = row["test_debug_flags"].replace("tests/tmp/OpenSLR54_sample_corpus", str(tmp_path / "corpus"))
    command = [sys.executable, row["Script_file"], row["Hparam_file"], *flags.split(), "--device=cpu",
               f"--output_folder={output}", "--debug", "--debug_persistently"]
    proc = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    files = re.search(r"file_exists=\[(.*)\]", row["test_debug_checks"]).group(1).split(",")
    assert [name for name in files if not os.path.exists(output / name)] == []
