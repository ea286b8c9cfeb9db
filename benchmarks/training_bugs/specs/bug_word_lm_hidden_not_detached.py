"""Bug: word_language_model's train() does not repackage (detach) the hidden state it carries between bptt chunks.

The second chunk's backward pass runs into the first chunk's graph, already freed by its backward: autograd raises
"Trying to backward through the graph a second time". Otherwise identical to ok_word_lm_lstm_bptt (time-major LSTM
language model, batch_dim=1, manual SGD).
Should be caught by: parameter-updates (the training step raised; the first training check reports it, exit 1).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

TEXT = """It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want
of a wife.
However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth
is so well fixed in the minds of the surrounding families, that he is considered the rightful property of some one
or other of their daughters.
"My dear Mr. Bennet," said his lady to him one day, "have you heard that Netherfield Park is let at last?"
Mr. Bennet replied that he had not.
"But it is," returned she; "for Mrs. Long has just been here, and she told me all about it."
"""
BPTT, BATCH_SIZE, LR, CLIP = 8, 8, 20.0, 0.25


class Dictionary:
    def __init__(self) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []

    def add_word(self, word: str) -> int:
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)


def tokenize(text: str, dictionary: Dictionary) -> torch.Tensor:
    ids = []
    for line in text.splitlines():
        for word in line.split() + ["<eos>"]:
            ids.append(dictionary.add_word(word))
    return torch.tensor(ids, dtype=torch.int64)


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    # Work out how cleanly we can divide the dataset into bsz parts, trim off the remainder, evenly divide the data
    # across the bsz batches.
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


class RNNModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder."""

    def __init__(self, ntoken: int, ninp: int = 32, nhid: int = 64, nlayers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.init_weights()
        self.nhid = nhid
        self.nlayers = nlayers

    def init_weights(self) -> None:
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor] | None = None):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def spec() -> dict:
    dictionary = Dictionary()
    train_data = batchify(tokenize(TEXT, dictionary), BATCH_SIZE)  # [time, batch]
    ntokens = len(dictionary)
    criterion = nn.NLLLoss()

    def train_step(model, batch, loss_fn, optimizer):
        source, target_source = batch
        # Turn on training mode which enables dropout.
        model.train()
        total_loss = 0.0
        hidden = model.init_hidden(source.size(1))
        chunks = range(0, source.size(0), BPTT)
        for i in chunks:
            data, targets = source[i : i + BPTT], target_source[i : i + BPTT].reshape(-1)
            # Starting each batch, we detach the hidden state from how it was previously produced.
            # If we didn't, the model would try backpropagating all the way to start of the dataset.
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()

            # `clip_grad_norm` helps prevent the exploding gradient problem in RNNs / LSTMs.
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-LR)

            total_loss += loss.item()
        return total_loss / len(chunks)

    return {
        "model_factory": lambda: RNNModel(ntokens),
        "optimizer_factory": lambda params: torch.optim.SGD(params, lr=LR),  # unused: the step updates by hand
        "loss_fn": lambda outputs, targets: criterion(outputs[0], targets.reshape(-1)),
        "batch": (train_data[:-1], train_data[1:]),
        "train_step": train_step,
        "batch_dim": 1,
    }
