"""Opening a model folder runs nothing the package does not vouch for:
every way the project opens one refuses a hyperparams.yaml naming other
code (and a marker file it would create never appears), verifies the
exported files against their manifest, and loads tensors only."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from speechbrain_w2vbert.inference.folder import ModelFolderError, load_asr
from speechbrain_w2vbert.inference.manifest import MANIFEST, ManifestError
from speechbrain_w2vbert.inference.safety import UnsafeFolderError, unsafe_targets
from tests.helpers import MODEL, ROOT, cli

#: Each malicious addition to a model's hyperparams.yaml (``{marker}``: a
#: file it would create) and the key the refusal must name.
ATTACKS = {
    "apply": ('pwn: !apply:os.system ["touch {marker}"]\n', "pwn", "!apply:os.system"),
    "popen": ('pwn: !new:subprocess.Popen [["touch", "{marker}"]]\n', "pwn", "!new:subprocess.Popen"),
    "eval": ('pwn: !name:builtins.eval\n', "pwn", "!name:builtins.eval"),
    "module": ('pwn: !module:os\n', "pwn", "!module:os"),
    "nested": ('deep:\n  list:\n    - 1\n    - inner: !apply:os.system ["touch {marker}"]\n', "deep.list[1].inner",
               "!apply:os.system"),
    "include": ("pwn: !include:extra.yaml\n", "pwn", "!include:extra.yaml"),
    "dunder_ref": ("pwn: !ref <tokenizer.__class__>\n", "pwn", "!ref <tokenizer.__class__>"),
}


def malicious_folder(tmp_path, attack):
    """A copy of the committed model with the attack added at the top of its YAML."""
    folder = tmp_path / f"model_{attack}"
    shutil.copytree(MODEL, folder)
    marker = tmp_path / f"pwned_{attack}"
    text, _, _ = ATTACKS[attack]
    (folder / "extra.yaml").write_text(f'inner: !apply:os.system ["touch {marker}"]\n', encoding="utf-8")
    original = (folder / "hyperparams.yaml").read_text(encoding="utf-8")
    (folder / "hyperparams.yaml").write_text(text.format(marker=marker) + original, encoding="utf-8")
    return str(folder), marker


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_is_found_with_its_key(attack, tmp_path):
    folder, _ = malicious_folder(tmp_path, attack)
    with open(os.path.join(folder, "hyperparams.yaml"), encoding="utf-8") as f:
        found = unsafe_targets(f.read())
    _, key, what = ATTACKS[attack]
    assert found == [(key, what)]


def test_the_committed_and_a_fresh_export_pass(tmp_path, asr):
    from speechbrain_w2vbert.inference.folder import asr_model, export_inference_folder

    for path in (os.path.join(MODEL, "hyperparams.yaml"),
                 os.path.join(ROOT, "tests", "data", "legacy_0.1", "tiny_ne_model_lm", "hyperparams.yaml")):
        with open(path, encoding="utf-8") as f:
            assert unsafe_targets(f.read()) == [], path
    model = asr_model(asr)
    export_inference_folder(str(tmp_path / "fresh"), model.encoder, model.head, asr.tokenizer)
    assert load_asr(str(tmp_path / "fresh"), str(tmp_path / "s")).transcribe_file(
        os.path.join(ROOT, "tests", "data", "ne_speech_a.flac"))


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_python_entry_point_refuses_and_runs_nothing(attack, tmp_path):
    folder, marker = malicious_folder(tmp_path, attack)
    _, key, what = ATTACKS[attack]
    with pytest.raises(UnsafeFolderError) as error:
        load_asr(folder, str(tmp_path / "savedir"))
    message = str(error.value)
    assert f"key {key!r} runs {what}" in message and "trust_remote_code=True" in message and folder in message
    assert not marker.exists()


@pytest.mark.parametrize("command", [["transcribe"], ["align"], ["export-hf"], ["export-onnx"], ["serve"]])
def test_cli_refuses_and_runs_nothing(command, tmp_path):
    folder, marker = malicious_folder(tmp_path, "apply")
    audio = os.path.join(ROOT, "tests", "data", "ne_speech_a.flac")
    text = tmp_path / "t.txt"
    text.write_text("नमस्ते", encoding="utf-8")
    extra = {"transcribe": [audio], "align": [audio, text], "export-hf": [tmp_path / "out"],
             "export-onnx": [tmp_path / "out"], "serve": ["--port", "0"]}[command[0]]
    with pytest.raises(SystemExit, match=r"key 'pwn' runs !apply:os.system.*--trust-remote-code"):
        cli(*command, folder, *extra, "--savedir", tmp_path / "s")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_evaluation_script_refuses_and_runs_nothing(tmp_path):
    import evaluate

    folder, marker = malicious_folder(tmp_path, "nested")
    spec = "openslr43:" + os.path.join(ROOT, "tests", "data", "test_sets", "openslr43")
    with pytest.raises(SystemExit, match=r"key 'deep.list\[1\].inner' runs !apply:os.system.*trust"):
        evaluate.main([folder, "--test_set", spec, "--output_folder", str(tmp_path / "out")])
    assert not marker.exists()


def test_scoring_script_refuses_and_runs_nothing(tmp_path, sample_corpus):
    import score_transcripts

    folder, marker = malicious_folder(tmp_path, "popen")
    with pytest.raises(SystemExit, match=r"key 'pwn' runs !new:subprocess.Popen"):
        score_transcripts.main([folder, os.path.join(sample_corpus.save_folder, "test.csv"),
                                "--output", str(tmp_path / "scores.csv")])
    assert not marker.exists() and not (tmp_path / "scores.csv").exists()


def test_trust_remote_code_opens_it_with_a_warning(tmp_path, caplog):
    """The opt-in loads a folder naming foreign code (here harmless) and warns, naming it."""
    folder = tmp_path / "trusted"
    shutil.copytree(MODEL, folder)
    original = (folder / "hyperparams.yaml").read_text(encoding="utf-8")
    (folder / "hyperparams.yaml").write_text("extra: !new:collections.OrderedDict\n" + original, encoding="utf-8")
    with pytest.raises(UnsafeFolderError, match="collections.OrderedDict"):
        load_asr(str(folder), str(tmp_path / "a"))
    with caplog.at_level("WARNING"):
        asr = load_asr(str(folder), str(tmp_path / "b"), trust_remote_code=True)
    assert "trust_remote_code" in caplog.text and "!new:collections.OrderedDict (extra)" in caplog.text
    assert type(asr.hparams.extra).__name__ == "OrderedDict"


def test_a_hub_repository_is_checked_before_anything_runs(tmp_path):
    """A hub id (served from a pre-populated cache, offline) is fetched and
    checked like a folder: the attack is refused, a clean repository loads."""
    hub = tmp_path / "hub"
    for name, attack in (("bad", "apply"), ("good", None)):
        snapshot = hub / f"models--org--{name}" / "snapshots" / ("0" * 40)
        if attack:
            folder, _ = malicious_folder(tmp_path, attack)
            shutil.copytree(folder, snapshot)
        else:
            shutil.copytree(MODEL, snapshot)
        (hub / f"models--org--{name}" / "refs").mkdir()
        (hub / f"models--org--{name}" / "refs" / "main").write_text("0" * 40)
    marker = tmp_path / "pwned_apply"
    code = ("import sys\n"
            "from speechbrain_w2vbert.inference.folder import load_asr\n"
            "from speechbrain_w2vbert.inference.safety import UnsafeFolderError\n"
            "try:\n"
            f"    load_asr('org/bad', {str(tmp_path / 'save_bad')!r})\n"
            "except UnsafeFolderError as error:\n"
            "    print('refused:', error)\n"
            f"asr = load_asr('org/good', {str(tmp_path / 'save_good')!r})\n"
            f"print('good:', asr.transcribe_file({os.path.join(ROOT, 'tests', 'data', 'ne_speech_a.flac')!r}))\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub), HF_HOME=str(tmp_path / "home"), PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused:" in done.stdout and "key 'pwn' runs !apply:os.system" in done.stdout
    assert "good: " in done.stdout and not marker.exists()


def test_files_are_verified_against_the_manifest(tmp_path, asr):
    from speechbrain_w2vbert.inference.folder import asr_model, export_inference_folder

    model = asr_model(asr)
    folder = tmp_path / "model"
    export_inference_folder(str(folder), model.encoder, model.head, asr.tokenizer)
    assert (folder / MANIFEST).is_file()
    size = (folder / "encoder.ckpt").stat().st_size
    with open(folder / "encoder.ckpt", "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(ManifestError, match=r"encoder.ckpt: \d+ bytes where the export wrote \d+ .*re-download or "
                                            r"re-export"):
        load_asr(str(folder), str(tmp_path / "a"))
    status = subprocess.run([sys.executable, "-m", "speechbrain_w2vbert.cli", "transcribe", str(folder),
                             os.path.join(ROOT, "tests", "data", "ne_speech_a.flac")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert status.returncode == 1 and "encoder.ckpt" in status.stderr and "re-export" in status.stderr
    assert "Traceback" not in status.stderr
    shutil.copyfile(os.path.join(MODEL, "ctc_head.ckpt"), folder / "encoder.ckpt")  # swapped: same name, other file
    with pytest.raises(ManifestError, match="encoder.ckpt"):
        load_asr(str(folder), str(tmp_path / "b"))


def test_a_folder_without_manifest_loads_with_a_note(tmp_path, caplog):
    with caplog.at_level("INFO"):
        load_asr(MODEL, str(tmp_path / "a"))
    assert "no manifest.json (written before 0.2.0)" in caplog.text


def test_a_truncated_checkpoint_without_manifest_is_one_clear_error(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(MODEL, folder)
    with open(folder / "encoder.ckpt", "r+b") as f:
        f.truncate((folder / "encoder.ckpt").stat().st_size // 2)
    with pytest.raises(ModelFolderError, match=r"encoder.ckpt: not a checkpoint of plain tensors .*re-download or "
                                               r"re-export"):
        load_asr(str(folder), str(tmp_path / "a"))


class _Payload:
    """Unpickling it would create a file: the classic ``__reduce__`` attack."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_payload_in_a_checkpoint_is_refused(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(MODEL, folder)
    marker = tmp_path / "pwned_pickle"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, folder / "ctc_head.ckpt")
    with pytest.raises(ModelFolderError, match="ctc_head.ckpt: not a checkpoint of plain tensors"):
        load_asr(str(folder), str(tmp_path / "a"))
    assert not marker.exists()
