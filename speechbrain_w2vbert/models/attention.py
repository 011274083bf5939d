"""Relative-key self-attention without the (L, L, head_size) tensor.

w2v-BERT 2.0 scores each query against 73 learnt distance embeddings
(distances clamped to 64 frames left, 8 right). transformers gathers one
embedding per (query, key) pair, an (L, L, head_size) tensor per layer (576 MB
in fp32 at L = 1500, kept for the backward pass), and contracts it with the
queries. The same bias is the queries against the 73 embeddings, (B, H, L, 73),
spread over the keys by the clamped distance: that is all this module does
differently. The parameters and their names are those of transformers'
``Wav2Vec2BertSelfAttention``, so checkpoints are unchanged.

Authors: speechbrain-w2vbert contributors
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from transformers.models.wav2vec2_bert.modeling_wav2vec2_bert import Wav2Vec2BertSelfAttention
from transformers.utils.output_capturing import _active_collector

from speechbrain_w2vbert.models.swap import encoder_layers, swap_class

__all__ = ["BucketedRelativeKeySelfAttention", "attentions_requested", "relative_key_bias", "use_bucketed_attention"]


def relative_key_bias(query: torch.Tensor, distance_embedding: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Relative-key attention scores ``q_i . E[clamp(j - i, -left, right)]``.

    Arguments
    ---------
    query : torch.Tensor
        Queries [B, H, L, D].
    distance_embedding : torch.Tensor
        Embeddings [left + right + 1, D], row ``d + left`` for distance ``d``.
    left : int
        Largest distance to the left (earlier keys) with its own embedding.
    right : int
        Largest distance to the right with its own embedding.

    Returns
    -------
    torch.Tensor
        Scores [B, H, L, L] (unscaled).

    Example
    -------
    >>> q = torch.randn(1, 2, 5, 4)
    >>> emb = torch.randn(4, 4)  # left=2, right=1
    >>> bias = relative_key_bias(q, emb, 2, 1)
    >>> distance = (torch.arange(5)[None] - torch.arange(5)[:, None]).clamp(-2, 1) + 2
    >>> torch.allclose(bias, torch.einsum("bhld,lrd->bhlr", q, emb[distance]))
    True
    """
    batch, heads, length, _ = query.shape
    scores = torch.matmul(query, distance_embedding.to(query.dtype).t())  # [B, H, L, left + right + 1]
    positions = torch.arange(length, device=query.device)
    buckets = (positions[None, :] - positions[:, None]).clamp_(-left, right).add_(left)  # [L, L]
    return torch.gather(scores, 3, buckets.expand(batch, heads, length, length))


def attentions_requested() -> bool:
    """Whether the running transformers forward collects attention weights
    (``output_attentions=True``, in the call or the config): transformers 5
    records them with hooks on the attention modules' outputs."""
    collected = _active_collector.get()  # None outside a capturing forward
    return bool(collected) and "attentions" in collected


class BucketedRelativeKeySelfAttention(Wav2Vec2BertSelfAttention):
    """``Wav2Vec2BertSelfAttention`` (``relative_key``) computed through
    :func:`relative_key_bias` and torch's
    ``torch.nn.functional.scaled_dot_product_attention``.

    With ``output_attentions=True`` the attention runs explicitly instead
    (scores, softmax, dropout, weighted sum) and returns its weights [B, H,
    L, L], as transformers' eager attention does.

    Not built directly: :func:`use_bucketed_attention` converts the layers of
    an existing model in place, keeping their parameters.
    """

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        relative_position_embeddings: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Self-attention over [B, L, hidden]; ``attention_mask`` is the
        model's mask, boolean (True = attend) or additive, [B, 1, L, L].
        Returns the output [B, L, hidden] and the attention weights [B, H,
        L, L] when they are requested (None otherwise)."""
        batch, length, _ = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_size)
        query = self.linear_q(hidden_states).view(shape).transpose(1, 2)  # [B, H, L, D]
        # The key bias adds q . b_k to every score of a query, which softmax
        # ignores: its true gradient is exactly 0, and what autograd computes
        # is rounding noise that Adam would scale up to full-size updates, so
        # that two identical runs drift apart. It stays in the graph (DDP
        # sees it used) with a gradient of exactly 0. (A quantised layer,
        # inference only, is called as it is.)
        if isinstance(self.linear_k, torch.nn.Linear):
            key = F.linear(hidden_states, self.linear_k.weight, self.linear_k.bias * 0.0)
        else:
            key = self.linear_k(hidden_states)
        key = key.view(shape).transpose(1, 2)
        value = self.linear_v(hidden_states).view(shape).transpose(1, 2)

        bias = relative_key_bias(
            query, self.distance_embedding.weight, self.left_max_position_embeddings, self.right_max_position_embeddings
        ).mul_(self.scaling)  # [B, H, L, L]
        if attention_mask is not None:
            if attention_mask.dtype == torch.bool:
                bias = bias.masked_fill(~attention_mask, torch.finfo(bias.dtype).min)
            else:
                bias = bias + attention_mask
        dropout = self.dropout.p if self.training else 0.0
        weights = None
        if attentions_requested():
            scores = torch.matmul(query, key.transpose(-1, -2)).mul_(self.scaling).add_(bias)  # [B, H, L, L]
            weights = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
            output = torch.matmul(F.dropout(weights, dropout, self.training), value)
        else:
            output = F.scaled_dot_product_attention(
                query, key, value, attn_mask=bias, dropout_p=dropout, scale=self.scaling
            )  # [B, H, L, D]
        output = output.transpose(1, 2).reshape(batch, length, -1)
        return self.linear_out(output), weights


def use_bucketed_attention(model: torch.nn.Module) -> int:
    """Switches every ``relative_key`` self-attention of ``model`` to
    :class:`BucketedRelativeKeySelfAttention`, in place.

    Arguments
    ---------
    model : torch.nn.Module
        A ``Wav2Vec2BertModel`` (or any module containing its layers).

    Returns
    -------
    int
        The number of layers converted: every layer of a ``relative_key``
        model, or a ``RuntimeError`` naming the transformers version when
        that is not what it finds (see
        :func:`~speechbrain_w2vbert.models.swap.swap_class`); 0 for other position
        schemes, which this attention does not implement.

    Example
    -------
    >>> from transformers import Wav2Vec2BertModel, Wav2Vec2BertConfig
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> model = Wav2Vec2BertModel(Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR))
    >>> use_bucketed_attention(model)
    4
    """
    config = getattr(model, "config", None)
    relative_key = getattr(config, "position_embeddings_type", None) == "relative_key"
    return swap_class(
        model, Wav2Vec2BertSelfAttention, BucketedRelativeKeySelfAttention,
        lambda module: module.position_embeddings_type == "relative_key",
        expected=encoder_layers(model) if relative_key else None,
        switch_off="attn_implementation='sdpa'",
    )
