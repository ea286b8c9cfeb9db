"""Bug: a time-major GRU's output [seq, batch, hidden] is flattened with .reshape(batch, -1), mixing samples.

It needs out.transpose(0, 1).reshape(batch, -1). Token-id classifier, batch-first inputs.
Should be caught by: batch-independence.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB, SEQ, CLASSES = 40, 6, 3


class GRUFlatten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 16)
        self.gru = nn.GRU(16, 24)  # time-major: [seq, batch, feature]
        self.head = nn.Linear(SEQ * 24, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embedding(tokens).transpose(0, 1))  # [seq, batch, hidden]
        return self.head(out.reshape(tokens.size(0), -1))  # BUG: needs out.transpose(0, 1).reshape(batch, -1)


def spec() -> dict:
    g = torch.Generator().manual_seed(17)
    tokens = torch.randint(0, VOCAB, (16, SEQ), generator=g)
    labels = torch.randint(0, CLASSES, (16,), generator=g)

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "model_factory": GRUFlatten,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=1e-2),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (tokens, labels),
        "train_step": train_step,
    }
