"""Bug: optimizer.zero_grad() was moved below loss.backward(): every step clears its own gradients before the update.

The torchtext tutorial's EmbeddingBag text classifier with dropout and SGD; zero_grad() sets the gradients to
None, so optimizer.step() skips every parameter and nothing trains (the dropout still makes the loss vary from step
to step). Otherwise identical to ok_text_classifier_embedding_bag.
Should be caught by: parameter-updates (gradients cleared before the update).
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB, NUM_CLASS, PAD = 200, 4, 0


class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size: int = VOCAB, embed_dim: int = 32, num_class: int = NUM_CLASS) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean", padding_idx=PAD)
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(embed_dim, num_class)
        self.init_weights()

    def init_weights(self) -> None:
        initrange = 0.5
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.fc.weight.data.uniform_(-initrange, initrange)
        self.fc.bias.data.zero_()

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.embedding(text)))


def spec() -> dict:
    lengths = torch.randint(4, 16, (32,))
    text = torch.randint(1, VOCAB, (32, 16))
    text[torch.arange(16).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    label = torch.randint(0, NUM_CLASS, (32,))
    criterion = torch.nn.CrossEntropyLoss()

    def train_step(model, batch, loss_fn, optimizer):
        text, label = batch
        model.train()
        predicted_label = model(text)
        loss = criterion(predicted_label, label)
        loss.backward()
        optimizer.zero_grad()  # BUG: moved below backward: clears the gradients just computed
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        return loss.item()

    return {
        "model_factory": TextClassificationModel,
        "optimizer_factory": lambda params: torch.optim.SGD(params, lr=5.0),
        "loss_fn": criterion,
        "batch": (text, label),
        "train_step": train_step,
    }
