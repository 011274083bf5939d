"""Inference and Hugging Face interop: EncoderASR folders (local and
hub-style), export to transformers (``pipeline`` gives the same transcripts),
import of a transformers CTC checkpoint (our pipeline gives its transcripts),
also through the recipe's ``init_from_hf``.

The model is ``tests/data/tiny_ne_model``: the demo's 2M-parameter model
trained on the bundled sample corpus (about 18% test CER), so transcripts
are real words, not noise. The test files are the sample corpus' test
speaker (never seen in training).
"""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from tests.helpers import MODEL, RECIPE_DIR, ROOT, THREADS, TINY_HPARAMS

@pytest.fixture(scope="module")
def hf_folder(asr, tmp_path_factory):
    """The test model exported by ``w2vbert-asr export-hf``."""
    from speechbrain_w2vbert.cli import main

    folder = str(tmp_path_factory.mktemp("hf") / "model")
    assert main(["export-hf", MODEL, folder, "--savedir", str(tmp_path_factory.mktemp("export_cache"))]) == 0
    return folder


def test_fixture_model_transcribes_words(asr, test_files):
    """Guard: the committed model is a trained one, and a folder written by
    0.1.0 (``W2VBertCTC``, ``w2v_bert:``) loads as an ``EncoderCTC``."""
    from speechbrain_w2vbert.models.ctc import EncoderCTC

    assert type(asr.mods.encoder) is EncoderCTC
    from speechbrain.utils.edit_distance import wer_details_for_batch

    hyps = [list(asr.transcribe_file(r["wav"])) for r in test_files]
    details = wer_details_for_batch([r["ID"] for r in test_files], [list(r["wrd"]) for r in test_files], hyps)
    cer = sum(d["num_edits"] for d in details) / sum(d["num_ref_tokens"] for d in details)
    assert cer < 0.35, cer


@pytest.mark.slow
@pytest.mark.extended
def test_hub_style_repo_offline(asr, test_files, tmp_path):
    """``from_hparams(source="org/name")`` served from a pre-populated Hugging
    Face cache with HF_HUB_OFFLINE=1 (SpeechBrain's own hub fetch)."""
    snapshot = tmp_path / "hub" / "models--test-org--tiny-ne" / "snapshots" / ("0" * 40)
    shutil.copytree(MODEL, snapshot)
    (tmp_path / "hub" / "models--test-org--tiny-ne" / "refs").mkdir()
    (tmp_path / "hub" / "models--test-org--tiny-ne" / "refs" / "main").write_text("0" * 40)
    code = (
        "import sys\n"
        "from speechbrain.inference.ASR import EncoderASR\n"
        f"asr = EncoderASR.from_hparams(source='test-org/tiny-ne', savedir={str(tmp_path / 'save')!r})\n"
        "print('\\n'.join(asr.transcribe_file(p) for p in sys.argv[1:]))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"), HF_HOME=str(tmp_path / "home"),
               PYTHONPATH=ROOT, OMP_NUM_THREADS=str(THREADS))
    paths = [r["wav"] for r in test_files[:3]]
    proc = subprocess.run([sys.executable, "-c", code, *paths], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [asr.transcribe_file(p) for p in paths]


def test_batched_equals_one_by_one(asr, test_files):
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    transcriber = Transcriber(asr, batch_size=4)
    wavs = [transcriber.read(r["wav"]) for r in test_files]
    assert len({w.shape[0] for w in wavs}) == len(wavs)  # real padding in every batch
    batched = [r.text for r in transcriber.transcribe_waveforms(wavs)]
    assert batched == [asr.transcribe_file(r["wav"]) for r in test_files]


def test_model_card_of_the_recipe(asr, tmp_path, sample_corpus):
    from model_card import write_recipe_model_card

    prep = sample_corpus.save_folder
    hparams = {"data_folder": "recipes/OpenSLR54/sample_data", "split": "speaker", "split_ratio": [90, 5, 5],
               "train_csv": os.path.join(prep, "train.csv"), "dev_csv": os.path.join(prep, "dev.csv"),
               "test_csv": os.path.join(prep, "test.csv"), "init_from_hf": None, "encoder_pretrained": False,
               "tokenizer_type": "char", "number_of_epochs": 25, "inference_folder": str(tmp_path)}
    card = open(write_recipe_model_card(hparams, asr.mods.encoder.encoder, {"WER": 48.24, "CER": 17.62},
                                        ["train.py", "x.yaml"]), encoding="utf-8").read()
    for text in ("# w2v-BERT 2.0 CTC speech recognition", "w2v-BERT 2.0 encoder (W2VBert)", "greedy decoding",
                 "| test | 19 utterances, 0.8 min", "| test WER (greedy) | 48.24% |", "train.py x.yaml",
                 "speaker [90, 5, 5]", "EncoderASR.from_hparams"):
        assert text in card, text
    assert "beam + LM" not in card
    lm = {"WER": 20.0, "CER": 9.91, "lm_weight": 0.5, "word_bonus": 1.0, "beam_size": 50, "order": 3}
    card = open(write_recipe_model_card(hparams, asr.mods.encoder.encoder, {"WER": 48.24, "CER": 17.62},
                                        ["train.py", "x.yaml"], lm), encoding="utf-8").read()
    for text in ("| test WER (greedy) | 48.24% |", "| test WER (beam + LM) | 20.00% |", "| test CER (beam + LM) | 9.91% |",
                 "beam search (50 beams) with a 3-gram word LM", "weight 0.5, word bonus 1.0", '"use_lm": False'):
        assert text in card, text


def test_hf_pipeline_gives_the_same_transcripts_and_logits(asr, hf_folder, test_files):
    import transformers

    from speechbrain_w2vbert.audio import read_audio

    assert json.load(open(os.path.join(hf_folder, "config.json")))["architectures"] == ["Wav2Vec2BertForCTC"]
    processor = transformers.AutoProcessor.from_pretrained(hf_folder)
    assert type(processor).__name__ == "Wav2Vec2BertProcessor"
    assert type(processor.feature_extractor).__name__ == "SeamlessM4TFeatureExtractor"
    pipe = transformers.pipeline("automatic-speech-recognition", model=hf_folder, device="cpu")
    hf = pipe.model.eval()
    ours = asr.mods.encoder
    for row in test_files:
        wav = read_audio(row["wav"])
        assert pipe(wav.numpy())["text"] == asr.transcribe_file(row["wav"]), row["ID"]
        with torch.no_grad():
            # the same network: identical outputs on identical features
            feats, _ = ours.encoder.frontend(wav[None])
            ours_logits = ours.head(ours.encoder.model(feats).last_hidden_state)
            torch.testing.assert_close(hf(input_features=feats).logits, ours_logits, atol=1e-4, rtol=0)
            # end to end, each with its own feature extractor (W2VBert in eval
            # mode computes its features in fp64: ~3e-6 from transformers' numpy)
            inputs = processor(audio=wav.numpy(), sampling_rate=16000, return_tensors="pt")
            assert not ours.encoder.training
            end_to_end = ours.head(ours.encoder(wav[None]))
            theirs = hf(**inputs).logits[0, : end_to_end.shape[1]]
            torch.testing.assert_close(theirs, end_to_end[0], atol=1e-4, rtol=0)


def _reorder_hf_vocab(src, dst, order, rename):
    """A copy of an HF CTC folder whose label ids are permuted (``order[new] =
    old``) and special tokens renamed: as community checkpoints often are."""
    from transformers import AutoModelForCTC, SeamlessM4TFeatureExtractor, Wav2Vec2BertProcessor, Wav2Vec2CTCTokenizer

    model = AutoModelForCTC.from_pretrained(src)
    with torch.no_grad():
        model.lm_head.weight.copy_(model.lm_head.weight[order].clone())
        model.lm_head.bias.copy_(model.lm_head.bias[order].clone())
    tokens = [t for t, _ in sorted(json.load(open(os.path.join(src, "vocab.json"))).items(), key=lambda kv: kv[1])]
    vocab = {rename.get(tokens[old], tokens[old]): new for new, old in enumerate(order)}
    model.config.pad_token_id = vocab["<pad>"]
    model.save_pretrained(dst)
    with open(os.path.join(dst, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    tokenizer = Wav2Vec2CTCTokenizer(os.path.join(dst, "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                     word_delimiter_token="|")
    Wav2Vec2BertProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=tokenizer).save_pretrained(dst)


def test_import_from_hf_gives_the_checkpoint_transcripts(asr, hf_folder, test_files, tmp_path):
    """A checkpoint whose blank is the last id, named <pad>/<unk>: imported,
    our pipeline gives HF's own greedy transcripts."""
    import transformers

    from speechbrain_w2vbert.models.ctc import EncoderCTC
    from speechbrain_w2vbert.hf import from_hf_ctc
    from speechbrain_w2vbert.audio import read_audio

    vocab_size = asr.tokenizer.vocab_size
    order = list(range(1, vocab_size))[::-1] + [0]  # blank last, the rest reversed
    community = str(tmp_path / "community")
    _reorder_hf_vocab(hf_folder, community, order, {"[PAD]": "<pad>", "[UNK]": "<unk>"})
    pipe = transformers.pipeline("automatic-speech-recognition", model=community, device="cpu")

    encoder, head, tokenizer = from_hf_ctc(community)
    assert tokenizer.vocab["[PAD]"] == 0 and tokenizer.vocab_size == vocab_size
    model = EncoderCTC(encoder, head).eval()
    for row in test_files[:4]:
        wav = read_audio(row["wav"])
        with torch.no_grad():
            ids = model(wav[None])[0].argmax(-1)
        assert tokenizer.decode_ctc(ids) == pipe(wav.numpy())["text"] == asr.transcribe_file(row["wav"])


@pytest.mark.recipe
def test_recipe_evaluates_an_imported_checkpoint(hf_folder, test_files, asr, tmp_path):
    """``--init_from_hf=<folder> --number_of_epochs=0``: the recipe's test WER
    and CER are those of EncoderASR's transcripts."""
    from speechbrain.utils.metric_stats import ErrorRateStats

    from speechbrain_w2vbert.training.plot import read_train_log
    from speechbrain_w2vbert.text.normalize import normalize_nepali

    test_csv = str(tmp_path / "test.csv")
    with open(test_csv, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(test_files[0]))
        writer.writeheader()
        writer.writerows(test_files[:4])
    output = str(tmp_path / "exp")
    args = [TINY_HPARAMS, "--data_folder=unused", "--skip_prep=True",
            f"--train_csv={test_csv}", f"--dev_csv={test_csv}", f"--test_csv={test_csv}",
            f"--output_folder={output}", f"--init_from_hf={hf_folder}", "--number_of_epochs=0",
            "--hf_export=False", "--noprogressbar"]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS=str(THREADS))
    proc = subprocess.run([sys.executable, os.path.join(RECIPE_DIR, "train.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    tests = [r for r in read_train_log(os.path.join(output, "train_log.txt")) if "test CER" in r]
    assert [r.get("decoding", "greedy") for r in tests] == ["greedy", "LM"]  # imported checkpoints get the LM step too
    stats = tests[0]
    wer, cer = ErrorRateStats(), ErrorRateStats(split_tokens=True)
    for row in test_files[:4]:
        hyp, ref = normalize_nepali(asr.transcribe_file(row["wav"])).split(), normalize_nepali(row["wrd"]).split()
        wer.append([row["ID"]], [hyp], [ref])
        cer.append([row["ID"]], [hyp], [ref])
    assert stats["test WER"] == pytest.approx(wer.summarize("error_rate"), abs=0.01)
    assert stats["test CER"] == pytest.approx(cer.summarize("error_rate"), abs=0.01)
    card = open(os.path.join(output, "inference", "README.md"), encoding="utf-8").read()
    # the command as typed, the machine's path of the imported folder hidden
    assert "--init_from_hf=<init_from_hf>" in card and "--number_of_epochs=0" in card and hf_folder not in card


def test_raw_waveform_encoder_exports_too(tmp_path, test_files):
    """The export is generic: a wav2vec 2.0 lobe goes to an
    EncoderASR folder under its own class and to ``Wav2Vec2ForCTC`` +
    ``Wav2Vec2Processor`` with the same greedy transcripts."""
    wav2vec2 = pytest.importorskip("speechbrain_w2vbert.models.wav2vec2")
    import transformers
    from speechbrain.inference.ASR import EncoderASR

    from speechbrain_w2vbert.inference.folder import export_inference_folder
    from speechbrain_w2vbert.hf import save_hf_folder
    from speechbrain_w2vbert.text.tokenizer import CharTokenizer
    from speechbrain_w2vbert.audio import read_audio

    torch.manual_seed(0)
    config = os.path.join(ROOT, "speechbrain_w2vbert", "configs", "wav2vec2_tiny_layer")
    encoder = wav2vec2.Wav2Vec2Encoder(config, pretrained=False).eval()
    tokenizer = CharTokenizer.build(r["wrd"] for r in test_files)
    head = torch.nn.Linear(encoder.model.config.hidden_size, tokenizer.vocab_size)
    export_inference_folder(str(tmp_path / "sb"), encoder, head, tokenizer)
    assert "!new:speechbrain_w2vbert.models.wav2vec2.Wav2Vec2Encoder" in open(tmp_path / "sb" / "hyperparams.yaml").read()
    asr = EncoderASR.from_hparams(source=str(tmp_path / "sb"), savedir=str(tmp_path / "cache"))
    save_hf_folder(str(tmp_path / "hf"), encoder, head, tokenizer)
    pipe = transformers.pipeline("automatic-speech-recognition", model=str(tmp_path / "hf"), device="cpu")
    assert type(pipe.model).__name__ == "Wav2Vec2ForCTC"
    assert type(pipe.feature_extractor).__name__ == "Wav2Vec2FeatureExtractor"
    for row in test_files[:3]:
        wav = read_audio(row["wav"])
        with torch.no_grad():
            ours = asr.encode_batch(wav[None], torch.ones(1))[0]
            inputs = pipe.feature_extractor(wav.numpy(), sampling_rate=16000, return_tensors="pt")
            theirs = pipe.model(**inputs).logits[0].log_softmax(-1)
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
        assert pipe(wav.numpy())["text"] == asr.transcribe_file(row["wav"])
