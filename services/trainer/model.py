"""The sequential recommender: a small causal transformer over purchases.

In the SASRec family: each purchase is an item embedding plus a position,
a GPT-2 stack (from ``transformers``, trained from scratch) attends causally
over the last ``max_len`` purchases, and the hidden state at a position
scores every catalogue item by a dot product with the same item embeddings,
plus a per-item bias. Trained on the next purchase at every position with a
softmax over the whole catalogue.

Customers here mostly buy again what they bought before, which a dot product
learns poorly. So the model also reads a longer history, the last
``history_len`` purchases, and adds to the score of each product in it two
facts: how often the customer bought it (``log1p`` of the count) and how
recently (``1 / (1 + purchases since)``). Their weights are the sum of one
from the hidden state, so the model decides per customer and position how
much a repeat is worth, and one per product, since some products are bought
again far more than others. The facts are computed per history slot, not per
catalogue product, and scattered onto the catalogue's logits, so they cost
``history_len`` entries a position rather than one per product.

Histories are left-padded with index 0. Padding is masked out of attention
and positions count from a customer's first purchase, so the scores at the
last position do not depend on how much padding precedes the history.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

import torch
import transformers
from torch import nn
from torch.jit import TracerWarning  # type: ignore[attr-defined]
from transformers import GPT2Config, GPT2Model

from trainer.sequences import PADDING_INDEX
from trainer.settings import TrainingConfig
from trainer.torchscript import deprecation_silenced

# The score given to padding, so that index 0 is never recommended.
PADDING_SCORE = -1.0e9


class SequentialRecommender(nn.Module):
    """Scores the next purchase for left-padded purchase histories."""

    def __init__(self, item_count: int, config: TrainingConfig) -> None:
        super().__init__()
        self.max_len = config.max_len
        self.history_len = config.history_len
        self.item_count = item_count
        self.item_embedding = nn.Embedding(
            item_count, config.hidden_size, padding_idx=PADDING_INDEX
        )
        self.item_bias = nn.Parameter(torch.zeros(item_count))
        self.transformer = GPT2Model(_gpt2_config(config))
        self.repeat_weights = nn.Linear(config.hidden_size, len(HISTORY_FEATURES))
        self.item_repeat_weights = nn.Embedding(item_count, len(HISTORY_FEATURES))
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[PADDING_INDEX].zero_()
            self.repeat_weights.weight.zero_()
            self.repeat_weights.bias.fill_(1.0)
            self.item_repeat_weights.weight.zero_()

    def hidden_states(self, item_seq: torch.Tensor) -> torch.Tensor:
        """The transformer's output at the last ``max_len`` positions, ``[B, L, H]``."""
        item_seq = item_seq[:, -self.max_len :]
        present = item_seq.ne(PADDING_INDEX).long()
        positions = (present.cumsum(dim=1) - 1).clamp(min=0)
        output = self.transformer(
            inputs_embeds=self.item_embedding(item_seq),
            attention_mask=present,
            position_ids=positions,
        )
        hidden: torch.Tensor = output.last_hidden_state
        return hidden

    def product_logits(
        self, hidden: torch.Tensor, history: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``[N, V - 1]`` of the products alone, index i for item i + 1.

        ``hidden`` is ``[N, H]``; ``history`` ``[N, S]`` and ``features``
        ``[N, S, F]`` are :func:`history_features` at the same positions.
        """
        logits = torch.addmm(self.item_bias, hidden, self.item_embedding.weight.T)
        weights = self.repeat_weights(hidden)[:, None, :]
        weights = weights + self.item_repeat_weights(history)
        repeat = (weights * features).sum(dim=-1)
        return logits.scatter_add(1, history, repeat)[:, 1:]

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, V]`` of the purchase after each history ``[B, history_len]``.

        Padding gets :data:`PADDING_SCORE`.
        """
        hidden = self.hidden_states(item_seq)[:, -1]
        features = history_features(item_seq, positions=1)[:, -1]
        scores = self.product_logits(hidden, item_seq, features)
        padding = torch.full_like(scores[:, :1], PADDING_SCORE)
        return torch.cat([padding, scores], dim=1)


HISTORY_FEATURES = ("log_count", "recency")


def history_features(item_seq: torch.Tensor, positions: int) -> torch.Tensor:
    """What the history says of each purchase in it, at each of the last positions.

    ``item_seq`` is ``[B, S]``; the result is ``[B, P, S, F]`` for the last
    ``P = positions`` positions. At position t, the entry for history slot s
    describes the product bought there, counting only purchases up to and
    including t, and only at the product's last purchase so far; every other
    entry (later slots, earlier purchases of the same product, padding) is 0.
    So scattering the entries onto the catalogue gives each product bought
    so far exactly one set of features: ``log1p`` of how often it was
    bought, and ``1 / (1 + purchases since)``.
    """
    length = item_seq.size(1)
    present = item_seq.ne(PADDING_INDEX)
    same = (item_seq[:, :, None] == item_seq[:, None, :]) & present[:, None, :]
    # running[b, s, t]: purchases of the product in slot s among slots 0..t.
    running = same.cumsum(dim=2, dtype=torch.int32)
    slots = torch.arange(length)
    at = torch.arange(length - positions, length)
    count = running[:, :, length - positions :].transpose(1, 2)
    own = running.diagonal(dim1=1, dim2=2)
    latest = (
        (slots[None, :] <= at[:, None])[None]
        & count.eq(own[:, None, :])
        & present[:, None, :]
    )
    age = (at[:, None] - slots[None, :]).clamp(min=0).float()
    log_count = torch.log1p(count.float())
    recency = 1.0 / (1.0 + age)[None].expand_as(log_count)
    features = torch.stack([log_count, recency], dim=-1)
    return features * latest[..., None].float()


def _gpt2_config(config: TrainingConfig) -> GPT2Config:
    return GPT2Config(
        vocab_size=1,
        n_positions=config.max_len,
        n_embd=config.hidden_size,
        n_layer=config.num_layers,
        n_head=config.num_heads,
        n_inner=4 * config.hidden_size,
        activation_function="gelu",
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        use_cache=False,
        bos_token_id=None,
        eos_token_id=None,
    )


def to_torchscript(model: SequentialRecommender) -> torch.jit.ScriptModule:
    """The model traced for serving: ``forward(item_seq[B, history_len]) -> [B, V]``.

    Traced on a batch with and without padding, so the attention mask stays
    in the graph.
    """
    model.eval()
    length = model.history_len
    example = torch.ones(2, length, dtype=torch.long)
    example[0, : length // 2] = PADDING_INDEX
    with _quiet_tracing(), torch.no_grad():
        traced: torch.jit.ScriptModule = torch.jit.trace(  # type: ignore[no-untyped-call]
            model, example, check_trace=False
        )
    return traced


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Silence the tracer's notes about Python values frozen into the graph.

    Shapes frozen into the graph depend on the sequence length only, which
    the artifact fixes; the tests check traced scores against the eager model.
    """
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity(logging.ERROR)
    try:
        with deprecation_silenced(), warnings.catch_warnings():
            warnings.simplefilter("ignore", TracerWarning)
            warnings.filterwarnings(
                "ignore", category=FutureWarning, module=r"transformers\."
            )
            yield
    finally:
        transformers.logging.set_verbosity(previous)
