"""The model card (``README.md``) of the recipe's inference folder.

Authors: speechbrain-w2vbert contributors
"""

import csv
import os
import re
import shlex

from speechbrain_w2vbert.inference.folder import write_model_card
from speechbrain_w2vbert.models.encoder import unwrap

__all__ = ["write_recipe_model_card", "shareable_path", "shareable_command"]

#: The repository's root (paths inside it are written relative to it).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Readable names of the encoders' transformers ``model_type``.
ENCODER_NAMES = {"wav2vec2-bert": "w2v-BERT 2.0", "wav2vec2": "wav2vec 2.0", "hubert": "HuBERT"}


def _csv_summary(path):
    """``N utterances, H h`` of a prepared CSV (``n/a`` if there is none)."""
    if not os.path.isfile(path):
        return "n/a"
    with open(path, encoding="utf-8", newline="") as f:
        seconds = [float(row["duration"]) for row in csv.DictReader(f)]
    amount = f"{sum(seconds) / 3600:.1f} h" if sum(seconds) >= 3600 else f"{sum(seconds) / 60:.1f} min"
    return f"{len(seconds)} utterances, {amount}"


def shareable_path(path: str, placeholder: str) -> str:
    """A path as a published model card may show it: relative to the
    repository when inside it, else ``placeholder`` (never the machine's
    directory or account names).

    Example
    -------
    >>> shareable_path(os.path.join(ROOT, "hparams", "w2vbert_ctc.yaml"), "<hparams>")
    'hparams/w2vbert_ctc.yaml'
    >>> shareable_path("/home/alice/corpora/openslr54", "<data_folder>")
    '<data_folder>'
    >>> shareable_path("results/demo", "<output_folder>")
    'results/demo'
    """
    if not os.path.isabs(path):
        return path
    relative = os.path.relpath(path, ROOT)
    return placeholder if relative == ".." or relative.startswith(".." + os.sep) else relative


def shareable_command(command) -> str:
    """The training command as the user would type it again from the
    repository's root, with :func:`shareable_path` of every path in it
    (``--key=/abs/path`` becomes ``--key=<key>`` outside the repository;
    paths inside a value, as in ``--extra_test_sets=[fleurs: fleurs:/abs/path]``
    or a YAML list, become ``<path>``).

    Example
    -------
    >>> shareable_command([os.path.join(ROOT, "recipes/OpenSLR54/train.py"), "hparams/w2vbert_ctc.yaml",
    ...                    "--data_folder=/home/alice/openslr54", "--precision=bf16"])
    'python recipes/OpenSLR54/train.py hparams/w2vbert_ctc.yaml --data_folder=<data_folder> --precision=bf16'
    >>> shareable_command(["train.py", "--extra_test_sets=[cv: cv:/home/alice/cv, x: tsv:" + ROOT + "/t.csv?a=b]"])
    "python train.py '--extra_test_sets=[cv: cv:<path>, x: tsv:t.csv?a=b]'"
    """
    words = []
    for index, word in enumerate(command):
        key, equals, value = word.partition("=")
        if word.startswith("--") and equals and not os.path.isabs(value):
            value = re.sub(r"(?<=[:\[ ,])/[^\s,\]?&]*", lambda m: shareable_path(m.group(0), "<path>"), value)
            word = f"{key}={value}"
        elif word.startswith("--") and equals:
            word = f"{key}={shareable_path(value, '<' + key.lstrip('-') + '>')}"
        elif os.path.isabs(word):
            word = shareable_path(word, "<hparams_file>" if index == 1 else "<path>")
        words.append(word)
    return "python " + " ".join(shlex.quote(w) if not (w.startswith("<") or "=<" in w) else w for w in words)


def write_recipe_model_card(hparams, encoder, test_stats, command, lm_stats=None, test_sets=None):
    """The inference folder's ``README.md``: the encoder (named by its
    ``model_type``), data, split, test metrics (greedy and with the LM),
    the results table of every test set, initialisation and the command
    that trained it.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.
    encoder : speechbrain_w2vbert.models.encoder.SpeechEncoder
        The trained encoder lobe.
    test_stats : dict, optional
        ``{"WER", "CER", ...}`` of the test set.
    command : list of str
        The training command line.
    lm_stats : dict, optional
        ``{"WER", "CER", "lm_weight", "word_bonus", "beam_size", "order"}``
        of LM decoding of the test set (None: no LM).
    test_sets : str, optional
        The results table (markdown, ``evaluation.recipe_test_results``):
        the test split and the extra test sets, with the scoring rule.

    Returns
    -------
    str
        The path of the model card.
    """
    encoder = unwrap(encoder)
    name = ENCODER_NAMES.get(encoder.model_type, encoder.model_type)
    data = {"data folder": f"`{shareable_path(hparams['data_folder'], '<data_folder>')}`",
            "split": f"{hparams['split']} {hparams['split_ratio']} (train/dev/test %)"}
    data.update({split: _csv_summary(hparams[f"{split}_csv"]) for split in ("train", "dev", "test")})
    results = {"test WER (greedy)": "n/a", "test CER (greedy)": "n/a"}
    if test_stats:
        results = {"test WER (greedy)": f"{test_stats['WER']:.2f}%", "test CER (greedy)": f"{test_stats['CER']:.2f}%"}
    decoding = "greedy decoding"
    if lm_stats:
        results.update({"test WER (beam + LM)": f"{lm_stats['WER']:.2f}%",
                        "test CER (beam + LM)": f"{lm_stats['CER']:.2f}%"})
        decoding = (f"beam search ({lm_stats['beam_size']} beams) with a {lm_stats['order']}-gram word LM of the "
                    f"training transcripts (weight {lm_stats['lm_weight']}, word bonus {lm_stats['word_bonus']}, "
                    "tuned on dev; `overrides={\"use_lm\": False}` decodes greedily)")
    source = shareable_path(hparams["init_from_hf"] or encoder.source, "<local model folder>")
    init = source if hparams["init_from_hf"] else f"{source} (pretrained: {hparams['encoder_pretrained']})"
    sections = {
        "Model": f"{name} encoder ({type(encoder).__name__}) + linear CTC head, {decoding}, "
                 f"{hparams['tokenizer_type']} tokenizer. Initialised from {init}; {hparams['number_of_epochs']} epochs.",
        "Data": data,
        "Results (best dev checkpoint)": results,
        **({"Test sets (best dev checkpoint)": test_sets} if test_sets else {}),
        "Command": f"```\n{shareable_command(command)}\n```",
        "Use": "```python\nfrom speechbrain_w2vbert.inference.folder import load_asr\n"
               "asr = load_asr(\"<this folder>\", savedir=\"pretrained\")  # checks the folder, then EncoderASR\n"
               "asr.transcribe_file(\"utterance.flac\")\n```\n\nor `w2vbert-asr transcribe <this folder> FILE...`; "
               "`EncoderASR.from_hparams(source=\"<this folder>\")` loads it too (it runs what hyperparams.yaml "
               "names: open only folders you trust that way).",
    }
    return write_model_card(hparams["inference_folder"], f"{name} CTC speech recognition (OpenSLR 54 recipe)",
                            sections)
