#!/usr/bin/env python3
"""Recipe: fine-tune w2v-BERT 2.0 with a CTC head on OpenSLR 54 (Nepali).

Waveforms are encoded by w2v-BERT 2.0 (SeamlessM4T filterbanks computed on
the training device) or by an encoder of the wav2vec 2.0 family, passed
through dropout and one linear layer (the layout of
``transformers.Wav2Vec2BertForCTC``; ``speechbrain_w2vbert.models.ctc.EncoderCTC``,
the same model the exported ``EncoderASR`` folder runs) and trained with CTC
over characters. Dev WER/CER are computed every epoch with greedy decoding; the
test set is decoded with the best checkpoint, greedily and (``lm_decoding``)
by beam search with a word n-gram LM estimated from the training transcripts,
its weight and word bonus tuned on a dev subset. The experiment ends with an
``EncoderASR`` inference folder (which decodes with the LM), a Hugging Face
folder and a plot of the training curves.

To run it::

    python recipes/OpenSLR54/train.py hparams/w2vbert_ctc.yaml --data_folder=/path/to/openslr54
    torchrun --nproc_per_node=4 recipes/OpenSLR54/train.py hparams/w2vbert_ctc.yaml --data_folder=...
    python recipes/OpenSLR54/train.py hparams/w2vbert_ctc_tiny.yaml \\
        --data_folder=recipes/OpenSLR54/sample_data --extract_folder=results/sample_corpus  # CPU

Resuming: run the same command again; training continues from the latest
checkpoint that loads, mid-epoch included, with the same data order, step
count and learning rate as an uninterrupted run. SIGTERM or SIGUSR1 stops
training after the update in progress with a checkpoint (exit status 75);
docs/training.md lists the exit statuses and gives a SLURM script.

Authors: speechbrain-w2vbert contributors
"""

import logging
import os
import random
import sys

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.sampler import DynamicBatchSampler
from speechbrain.utils.distributed import if_main_process, run_on_main

from speechbrain_w2vbert.hf import from_hf_ctc, save_hf_folder
from speechbrain_w2vbert.inference.folder import export_inference_folder
from speechbrain_w2vbert.lm.beam import LMBeamDecoder, tune_lm_weights
from speechbrain_w2vbert.lm.ngram import LMError, NgramLM
from speechbrain_w2vbert.models.ctc import EncoderCTC, ctc_loss, greedy_decode
from speechbrain_w2vbert.models.lengths import absolute_lengths
from speechbrain_w2vbert.text.scoring import stats_figures, write_alignments
from speechbrain_w2vbert.text.tokenizer import build_tokenizer
from speechbrain_w2vbert.training.data import AudioReader
from speechbrain_w2vbert.training.plot import plot_training_curves
from speechbrain_w2vbert.training.preemption import PreemptibleBrain
from speechbrain_w2vbert.training.steps import grads_are_finite, seed_step
from speechbrain_w2vbert.training.stops import exit_status_of

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluation import decode_and_score, prepare_extra_test_sets, recipe_test_results  # noqa: E402
from model_card import write_recipe_model_card  # noqa: E402
from openslr54_prepare import prepare_openslr54  # noqa: E402

logger = logging.getLogger(__name__)


class ASR(PreemptibleBrain):
    """w2v-BERT 2.0 + CTC ``Brain``.

    Beyond ``sb.Brain`` it has two optimisers (encoder and head) with their
    own learning-rate schedules, an optional head-only warm-up (the encoder
    is neither run with gradients nor stepped for ``freeze_encoder_steps``
    updates), per-step RNG seeding for exact resumption, skipping of updates
    with non-finite gradients and a watch for a collapse to blanks; as a
    ``PreemptibleBrain``, a checkpoint and a clean stop on SIGTERM/SIGUSR1
    and dev evaluation every ``valid_interval_steps`` updates.

    Arguments
    ---------
    tokenizer : CharTokenizer or SentencePieceCTCTokenizer
        Decodes label ids for WER/CER.
    *args, **kwargs
        As for ``PreemptibleBrain``.
    """

    def __init__(self, *args, tokenizer, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokenizer = tokenizer
        self.updates_per_epoch = None
        self.train_stats = None
        self._asr_model = None
        self.kept_log_probs = None  # id -> (log-probs [T, V], reference) while a stage keeps them
        self.lm_decoder = self.lm_stats = None  # set by decode_test_with_lm

    @property
    def asr_model(self):
        """The encoder, dropout and head as one ``EncoderCTC``, around the
        modules as the Brain holds them (DDP-wrapped once fit starts)."""
        if self._asr_model is None or self._asr_model.encoder is not self.modules.encoder:
            self._asr_model = EncoderCTC(self.modules.encoder, self.modules.ctc_head, self.tokenizer.blank_index,
                                         self.hparams.final_dropout)
        return self._asr_model

    # ------------------------------------------------------------ forward
    @property
    def encoder_frozen(self):
        """True during the head-only warm-up."""
        return self.optimizer_step < self.hparams.freeze_encoder_steps

    def compute_forward(self, batch, stage):
        """Waveforms -> blank-masked fp32 CTC log-probabilities [B, T, V] and
        their relative lengths (``EncoderCTC``, as inference runs it)."""
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        training = stage == sb.Stage.TRAIN
        model = self.asr_model.train(training)
        return model(wavs, wav_lens, return_lengths=True, freeze_encoder=training and self.encoder_frozen)

    def compute_objectives(self, predictions, batch, stage):
        """CTC loss; infeasible and unreadable utterances are left out and
        counted; dev/test hypotheses are scored."""
        log_probs, out_lens = predictions
        tokens, token_lens = batch.tokens
        readable = torch.as_tensor(batch.readable, device=log_probs.device).bool()
        loss, infeasible = ctc_loss(log_probs, out_lens, tokens, token_lens, weights=readable)
        infeasible &= readable
        if stage == sb.Stage.TRAIN:
            self._count("unreadable", [i for i, ok in zip(batch.id, readable.tolist()) if not ok])
            self._count("ctc_infeasible", [i for i, bad in zip(batch.id, infeasible.tolist()) if bad])
        else:
            hyps = [self.hparams.scoring.normalize(self.tokenizer.decode_ids(ids)) for ids in greedy_decode(log_probs)]
            if stage == sb.Stage.VALID:
                self.hparams.collapse_monitor.observe(hyps)
            refs = [self.hparams.scoring.normalize(text) for text in batch.wrd]
            hyp_words, ref_words = [h.split() for h in hyps], [r.split() for r in refs]
            self.wer_metric.append(batch.id, hyp_words, ref_words)
            self.cer_metric.append(batch.id, hyp_words, ref_words)
            if self.kept_log_probs is not None:  # for LM decoding, once the stage is over
                frames = absolute_lengths(out_lens, log_probs.shape[1]).tolist()
                for uid, lp, n, ref in zip(batch.id, log_probs.float().cpu().numpy(), frames, refs):
                    self.kept_log_probs[uid] = (lp[:n], ref)
        return loss

    def _count(self, name, ids):
        if ids:
            self.hparams.counters.add(name, len(ids))
            logger.warning("%s: %s left out of the loss (%d so far)", name, ", ".join(ids), self.hparams.counters[name])

    # ------------------------------------------------------ optimisation
    def init_optimizers(self):
        """One AdamW for the encoder, one for the head, both checkpointed."""
        self.optimizers_dict = {}
        for name, opt_class, module in (
            ("encoder", self.hparams.encoder_opt_class, self.modules.encoder),
            ("head", self.hparams.head_opt_class, self.modules.ctc_head),
        ):
            params = [p for p in module.parameters() if p.requires_grad]
            if params:  # a fully frozen encoder has no optimiser
                self.optimizers_dict[name] = opt_class(params)
                if self.checkpointer is not None:
                    self.checkpointer.add_recoverable(f"{name}_optimizer", self.optimizers_dict[name])

    def freeze_optimizers(self, optimizers):
        """Leaves the encoder's optimiser out during the head-only warm-up."""
        if self.encoder_frozen:
            return {k: v for k, v in optimizers.items() if k != "encoder"}
        return optimizers

    def on_fit_batch_start(self, batch, should_step):
        """Seeds the RNGs for this step and sets the learning rates of the
        coming update (both functions of where training is)."""
        seed_step(self.hparams.seed, self.epoch, self.step, sb.utils.distributed.get_rank() or 0)
        if should_step:
            total = self.updates_per_epoch * self.hparams.epoch_counter.limit
            for name, opt in self.optimizers_dict.items():
                getattr(self.hparams, f"lr_schedule_{name}")(opt, self.optimizer_step, total)

    def optimizers_step(self):
        """Skips (and counts) an update whose gradients are not finite.

        With the fp16 ``GradScaler`` the scaler does this itself. Under DDP
        the gradients are already all-reduced, so every rank skips together.
        """
        if not self.scaler.is_enabled() and not grads_are_finite(self.modules.parameters()):
            self.hparams.counters.add("nonfinite_skipped")
            logger.warning("non-finite gradients at update %d: update skipped", self.optimizer_step)
            self.zero_grad(set_to_none=True)
            return
        super().optimizers_step()

    def on_mid_epoch_valid_end(self):
        """A checkpoint with the scores of dev evaluated inside an epoch."""
        self._save_best(end_of_epoch=False)

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """As ``sb.Brain``'s; also makes ``fit`` call the dynamic batch
        sampler's ``set_epoch`` (so each epoch's order depends only on the
        seed and the epoch), and records the number of updates per epoch."""
        loader = super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)
        if stage == sb.Stage.TRAIN:
            if self.train_sampler is None and hasattr(loader.batch_sampler, "set_epoch"):
                self.train_sampler = loader.batch_sampler
            self.updates_per_epoch = max(1, len(loader) // self.grad_accumulation_factor)
        return loader

    # ------------------------------------------------------------ stages
    def on_stage_start(self, stage, epoch=None):
        """Fresh WER/CER trackers for dev and test."""
        if stage != sb.Stage.TRAIN:
            self.wer_metric = self.hparams.error_rate_computer()
            self.cer_metric = self.hparams.cer_computer()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the stage; on dev, checkpoints by WER and watches for a
        collapse to blanks; on test, writes the alignments."""
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        stats["CER"] = self.cer_metric.summarize("error_rate")
        stats["WER"] = self.wer_metric.summarize("error_rate")
        self.last_stats = stats
        if stage == sb.Stage.VALID:
            meta = {"epoch": epoch, "updates": self.optimizer_step}
            for name in self.optimizers_dict:
                meta[f"lr_{name}"] = getattr(self.hparams, f"lr_schedule_{name}").current_lr or 0.0
            meta.update(self.hparams.counters.as_dict())
            if self.mid_epoch_batch is not None:
                meta["mid-epoch batch"] = self.mid_epoch_batch
                self.hparams.train_logger.log_stats(stats_meta=meta, valid_stats=stats)
            else:
                self.hparams.train_logger.log_stats(stats_meta=meta, train_stats=self.train_stats, valid_stats=stats)
                self._save_best(end_of_epoch=True)
            self.hparams.collapse_monitor.end_evaluation(self.optimizer_step)
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stats
            )
            if if_main_process():
                write_alignments(self.hparams.test_wer_file, self.cer_metric, self.wer_metric)

    # ------------------------------------------------------ LM decoding
    def log_probs_of(self, dataset, **loader_kwargs):
        """Log-probabilities (valid frames, CPU) and normalised references
        of a dataset's utterances under the loaded checkpoint, by id."""
        self.on_stage_start(sb.Stage.TEST)
        self.kept_log_probs = {}
        self.modules.eval()
        with torch.no_grad():
            for step, batch in enumerate(self.make_dataloader(dataset, sb.Stage.TEST, **loader_kwargs)):
                if self.debug and step == self.debug_batches:  # as sb.Brain's own loops
                    break
                self.evaluate_batch(batch, sb.Stage.TEST)
        kept, self.kept_log_probs = self.kept_log_probs, None
        return kept

    def decode_test_with_lm(self, test_kept, tune_kept):
        """Builds (or finds) the word n-gram LM of the training transcripts,
        tunes its weight and word bonus on the dev subset (cached in
        ``lm_tuning_file``), decodes the test set once with them, logs the
        result and writes ``test_lm_wer_file`` (main process)."""
        hparams, tokenizer = self.hparams, self.tokenizer
        lm = NgramLM.build(hparams.train_csv, hparams.lm_folder, tokenizer, hparams.lm_order,
                           hparams.lm_extra_texts, hparams.dev_csv, hparams.lm_estimator)
        report = lm.report
        decoder = LMBeamDecoder(tokenizer.tokens, tokenizer.blank_index, lm.path, hparams.lm_beam_size)
        ids = sorted(tune_kept)
        tuning = tune_lm_weights(decoder, [tune_kept[i][0] for i in ids], [tune_kept[i][1] for i in ids],
                                 hparams.lm_weights, hparams.lm_word_bonuses, hparams.lm_tune_workers,
                                 cache_file=hparams.lm_tuning_file, cache_key=report["fingerprint"])
        logger.info("LM tuning on %d dev utterances: weight %.2f, word bonus %.2f (dev WER %.2f, CER %.2f; "
                    "%d grid points in %.1f s)", tuning["utterances"], tuning["lm_weight"], tuning["word_bonus"],
                    tuning["WER"], tuning["CER"], len(tuning["grid"]), tuning["seconds"])
        wer, cer = decode_and_score(test_kept, decoder.decode, hparams.scoring)
        stats = {"CER": cer.summarize("error_rate"), "WER": wer.summarize("error_rate")}
        hparams.train_logger.log_stats(stats_meta={"Epoch loaded": hparams.epoch_counter.current, "decoding": "LM"},
                                       test_stats=stats)
        write_alignments(hparams.test_lm_wer_file, cer, wer, f"Beam search ({decoder.beam_size} beams) + "
                         f"{report['order']}-gram LM, weight {decoder.lm_weight}, word bonus {decoder.word_bonus}")
        self.lm_decoder = decoder
        self.lm_stats = {**stats_figures(wer, cer), "lm_weight": decoder.lm_weight, "word_bonus": decoder.word_bonus,
                         "beam_size": decoder.beam_size, "order": report["order"]}

    def _save_best(self, end_of_epoch):
        """Saves a checkpoint with the dev scores; keeps the best by WER and
        the latest."""
        meta = {"WER": self.last_stats["WER"], "CER": self.last_stats["CER"]}
        self.checkpointer.save_and_keep_only(
            meta=meta, min_keys=["WER"], num_to_keep=self.hparams.ckpt_keep, end_of_epoch=end_of_epoch
        )


def dataio_prepare(hparams, tokenizer, extra_csvs=None):
    """Datasets from the CSVs, the audio and label pipelines, and the batch
    samplers (dynamic batching by total seconds).

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.
    tokenizer : CharTokenizer or SentencePieceCTCTokenizer
        Encodes the transcripts.
    extra_csvs : dict, optional
        Name -> CSV of each extra test set (decoded as test is).

    Returns
    -------
    datasets : dict
        ``DynamicItemDataset`` per split (train, dev, test, the extra test
        sets; with ``lm_decoding``, lm_tune: ``lm_tune_utterances`` dev utterances).
    samplers : dict
        ``DynamicBatchSampler`` per split (shuffled for train, sorted by
        length for the others).
    """
    csvs = {**{split: hparams[f"{split}_csv"] for split in ("train", "dev", "test")}, **(extra_csvs or {})}
    datasets = {split: sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=path) for split, path in csvs.items()}
    reader = AudioReader(hparams["sample_rate"], hparams["encoder"].min_samples)

    @sb.utils.data_pipeline.takes("wav", "duration")
    @sb.utils.data_pipeline.provides("sig", "readable")
    def audio_pipeline(wav, duration):
        """The waveform, and whether the file could be read (else silence)."""
        sig, readable = reader(wav, duration)
        yield sig
        yield readable

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("tokens")
    def text_pipeline(wrd):
        """The transcript's label ids."""
        return tokenizer.encode_tensor(wrd)

    sb.dataio.dataset.add_dynamic_item(list(datasets.values()), audio_pipeline)
    sb.dataio.dataset.add_dynamic_item(list(datasets.values()), text_pipeline)
    sb.dataio.dataset.set_output_keys(list(datasets.values()), ["id", "sig", "readable", "wrd", "tokens"])

    def duration(item):
        """Batching length: the duration in seconds."""
        return item["duration"]

    if hparams["lm_decoding"]:  # the dev subset the LM weight and word bonus are tuned on (seeded)
        dev_ids = list(datasets["dev"].data_ids)
        random.Random(hparams["seed"]).shuffle(dev_ids)
        datasets["lm_tune"] = sb.dataio.dataset.FilteredSortedDynamicItemDataset(
            datasets["dev"], sorted(dev_ids[: hparams["lm_tune_utterances"]]))
    samplers = {"train": DynamicBatchSampler(datasets["train"], length_func=duration, **hparams["train_batching"])}
    for split in datasets.keys() - {"train"}:
        samplers[split] = DynamicBatchSampler(datasets[split], length_func=duration, **hparams["eval_batching"])
    return datasets, samplers


def main(argv=None):
    """Runs the whole experiment (see the module docstring)."""
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.utils.distributed.ddp_init_group(run_opts)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = hparams["tf32"]
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides
    )
    encoder = hparams["encoder"]
    tokenizer = hf_head = None
    if hparams["init_from_hf"]:  # a transformers CTC checkpoint: its weights and its vocabulary
        if hparams["tokenizer_type"] != "char":
            raise ValueError("init_from_hf brings its character vocabulary: set tokenizer_type: char")
        _, hf_head, tokenizer = from_hf_ctc(hparams["init_from_hf"], encoder, hparams["encoder_cache"])

    run_on_main(
        prepare_openslr54,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["output_folder"],
            "download": hparams["download"],
            "extract_folder": hparams["extract_folder"],
            "split": hparams["split"],
            "split_ratio": hparams["split_ratio"],
            "seed": hparams["seed"],
            "min_duration": hparams["min_duration"],
            "max_duration": hparams["max_duration"],
            "exclude_list": hparams["exclude_list"],
            "frames_per_second": encoder.frame_rate,  # the CTC-feasibility filter
            "tokenizer": tokenizer,  # its labels, when known before the data; else characters
            "skip_prep": hparams["skip_prep"],
        },
    )
    extra_sets = prepare_extra_test_sets(hparams["extra_test_sets"], hparams["test_sets_folder"],  # before training:
                                         encoder.min_samples / hparams["sample_rate"])  # a wrong path stops it now
    if tokenizer is not None:
        run_on_main(tokenizer.save, args=[hparams["tokenizer_folder"]])
    else:
        tokenizer_kwargs = {
            "tokenizer_type": hparams["tokenizer_type"],
            "save_folder": hparams["tokenizer_folder"],
            "train_csv": hparams["train_csv"],
            "min_count": hparams["tokenizer_min_count"],
            "vocab_size": hparams["tokenizer_vocab_size"],
        }
        run_on_main(build_tokenizer, kwargs=tokenizer_kwargs)  # built once, on the main process
        tokenizer = build_tokenizer(**tokenizer_kwargs)  # then loaded everywhere
    datasets, samplers = dataio_prepare(hparams, tokenizer, {name: report["csv"] for name, report in extra_sets.items()})

    ctc_head = hparams["ctc_head"](encoder.output_size, tokenizer.vocab_size)
    if hf_head is not None:
        ctc_head.load_state_dict(hf_head.state_dict())
    hparams["checkpointer"].add_recoverable("ctc_head", ctc_head)
    asr_brain = ASR(
        modules={"encoder": encoder, "ctc_head": ctc_head},
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
        tokenizer=tokenizer,
        valid_interval_steps=hparams["valid_interval_steps"],
    )

    loader_opts = hparams["dataloader_opts"]
    asr_brain.fit(
        asr_brain.hparams.epoch_counter,
        datasets["train"],
        datasets["dev"],
        train_loader_kwargs={"batch_sampler": samplers["train"], **loader_opts},
        valid_loader_kwargs={"batch_sampler": samplers["dev"], **loader_opts},
    )
    asr_brain.kept_log_probs = {} if hparams["lm_decoding"] else None  # greedy and LM decode one forward
    asr_brain.evaluate(
        datasets["test"], min_key="WER", test_loader_kwargs={"batch_sampler": samplers["test"], **loader_opts}
    )
    greedy_stats, test_kept = asr_brain.last_stats, asr_brain.kept_log_probs
    test_greedy = stats_figures(asr_brain.wer_metric, asr_brain.cer_metric)
    extra_kept = {name: asr_brain.log_probs_of(datasets[name], batch_sampler=samplers[name], **loader_opts)
                  for name in extra_sets}  # the best checkpoint's, every process (DDP); decoded in finish()
    lm_error = None
    if hparams["lm_decoding"]:  # every process runs the forward (DDP), the main one the LM work
        tune_kept = asr_brain.log_probs_of(datasets["lm_tune"], batch_sampler=samplers["lm_tune"], **loader_opts)
        try:
            run_on_main(asr_brain.decode_test_with_lm, args=[test_kept, tune_kept])
        except (LMError, ImportError) as error:  # the model and its greedy results are still exported
            lm_error = error
            logger.error("LM decoding failed: %s. Exporting the model with greedy decoding.", error)

    def finish():
        """Exports the inference (and Hugging Face) folders, the model card and the plot."""
        export_inference_folder(hparams["inference_folder"], encoder, ctc_head, tokenizer, asr_brain.lm_decoder)
        command = [os.path.abspath(__file__), *(sys.argv[1:] if argv is None else argv)]
        table = recipe_test_results(hparams, tokenizer, test_greedy, asr_brain.lm_stats, asr_brain.lm_decoder,
                                    extra_sets, extra_kept)
        write_recipe_model_card(hparams, encoder, greedy_stats, command, asr_brain.lm_stats, table)
        if hparams["hf_export"] and hparams["tokenizer_type"] == "char":
            save_hf_folder(hparams["hf_folder"], encoder, ctc_head, tokenizer, asr_brain.lm_decoder)
        if hparams["export_onnx"]:
            from speechbrain_w2vbert.onnx.export import export_trained_onnx
            export_trained_onnx(hparams["onnx_folder"], encoder, ctc_head, tokenizer, asr_brain.lm_decoder,
                                int8=hparams["export_onnx_int8"])
        plot_training_curves(hparams["train_log"], hparams["plot_file"], title=hparams["output_folder"])
        logger.info(
            "Done. Inference folder: %s | log: %s | plot: %s | test alignments: %s",
            hparams["inference_folder"], hparams["train_log"], hparams["plot_file"], hparams["test_wer_file"],
        )

    run_on_main(finish)
    if lm_error is not None:
        raise SystemExit(f"train.py: LM decoding failed: {lm_error} (the greedy model and results are written)")
    return asr_brain


if __name__ == "__main__":
    sys.exit(exit_status_of(main))
