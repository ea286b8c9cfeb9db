"""Correct: decoder-only (causal) Transformer sequence classifier that reads its label off the last token.

Pre-LN nn.TransformerEncoder layers with a square subsequent mask, learned positions, the last position's hidden
state into a linear head (as GPT2ForSequenceClassification pools), AdamW. The step passes the logits to
nn.CrossEntropyLoss and keeps the probabilities for its accuracy metric.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB, CLASSES, SEQ_LEN = 64, 4, 12


class CausalClassifier(nn.Module):
    def __init__(self, d_model: int = 32, nhead: int = 4, num_layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(VOCAB, d_model)
        self.pos_emb = nn.Embedding(SEQ_LEN, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward=4 * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d_model)
        self.score = nn.Linear(d_model, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.size(1)
        pos = torch.arange(T, device=tokens.device)
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        h = self.blocks(self.tok_emb(tokens) + self.pos_emb(pos), mask=mask, is_causal=True)
        return self.score(self.ln_f(h[:, -1]))  # the last token has seen the whole sequence


def spec() -> dict:
    tokens = torch.randint(0, VOCAB, (16, SEQ_LEN))
    labels = torch.randint(0, CLASSES, (16,))
    metrics: dict[str, float] = {}

    def train_step(model, batch, loss_fn, optimizer):
        x, y = batch
        model.train()
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = loss_fn(out, y)
        loss.backward()
        optimizer.step()
        metrics["acc"] = (out.softmax(-1).argmax(-1) == y).float().mean().item()
        return loss.item()

    return {
        "model_factory": CausalClassifier,
        "optimizer_factory": lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01),
        "loss_fn": nn.CrossEntropyLoss(),
        "batch": (tokens, labels),
        "train_step": train_step,
    }
