"""Deploying without PyTorch: the ONNX export of a trained model
(:mod:`speechbrain_w2vbert.onnx.export`, needs torch), and what runs it
without torch (:mod:`speechbrain_w2vbert.onnx.runtime`,
:mod:`speechbrain_w2vbert.onnx.frontend`, :mod:`speechbrain_w2vbert.onnx.vad`,
:mod:`speechbrain_w2vbert.onnx.quantize`). See docs/onnx.md."""
