"""W2VBert against transformers' Wav2Vec2BertModel fed by SeamlessM4TFeatureExtractor."""

import socket

import numpy as np
import pytest
import torch
from speechbrain.nnet.containers import LengthsCapableSequential
from transformers import Wav2Vec2BertModel

from speechbrain_w2vbert import TINY_CONFIG_DIR
from speechbrain_w2vbert.models.w2vbert import FRONTEND_PRECISIONS, W2VBert
from tests.helpers import pad_batch


@pytest.fixture(scope="module")
def mixed_batch(nepali_speech):
    rng = np.random.default_rng(0)
    wavs = [nepali_speech[0], rng.normal(0, 0.1, 12345).astype(np.float32), nepali_speech[1][:40001]]
    return wavs, *pad_batch(wavs)


def build(**kwargs):
    torch.manual_seed(0)
    return W2VBert(TINY_CONFIG_DIR, pretrained=False, **kwargs)


@pytest.mark.parametrize("attn", ["eager", "sdpa", "sdpa_bucketed"])
def test_matches_hf_model_on_valid_frames(reference_extractor, mixed_batch, attn):
    wavs, batch, lens = mixed_batch
    encoder = build(attn_implementation=attn).eval()
    # The reference is transformers' own model, unmodified, with the same weights.
    reference = Wav2Vec2BertModel._from_config(encoder.model.config, attn_implementation="eager").eval()
    reference.load_state_dict(encoder.model.state_dict())
    inputs = reference_extractor(wavs, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(batch, lens)
        expected = reference(**inputs).last_hidden_state
    for i in range(len(wavs)):
        n = int(inputs["attention_mask"][i].sum())
        diff = (hidden[i, :n] - expected[i, :n]).abs().max()
        assert diff <= 1e-4, f"utterance {i}: {diff}"


def test_alone_equals_padded_in_batch(mixed_batch):
    wavs, batch, lens = mixed_batch
    encoder = build().eval()
    with torch.no_grad():
        hidden, out_lens = encoder(batch, lens, return_lengths=True)
        for i, wav in enumerate(wavs):
            alone = encoder(torch.from_numpy(wav)[None])
            n = int(torch.round(out_lens[i] * hidden.shape[1]))
            assert n == alone.shape[1]
            torch.testing.assert_close(hidden[i, :n], alone[0], rtol=0, atol=1e-4)


def test_lengths_reach_the_model_in_lengths_capable_sequential(mixed_batch):
    _, batch, lens = mixed_batch
    encoder = build().eval()
    head = torch.nn.Linear(144, 7)
    wrapped = LengthsCapableSequential(encoder, head)
    with torch.no_grad():
        got = wrapped(batch, lengths=lens)
        expected = head(encoder(batch, lens))
        unmasked = head(encoder(batch))
    torch.testing.assert_close(got, expected)
    assert (got - unmasked).abs().max() > 1e-3  # the mask matters, so the test can fail


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_freezing_options_freeze_exactly_what_they_say():
    full = build()
    total = trainable(full.model)
    assert total == sum(p.numel() for p in full.model.parameters())

    frozen = build(freeze=True)
    assert trainable(frozen) == 0
    frozen.train()
    assert not frozen.model.training
    assert not frozen(torch.randn(1, 8000)).requires_grad

    projection = build(freeze_feature_projection=True)
    assert trainable(projection) == total - sum(p.numel() for p in projection.model.feature_projection.parameters())

    two = build(frozen_layers=2)
    layers = two.model.encoder.layers
    assert trainable(two) == total - sum(p.numel() for layer in layers[:2] for p in layer.parameters())
    assert all(p.requires_grad for layer in layers[2:] for p in layer.parameters())
    two(torch.randn(1, 8000) * 0.1).sum().backward()
    assert all(p.grad is None for p in layers[0].parameters())
    assert all(p.grad is not None for p in layers[3].parameters())

    with pytest.raises(ValueError, match="frozen_layers"):
        build(frozen_layers=5)


def test_config_overrides_reach_the_model():
    encoder = build(
        layerdrop=0.25,
        mask_time_prob=0.3,
        mask_time_length=3,
        mask_feature_prob=0.1,
        hidden_dropout=0.15,
        attention_dropout=0.05,
        attn_implementation="eager",
    )
    config = encoder.model.config
    assert (config.layerdrop, config.mask_time_prob, config.mask_time_length) == (0.25, 0.3, 3)
    assert config.mask_feature_prob == 0.1
    assert encoder.model.encoder.dropout.p == 0.15
    assert encoder.model.encoder.layers[0].self_attn.dropout.p == 0.05
    assert config._attn_implementation == "eager"


def test_spec_augment_in_training_only_and_never_on_padding(mixed_batch):
    _, batch, lens = mixed_batch
    encoder = build(mask_time_prob=0.5, mask_time_length=2, output_layer=1)
    embed = encoder.model.masked_spec_embed
    seen = {}

    def capture(module, args, output):
        seen["hidden"] = output[0].detach()

    encoder.model.feature_projection.register_forward_hook(capture)
    hook = encoder.model.encoder.register_forward_pre_hook(lambda m, args, kw: seen.update(masked=args[0].detach()), with_kwargs=True)
    encoder.train()
    encoder(batch, lens)
    masked_frames = (seen["masked"] == embed.detach()).all(-1)  # [B, T']
    valid = torch.arange(masked_frames.shape[1])[None] < torch.round(lens * masked_frames.shape[1])[:, None]
    assert masked_frames.any()
    assert not (masked_frames & ~valid).any()
    encoder.eval()
    encoder(batch, lens)
    assert not (seen["masked"] == embed.detach()).all(-1).any()
    hook.remove()


def test_adapter_halves_lengths(mixed_batch):
    wavs, batch, lens = mixed_batch
    encoder = build(add_adapter=True, num_adapter_layers=1).eval()
    with torch.no_grad():
        hidden, out_lens = encoder(batch, lens, return_lengths=True)
        frames = encoder.frontend(batch, lens)[0].shape[1]
        assert hidden.shape[1] == (frames - 1) // 2 + 1
        for i, wav in enumerate(wavs):
            alone = encoder(torch.from_numpy(wav)[None])
            assert int(torch.round(out_lens[i] * hidden.shape[1])) == alone.shape[1]


def test_output_options(mixed_batch):
    _, batch, lens = mixed_batch
    everything = build(output_all_hiddens=True).eval()
    with torch.no_grad():
        stacked = everything(batch, lens)
        assert stacked.shape[:2] == (5, 3)
        truncated = build(output_layer=2).eval()
        truncated.load_state_dict(everything.state_dict(), strict=False)
        assert len(truncated.model.encoder.layers) == 2
        torch.testing.assert_close(truncated(batch, lens), stacked[2])
        normed = build(output_norm=True).eval()(batch, lens)
    torch.testing.assert_close(normed.mean(-1), torch.zeros(normed.shape[:2]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="output_layer"):
        build(output_layer=9)


def test_pretrained_local_folder_never_touches_the_network(tmp_path, monkeypatch, mixed_batch):
    _, batch, lens = mixed_batch
    source = build().eval()
    source.model.save_pretrained(tmp_path)

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    loaded = W2VBert(str(tmp_path), save_path=str(tmp_path / "cache")).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch, lens), source(batch, lens))
    assert isinstance(loaded.model, Wav2Vec2BertModel)


@pytest.mark.parametrize("checkpointing, recomputed", [(True, [True] * 4), (2, [True, False, True, False])])
def test_gradient_checkpointing_gives_the_same_gradients(checkpointing, recomputed):
    wav = torch.randn(2, 12000) * 0.1
    grads = []
    for option in (False, checkpointing):
        encoder = build(gradient_checkpointing=option, mask_time_prob=0.0).train()
        encoder(wav).square().mean().backward()
        grads.append([p.grad for p in encoder.model.encoder.layers.parameters()])
    assert getattr(encoder.model, "is_activation_checkpointing", None) or encoder.model.is_gradient_checkpointing
    # which layers transformers recomputes (every n-th with an int)
    assert [layer.gradient_checkpointing for layer in encoder.model.encoder.layers] == recomputed
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(checkpointed, plain)
    with pytest.raises(ValueError, match="needs n >= 1"):
        build(gradient_checkpointing=-1)


def test_config_instead_of_source(mixed_batch):
    _, batch, lens = mixed_batch
    source = build().eval()
    config = source.model.config.to_dict()
    rebuilt = W2VBert(config=config, pretrained=False).eval()
    rebuilt.load_state_dict(source.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch, lens), source(batch, lens))
    overridden = W2VBert(config=config, pretrained=False, layerdrop=0.3)
    assert overridden.model.config.layerdrop == 0.3
    assert config["layerdrop"] == source.model.config.layerdrop != 0.3  # the caller's config is untouched
    with pytest.raises(ValueError, match="pretrained=False"):
        W2VBert(config=config)
    with pytest.raises(ValueError, match="needs a source"):
        W2VBert(pretrained=False)


def test_frontend_precision_is_the_same_in_training_and_eval():
    # Training and inference must see the same features (no mode-dependent frontend).
    wav = torch.randn(2, 8000) * 0.1
    lens = torch.tensor([1.0, 0.8])
    for name, (dtype, spectral_dtype) in FRONTEND_PRECISIONS.items():
        encoder = build(frontend_precision=name)
        assert (encoder.frontend.dtype, encoder.frontend.spectral_dtype) == (dtype, spectral_dtype)
        train_feats = encoder.train().frontend(wav, lens)[0]
        torch.testing.assert_close(encoder.eval().frontend(wav, lens)[0], train_feats, rtol=0, atol=0)
    assert build().frontend_precision == "mixed"
    with pytest.raises(ValueError, match="frontend_precision must be one of mixed, fp64, fp32"):
        build(frontend_precision="bf16")


@pytest.mark.slow
@pytest.mark.extended
def test_torch_compile_with_dynamic_shapes_matches_eager():
    # SpeechBrain's --compile --compile_using_dynamic_shape_tracing compiles
    # the whole lobe. The frontend must stay eager: traced, inductor failed on
    # its tiled in-place writes and aot_eager moved its gradients by ~1e-3.
    # aot_eager runs the same traced graph as inductor without the C++ build.
    no_dropout = dict.fromkeys(
        ["layerdrop", "mask_time_prob", "hidden_dropout", "attention_dropout", "activation_dropout",
         "conformer_conv_dropout", "feat_proj_dropout"], 0.0)
    encoder = build(output_layer=1, **no_dropout).train()
    compiled = torch.compile(encoder, backend="aot_eager", dynamic=True)
    for batch, samples in ((2, 16000), (3, 12000)):  # two shapes: the second reuses the dynamic graph
        wavs = torch.randn(batch, samples) * 0.1
        lens = torch.linspace(0.6, 1.0, batch)
        results = []
        for model in (encoder, compiled):
            encoder.zero_grad()
            hidden = model(wavs, lens)
            hidden.square().sum().backward()
            results.append([hidden] + [p.grad.clone() for p in encoder.parameters()])
        for eager, traced in zip(*results):
            torch.testing.assert_close(traced, eager, rtol=1e-6, atol=1e-6)
