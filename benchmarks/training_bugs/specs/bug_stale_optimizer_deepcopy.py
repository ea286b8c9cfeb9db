"""Bug: setup() builds the optimizer, then deep-copies the model (meant: keep a pristine copy) and returns the copy.

The returned model's parameters are not the optimizer's: nothing trains. Transformer over token ids.
Should be caught by: parameter-updates (stale optimizer), loss-decreases, memorization.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

VOCAB, CLASSES = 40, 4


class TinyTransformer(nn.Module):
    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(d, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(1))


def spec() -> dict:
    g = torch.Generator().manual_seed(20)
    tokens = torch.randint(0, VOCAB, (16, 10), generator=g)
    labels = torch.randint(0, CLASSES, (16,), generator=g)

    def setup():
        model = TinyTransformer()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        initial = model
        model = copy.deepcopy(initial)  # BUG: meant `initial = copy.deepcopy(model)`
        return model, optimizer

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "setup": setup,
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (tokens, labels),
        "train_step": train_step,
    }
