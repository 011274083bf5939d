"""The model card (``README.md``) of the recipe's inference folder.

Authors: speechbrain-w2vbert contributors
"""

import csv
import os
import shlex

from speechbrain_w2vbert.export import write_model_card

__all__ = ["write_recipe_model_card"]

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


def write_recipe_model_card(hparams, encoder, test_stats, command, lm_stats=None):
    """The inference folder's ``README.md``: the encoder (named by its
    ``model_type``), data, split, test metrics (greedy and with the LM),
    initialisation and the command that trained it.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.
    encoder : speechbrain_w2vbert.encoder.SpeechEncoder
        The trained encoder lobe.
    test_stats : dict, optional
        ``{"WER", "CER", ...}`` of the test set.
    command : list of str
        The training command line.
    lm_stats : dict, optional
        ``{"WER", "CER", "lm_weight", "word_bonus", "beam_size", "order"}``
        of LM decoding of the test set (None: no LM).

    Returns
    -------
    str
        The path of the model card.
    """
    encoder = getattr(encoder, "module", encoder)  # a DDP wrapper's module
    name = ENCODER_NAMES.get(encoder.model_type, encoder.model_type)
    data = {"data folder": f"`{hparams['data_folder']}`",
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
    init = hparams["init_from_hf"] or f"{encoder.source} (pretrained: {hparams['encoder_pretrained']})"
    sections = {
        "Model": f"{name} encoder ({type(encoder).__name__}) + linear CTC head, {decoding}, "
                 f"{hparams['tokenizer_type']} tokenizer. Initialised from {init}; {hparams['number_of_epochs']} epochs.",
        "Data": data,
        "Results (best dev checkpoint)": results,
        "Command": "```\npython " + " ".join(shlex.quote(c) for c in command) + "\n```",
        "Use": "```python\nfrom speechbrain.inference.ASR import EncoderASR\n"
               "asr = EncoderASR.from_hparams(source=\"<this folder>\", savedir=\"pretrained\")\n"
               "asr.transcribe_file(\"utterance.flac\")\n```\n\nor `w2vbert-asr transcribe <this folder> FILE...`",
    }
    return write_model_card(hparams["inference_folder"], f"{name} CTC speech recognition (OpenSLR 54 recipe)",
                            sections)
