"""The time-major Conformer convolution module against transformers' own."""

import torch
from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel
from transformers.models.wav2vec2_bert.modeling_wav2vec2_bert import Wav2Vec2BertConvolutionModule

from speechbrain_w2vbert import TINY_CONFIG_DIR
from speechbrain_w2vbert.models.convolution import TimeMajorConvolutionModule, use_time_major_convolution
from speechbrain_w2vbert.models.w2vbert import W2VBert, build_model


def forward_backward(module, hidden, mask):
    """Output and parameter gradients of a masked square loss."""
    module.zero_grad(set_to_none=True)
    output = module(hidden, attention_mask=mask)
    (output * mask[..., None]).square().sum().backward()
    return output.detach(), {name: p.grad.clone() for name, p in module.named_parameters()}


def test_equals_hf_module_with_padding_forward_and_gradients():
    config = Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR)
    config.conformer_conv_dropout = 0.0
    torch.manual_seed(0)
    reference = Wav2Vec2BertConvolutionModule(config).train()  # unmodified
    ours = Wav2Vec2BertConvolutionModule(config).train()
    ours.load_state_dict(reference.state_dict())
    assert use_time_major_convolution(ours) == 1 and isinstance(ours, TimeMajorConvolutionModule)

    hidden = torch.randn(3, 70, config.hidden_size)  # longer than the 31-tap kernel
    mask = torch.ones(3, 70, dtype=torch.long)
    mask[1, 50:] = 0
    mask[2, 10:] = 0
    hidden[2, 10:] = 1e3  # padding: must not leak into valid frames
    expected, expected_grads = forward_backward(reference, hidden, mask)
    got, grads = forward_backward(ours, hidden, mask)

    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    assert grads.keys() == expected_grads.keys()
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-5 * grad.abs().max().item(), msg=name)


def test_encoder_option_and_unchanged_checkpoints():
    torch.manual_seed(0)
    ours = W2VBert(TINY_CONFIG_DIR, pretrained=False)
    hf = W2VBert(TINY_CONFIG_DIR, pretrained=False, time_major_conv=False)
    kinds = {type(layer.conv_module) for layer in ours.model.encoder.layers}
    assert kinds == {TimeMajorConvolutionModule}
    assert {type(layer.conv_module) for layer in hf.model.encoder.layers} == {Wav2Vec2BertConvolutionModule}
    assert ours.state_dict().keys() == hf.state_dict().keys()
    hf.load_state_dict(ours.state_dict())
    wavs = torch.randn(2, 20000) * 0.1
    lens = torch.tensor([1.0, 0.7])
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(wavs, lens), hf.eval()(wavs, lens), rtol=1e-5, atol=1e-5)


def test_whole_model_equals_hf_in_float64():
    # In fp32 the gradients of this random tiny model carry ~2% of rounding
    # noise on either side (measured against fp64), so the whole encoder
    # (bucketed attention and time-major convolutions) is checked in fp64,
    # where any difference left is the method's, not rounding's.
    config = Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR)
    config.mask_time_prob = 0.0
    torch.manual_seed(0)
    reference = Wav2Vec2BertModel._from_config(config, attn_implementation="eager").double().train()  # unmodified
    ours = build_model(config).double().train()
    ours.load_state_dict(reference.state_dict())
    features = torch.randn(3, 150, 160, dtype=torch.float64)
    mask = torch.ones(3, 150, dtype=torch.long)
    mask[1, 100:] = 0
    mask[2, 37:] = 0
    results = []
    for model in (reference, ours):
        hidden = model(features, attention_mask=mask).last_hidden_state
        (hidden * mask[..., None]).square().sum().backward()
        results.append((hidden.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (expected, expected_grads), (got, grads) = results
    valid = mask.bool()
    torch.testing.assert_close(got[valid], expected[valid], rtol=1e-9, atol=1e-9)
    assert grads.keys() == expected_grads.keys()
    for name, grad in expected_grads.items():
        if name.endswith("linear_k.bias"):
            continue  # true gradient exactly 0: ours holds 0, transformers rounding noise (see attention.py)
        torch.testing.assert_close(grads[name], grad, rtol=1e-9, atol=1e-9 * grad.abs().max().item(), msg=name)
