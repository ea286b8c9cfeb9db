"""Correct: GRU classifier over token ids with a pretrained embedding frozen on purpose (declared in 'frozen')."""

from __future__ import annotations

import torch
from torch import nn

VOCAB, CLASSES = 50, 3


class GRUClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        pretrained = torch.randn(VOCAB, 16, generator=torch.Generator().manual_seed(123))
        self.embedding = nn.Embedding.from_pretrained(pretrained, freeze=True)
        self.gru = nn.GRU(16, 32, batch_first=True)
        self.head = nn.Linear(32, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(self.embedding(tokens))
        return self.head(h[-1])


def spec() -> dict:
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, VOCAB, (16, 10), generator=g)
    labels = torch.randint(0, CLASSES, (16,), generator=g)

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return {
        "model_factory": GRUClassifier,
        "optimizer_factory": lambda params: torch.optim.Adam([p for p in params if p.requires_grad], lr=1e-2),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (tokens, labels),
        "train_step": train_step,
        "frozen": ["embedding"],
    }
