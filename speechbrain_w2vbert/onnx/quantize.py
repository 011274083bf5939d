"""int8 versions of an exported fp32 graph, with onnxruntime's quantisation
tools; the result is one file (weights inside), under protobuf's 2 GB.

Methods (:data:`METHODS`):

- ``dynamic``: ``quantize_dynamic``, int8 weights with one scale per output
  channel for every MatMul (attention projections, feed-forward modules,
  the CTC head excepted), activations quantised on the fly
  (``DynamicQuantizeLinear`` + ``MatMulInteger``);
- ``dynamic_tensor``: the same, one scale per tensor (as PyTorch's
  ``quantize_dynamic``);
- ``nbits8`` / ``nbits4``: weight-only ``MatMulNBits`` (blocks of 32 weights
  with their own scale), computing in int8 (``accuracy_level=4``).

Speed, size and CER of each: docs/onnx.md (``bench/inference.py --onnx``).

Nothing here needs torch.

Authors: speechbrain-w2vbert contributors
"""

import os
import tempfile
from typing import List

__all__ = ["METHODS", "DEFAULT_METHOD", "quantize_int8"]

METHODS = ("dynamic", "dynamic_tensor", "nbits8", "nbits4")
#: The method ``export-onnx --int8`` uses (the fastest at equal CER on the bench).
DEFAULT_METHOD = "dynamic"


def _head_nodes(model) -> List[str]:
    """Names of the MatMul nodes that compute the graph's last projection
    (the CTC head: kept in fp32, as the torch int8 path keeps it)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    node = producers.get(model.graph.output[0].name)
    seen, names = set(), []
    queue = [node] if node is not None else []
    while queue:  # walk back from log_probs to the first MatMul (the head), through elementwise ops
        node = queue.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in ("MatMul", "Gemm"):
            names.append(node.name)
            continue
        queue += [producers[i] for i in node.input if i in producers]
    return names


def quantize_int8(source: str, target: str, method: str = DEFAULT_METHOD) -> str:
    """Writes the int8 version of the fp32 graph ``source`` to ``target``
    (one file).

    Arguments
    ---------
    source : str
        An fp32 ``model.onnx`` (weights inside or beside it).
    target : str
        The int8 file to write (atomically).
    method : str
        One of :data:`METHODS`.

    Returns
    -------
    str
        ``target``.
    """
    import onnx

    if method not in METHODS:
        raise ValueError(f"int8 method must be one of {', '.join(METHODS)}, not {method!r}")
    import logging

    model = onnx.load(source)
    head = _head_nodes(model)
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # the quantiser's advice to pre-process, on the root logger
    folder = os.path.dirname(os.path.abspath(target))
    with tempfile.TemporaryDirectory(prefix="quantize-", dir=folder) as work:
        tmp = os.path.join(work, "model.int8.onnx")
        if method.startswith("dynamic"):
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(source, tmp, weight_type=QuantType.QInt8, per_channel=method == "dynamic",
                             op_types_to_quantize=["MatMul"], nodes_to_exclude=head,
                             extra_options={"MatMulConstBOnly": True})
        else:
            from onnxruntime.quantization.matmul_nbits_quantizer import (DefaultWeightOnlyQuantConfig,
                                                                         MatMulNBitsQuantizer)

            bits = 8 if method == "nbits8" else 4
            config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=bits)
            quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=32, is_symmetric=True, accuracy_level=4,
                                             nodes_to_exclude=head, algo_config=config)
            quantizer.process()
            onnx.save_model(quantizer.model.model, tmp)
        quantized = onnx.load(tmp)
        onnx.save_model(quantized, target + ".tmp")  # one file: all weights inside
        os.replace(target + ".tmp", target)
    root.setLevel(level)
    return target
