"""Bucketed relative-key attention against transformers' eager attention."""

import pytest
import torch
from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

from speechbrain_w2vbert import TINY_CONFIG_DIR
from speechbrain_w2vbert.models.attention import BucketedRelativeKeySelfAttention
from speechbrain_w2vbert.models.w2vbert import W2VBert, build_model


def forward_backward(model, features, mask):
    """Last hidden state and parameter gradients of a masked square loss."""
    model.zero_grad(set_to_none=True)
    hidden = model(features, attention_mask=mask).last_hidden_state
    (hidden * mask[..., None]).square().sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return hidden.detach(), grads


@pytest.mark.parametrize("frames", [40, 150])  # shorter and longer than the 64-frame clamp
def test_equals_hf_eager_forward_and_gradients(frames):
    config = Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR)
    config.mask_time_prob = 0.0
    torch.manual_seed(0)
    reference = Wav2Vec2BertModel._from_config(config, attn_implementation="eager").train()  # unmodified
    ours = build_model(config, "sdpa_bucketed", time_major_conv=False).train()  # the attention alone
    ours.load_state_dict(reference.state_dict())
    assert all(isinstance(layer.self_attn, BucketedRelativeKeySelfAttention) for layer in ours.encoder.layers)

    features = torch.randn(3, frames, 160)
    mask = torch.ones(3, frames, dtype=torch.long)
    mask[1, frames * 2 // 3 :] = 0
    mask[2, frames // 4 :] = 0
    expected, expected_grads = forward_backward(reference, features, mask)
    got, grads = forward_backward(ours, features, mask)

    valid = mask.bool()
    scale = expected[valid].abs().max()
    assert (got - expected)[valid].abs().max() <= 1e-5 * scale
    assert expected_grads.keys() == grads.keys()
    for name, grad in expected_grads.items():
        # linear_k.bias has an exactly-zero true gradient (softmax ignores a
        # per-query constant): both sides hold ~1e-13 of rounding there.
        assert (grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max() + 1e-9, name


def test_checkpoints_are_interchangeable(tmp_path):
    torch.manual_seed(0)
    ours = W2VBert(TINY_CONFIG_DIR, pretrained=False)
    hf = W2VBert(TINY_CONFIG_DIR, pretrained=False, attn_implementation="sdpa")
    assert ours.state_dict().keys() == hf.state_dict().keys()
    ours.model.save_pretrained(tmp_path)
    reloaded = W2VBert(str(tmp_path), attn_implementation="eager").eval()
    wavs = torch.randn(2, 20000) * 0.1
    lens = torch.tensor([1.0, 0.7])
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(wavs, lens), reloaded(wavs, lens), rtol=1e-5, atol=1e-5)



def test_output_attentions_gives_eager_weights():
    config = Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR)
    torch.manual_seed(0)
    reference = Wav2Vec2BertModel._from_config(config, attn_implementation="eager").eval()
    ours = build_model(config, "sdpa_bucketed").eval()
    ours.load_state_dict(reference.state_dict())
    features = torch.randn(2, 50, 160)
    mask = torch.ones(2, 50, dtype=torch.long)
    mask[1, 30:] = 0
    with torch.no_grad():
        expected = reference(features, attention_mask=mask, output_attentions=True)
        got = ours(features, attention_mask=mask, output_attentions=True)
        plain = ours(features, attention_mask=mask).last_hidden_state
    assert len(got.attentions) == config.num_hidden_layers
    for theirs, mine in zip(expected.attentions, got.attentions):
        assert mine is not None and mine.shape == theirs.shape == (2, config.num_attention_heads, 50, 50)
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    valid = mask.bool()
    torch.testing.assert_close(got.last_hidden_state[valid], plain[valid], rtol=1e-5, atol=1e-5)


def test_a_transformers_release_that_changes_the_class_is_an_error():
    # A release that subclasses (or renames) the attention or convolution
    # class would leave transformers' own modules in place, silently.
    from transformers.models.wav2vec2_bert.modeling_wav2vec2_bert import (Wav2Vec2BertConvolutionModule,
                                                                          Wav2Vec2BertSelfAttention)

    from speechbrain_w2vbert.models.attention import use_bucketed_attention
    from speechbrain_w2vbert.models.convolution import use_time_major_convolution

    config = Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR)
    for original, swap, option in ((Wav2Vec2BertSelfAttention, use_bucketed_attention, "attn_implementation='sdpa'"),
                                   (Wav2Vec2BertConvolutionModule, use_time_major_convolution, "time_major_conv=False")):
        model = Wav2Vec2BertModel._from_config(config, attn_implementation="sdpa")
        renamed = type("Renamed" + original.__name__, (original,), {})
        for module in model.modules():
            if type(module) is original:
                module.__class__ = renamed
        with pytest.raises(RuntimeError, match=rf"found 0 .*{original.__name__} modules to replace where the model "
                                               rf"has 4, with transformers .*\({option}\)"):
            swap(model)


def test_bucketed_attention_needs_relative_key():
    config = Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR)
    config.position_embeddings_type = "rotary"
    with pytest.raises(ValueError, match="sdpa_bucketed computes relative_key attention; this config's position "
                                         "embeddings are 'rotary'"):
        build_model(config, "sdpa_bucketed")
