"""Correct: tiny Transformer encoder classifier over padded token ids.

Key-padding mask, dropout, masked mean pooling, AdamW with weight decay, gradient clipping.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB, CLASSES, PAD = 40, 4, 0


class TinyTransformer(nn.Module):
    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Parameter(torch.zeros(1, 16, d))
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pad = tokens == PAD
        h = self.encoder(self.embed(tokens) + self.pos[:, : tokens.size(1)], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def spec() -> dict:
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(1, VOCAB, (16, 12), generator=g)
    lengths = torch.randint(4, 13, (16,), generator=g)
    tokens[torch.arange(12).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    labels = torch.randint(0, CLASSES, (16,), generator=g)

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.detach()

    return {
        "model_factory": TinyTransformer,
        "optimizer_factory": lambda params: torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (tokens, labels),
        "train_step": train_step,
    }
