"""Correct: time-major [seq, batch] GRU language model as in PyTorch's word_language_model, batch_dim=1.

The model returns (log_probs, hidden) with log_probs flattened to [seq * batch, ntoken], as the example does.

Like any language-model batch, some next tokens are not predictable from their prefix (two columns start with the
same token and continue differently): at most 125 of the 128 targets (97.7%) can be predicted, whatever the model.
The step follows the example: model.zero_grad(), clip_grad_norm_(0.25), plain SGD (lr 5 rather than the example's
20, which is too high for a model this small).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NTOKEN, SEQ, BATCH = 30, 8, 16


class RNNModel(nn.Module):
    """Encoder, recurrent module and decoder, returning flattened log-probabilities and the hidden state."""

    def __init__(
        self, ntoken: int = NTOKEN, ninp: int = 32, nhid: int = 64, nlayers: int = 2, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.ntoken, self.nhid, self.nlayers = ntoken, nhid, nlayers
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.GRU(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def init_hidden(self, bsz: int) -> torch.Tensor:
        return self.decoder.weight.new_zeros(self.nlayers, bsz, self.nhid)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if hidden is None:
            hidden = self.init_hidden(tokens.size(1))
        emb = self.drop(self.encoder(tokens))
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden


def repackage_hidden(h: torch.Tensor) -> torch.Tensor:
    return h.detach()


def spec() -> dict:
    g = torch.Generator().manual_seed(6)
    stream = torch.randint(0, NTOKEN, (SEQ + 1, BATCH), generator=g)  # batchify()'d corpus: [time, batch]
    data, targets = stream[:-1], stream[1:]

    def train_step(model, batch, loss_fn, optimizer):
        tokens, target = batch
        model.train()
        hidden = repackage_hidden(model.init_hidden(tokens.size(1)))
        model.zero_grad()
        output, hidden = model(tokens, hidden)
        loss = loss_fn((output, hidden), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
        return loss.item()

    return {
        "model_factory": RNNModel,
        "optimizer_factory": lambda params: torch.optim.SGD(params, lr=5.0),
        "loss_fn": lambda outputs, target: F.nll_loss(outputs[0], target.reshape(-1)),
        "batch": (data, targets),
        "train_step": train_step,
        "batch_dim": 1,
    }
