"""Correct: BiLSTM token tagger (NER-style) over padded sentences; the loss drops the padded positions' rows.

Tags of padded positions are -1; the loss keeps only the rows whose tag is real (active = tags != -1) before
F.cross_entropy, as token-classification code did before ignore_index=-100 became the norm. Adam, dropout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, NUM_TAGS, PAD, PAD_TAG = 60, 5, 0, -1


class BiLSTMTagger(nn.Module):
    def __init__(self, embedding_dim: int = 32, hidden_dim: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, embedding_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.2)
        self.hidden2tag = nn.Linear(2 * hidden_dim, NUM_TAGS)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.dropout(self.embedding(tokens)))
        return self.hidden2tag(self.dropout(out))  # [batch, seq, tags]


def token_loss(logits: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
    active = tags.view(-1) != PAD_TAG  # padded positions have no tag: drop their rows
    return F.cross_entropy(logits.view(-1, NUM_TAGS)[active], tags.view(-1)[active])


def spec() -> dict:
    lengths = torch.randint(5, 13, (16,))
    tokens = torch.randint(1, VOCAB, (16, 12))
    tags = torch.randint(0, NUM_TAGS, (16, 12))
    padded = torch.arange(12).unsqueeze(0) >= lengths.unsqueeze(1)
    tokens[padded], tags[padded] = PAD, PAD_TAG

    def train_step(model, batch, loss_fn, optimizer):
        tokens, tags = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(tokens), tags)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        return loss.item()

    return {
        "model_factory": BiLSTMTagger,
        "optimizer_factory": lambda params: torch.optim.Adam(params, lr=1e-2),
        "loss_fn": token_loss,
        "batch": (tokens, tags),
        "train_step": train_step,
    }
