"""batch-independence: in eval mode, sample 0's output does not depend on the other samples' inputs."""

from __future__ import annotations

import inspect
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ci_checks import synthetic_batch
from ci_checks.checks.batch_independence import batch_independence


class ReshapeMixer(nn.Module):
    """The classic bug: x.t().reshape(n, -1) instead of a permute keeps the shape and mixes samples."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.t().reshape(x.shape[0], -1))


class TokenClassifier(nn.Module):
    def __init__(self, mix: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.head = nn.Linear(8, 3)
        self.mix = mix

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids).mean(1)
        if self.mix:
            h = h + h.mean(0, keepdim=True)  # batch statistics leak into every sample
        return self.head(h)


class TimeMajor(nn.Module):
    """[T, N, F] -> [T, N, C]; mixes over time (dim 0), which is fine, or over the batch (dim 1), which is not."""

    def __init__(self, mix_batch: bool = False, flatten: bool = False) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)
        self.mix_batch, self.flatten = mix_batch, flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + x.mean(0, keepdim=True)
        if self.mix_batch:
            x = x + x.mean(1, keepdim=True)
        out = self.net(x)
        return out.reshape(-1, 3) if self.flatten else out


class LogitsAndLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits, logits.pow(2).mean()


class DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": self.net(x).sum(), "logits": self.net(x)}


def time_major_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, 8, 4, generator=g), torch.randint(0, 3, (5, 8), generator=g)


def time_major(**model_kw):
    flat = model_kw.get("flatten", False)
    return {
        "model_factory": lambda: TimeMajor(**model_kw),
        "batch": time_major_batch(),
        "batch_dim": 1,
        "loss_fn": (
            (lambda out, y: F.cross_entropy(out, y.reshape(-1)))
            if flat
            else (lambda out, y: F.cross_entropy(out.reshape(-1, 3), y.reshape(-1)))
        ),
    }


def tokens(**model_kw):
    return {
        "model_factory": lambda: TokenClassifier(**model_kw),
        "batch": synthetic_batch((6,), batch_size=8, vocab_size=10, num_classes=3),
    }


PASSING = [
    pytest.param(lambda: {}, "input gradient", id="mlp"),
    pytest.param(
        lambda: {
            "model_factory": lambda: nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
        },
        "input gradient",
        id="batchnorm-judged-in-eval-mode",
    ),
    pytest.param(tokens, "perturbing other samples", id="integer-token-inputs"),
    pytest.param(time_major, "input gradient", id="time-major-batch-dim-1"),
    pytest.param(lambda: time_major(flatten=True), "input gradient", id="time-major-flattened-output"),
    pytest.param(
        lambda: {"model_factory": LogitsAndLoss, "loss_fn": lambda out, y: F.cross_entropy(out[0], y)},
        "input gradient",
        id="logits-loss-tuple",
    ),
    pytest.param(
        lambda: {"model_factory": DictOutput, "loss_fn": lambda out, y: F.cross_entropy(out["logits"], y)},
        "input gradient",
        id="dict-output",
    ),
]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("overrides", "method"), PASSING)
def test_passes(make_spec, overrides, method):
    result = batch_independence(make_spec(**overrides()))
    assert result.status == "pass", (result.summary, [f.message for f in result.findings])
    assert result.figures["method"] == method
    assert result.figures["own_effect"] > 0


FAILING = [
    pytest.param(lambda: {"model_factory": ReshapeMixer}, "input gradient", id="reshape-mixes-samples"),
    pytest.param(lambda: tokens(mix=True), "perturbing other samples", id="token-inputs-mixed"),
    pytest.param(lambda: time_major(mix_batch=True), "input gradient", id="time-major-mixes-batch-axis"),
    pytest.param(lambda: {**time_major(), "batch_dim": 0}, "input gradient", id="time-major-batch-dim-not-declared"),
]


@pytest.mark.parametrize(("overrides", "method"), FAILING)
def test_fails(make_spec, overrides, method):
    spec = make_spec(**overrides())
    result = batch_independence(spec)
    assert result.status == "fail"
    assert result.figures["method"] == method
    (finding,) = result.findings
    assert re.match(r"batch-independence: sample \d+'s output depends on sample \d+'s input \(leak ", finding.message)
    assert f"over dim {spec.batch_dim}" in finding.message and "set batch_dim" in finding.message


def test_skips_a_batch_of_one(make_spec):
    x, y = synthetic_batch((4,), batch_size=1, num_classes=3)
    result = batch_independence(make_spec(batch=(x, y)))
    assert result.status == "skip"
    assert "at least 2 samples" in result.summary


def test_tolerance_is_a_setting(make_spec):
    result = batch_independence(make_spec(**tokens(mix=True)), settings={"tolerance": 1e9})
    assert result.status == "pass"


# ---------------------------------------------------------------- realistic models: causal attention, LSTMs, softmax


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention, and two bug twins that split the heads wrongly.

    bug="query-view": minGPT's `q.view(B, nh, T, hs)` without the transpose mixes time with heads inside a sample:
    a position's query comes from a later position, so the causal mask leaks (but never at position 0, whose only
    key is itself). bug="time-major": `q.view(T, B * nh, hs).transpose(0, 1)`, as nn.MultiheadAttention splits
    time-major [T, B, C] input, on batch-first activations makes "sequences" of the flattened batch: sample 0 still
    attends only to its own tokens, later samples attend to other samples.
    """

    def __init__(self, n_embd: int = 16, n_head: int = 2, block_size: int = 8, bug: str = "") -> None:
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head, self.n_embd, self.bug = n_head, n_embd, bug
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        if self.bug == "time-major":
            q, k, v = (t.reshape(T, B * nh, hs).transpose(0, 1) for t in (q, k, v))
        else:
            k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (k, v))
            q = q.reshape(B, nh, T, hs) if self.bug == "query-view" else q.view(B, T, nh, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.bias[0, 0, :T, :T] == 0, float("-inf")).softmax(dim=-1)
        y = att @ v
        if self.bug == "time-major":
            y = y.transpose(0, 1).reshape(B, T, C)
        else:
            y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self, n_embd: int = 16, **attn_kw) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, **attn_kw)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's interface: model(idx, targets) -> (logits, loss), the loss ignoring targets of -1."""

    def __init__(self, vocab_size: int = 16, block_size: int = 8, n_embd: int = 16, **attn_kw) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
        self.block = Block(n_embd, block_size=block_size, **attn_kw)
        self.ln_f, self.lm_head = nn.LayerNorm(n_embd), nn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        pos = torch.arange(idx.size(1), device=idx.device)
        logits = self.lm_head(self.ln_f(self.block(self.wte(idx) + self.wpe(pos))))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def gpt_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 16, (8, 9), generator=g)
    x, y = data[:, :-1], data[:, 1:].clone()
    y[:, :2] = -1  # nanoGPT-style masked positions
    return x, y


def gpt(**attn_kw):
    x, y = gpt_batch()
    return {
        "model_factory": lambda: GPT(**attn_kw),
        "batch": (x, y),
        "forward": lambda model, idx: model(idx, y),  # the loss mixes the batch by design: only logits are probed
        "loss_fn": lambda out, targets: out[1],
        "optimizer_factory": lambda params: torch.optim.AdamW(params, lr=1e-3),
    }


def attention_block(**attn_kw):
    g = torch.Generator().manual_seed(0)
    return {
        "model_factory": lambda: nn.Sequential(Block(16, **attn_kw), nn.Linear(16, 3)),
        "batch": (torch.randn(8, 8, 16, generator=g), torch.randint(0, 3, (8, 8), generator=g)),
        "loss_fn": lambda out, y: F.cross_entropy(out.reshape(-1, 3), y.reshape(-1)),
    }


class AttentionPooling(nn.Module):
    """Multiple-instance pooling: each sample's K instances weighted by a softmax over the instance axis (dim 1)."""

    def __init__(self, softmax_dim: int = 1) -> None:
        super().__init__()
        self.score, self.head = nn.Linear(4, 1), nn.Linear(4, 3)
        self.softmax_dim = softmax_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.score(x).squeeze(-1).softmax(dim=self.softmax_dim)  # [B, K]
        return self.head((weights.unsqueeze(-1) * x).sum(1))


def pooling(softmax_dim: int):
    return {
        "model_factory": lambda: AttentionPooling(softmax_dim),
        "batch": (torch.randn(8, 5, 4, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 3),
    }


class LSTMLanguageModel(nn.Module):
    """Time-major [T, N] token ids -> [T * N, V] logits, as the PyTorch word_language_model example."""

    def __init__(self, batch_first: bool = False) -> None:
        super().__init__()
        self.emb, self.rnn, self.out = nn.Embedding(20, 8), nn.LSTM(8, 16, batch_first=batch_first), nn.Linear(16, 20)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.emb(ids))
        return self.out(h).reshape(-1, 20)


class BidirectionalTagger(LSTMLanguageModel):
    """Reads the whole sequence both ways: position 0 sees later positions, so its causal mask is not probed."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.out = nn.LSTM(8, 8, bidirectional=True), nn.Linear(16, 20)


def lstm_lm(batch_first: bool = False):
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 20, (7, 6), generator=g)  # [T + 1, N]
    return {
        "model_factory": lambda: LSTMLanguageModel(batch_first),
        "batch": (data[:-1], data[1:]),
        "batch_dim": 1,
        "loss_fn": lambda out, y: F.cross_entropy(out, y.reshape(-1)),
    }


def batch_first_lstm_lm():
    x, y = lstm_lm()["batch"]
    return {
        "model_factory": lambda: LSTMLanguageModel(batch_first=True),
        "batch": (x.t().contiguous(), y.t().contiguous()),
        "loss_fn": lambda out, y: F.cross_entropy(out, y.reshape(-1)),
    }


def bi_lstm_tagger():
    """A bidirectional tagger: per-token tags, not the next token (a bi-LSTM fed next-token targets sees the answer,
    which test_next_token_targets_need_a_causal_model fails)."""
    x, _ = lstm_lm()["batch"]
    return {**lstm_lm(), "model_factory": BidirectionalTagger, "batch": (x, (x * 7 + 3) % 20)}


REALISTIC_PASSING = [
    pytest.param(gpt, "perturbing other samples", True, id="gpt-causal-attention-logits-loss-tuple"),
    pytest.param(attention_block, "input gradient", True, id="causal-attention-block-float-inputs"),
    pytest.param(lambda: pooling(1), "input gradient", False, id="softmax-over-instances"),
    pytest.param(lstm_lm, "perturbing other samples", True, id="time-major-lstm-lm-batch-dim-1"),
    pytest.param(batch_first_lstm_lm, "perturbing other samples", True, id="batch-first-lstm-lm-flattened-logits"),
    pytest.param(bi_lstm_tagger, "perturbing other samples", False, id="bi-lstm"),
]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("overrides", "method", "causal"), REALISTIC_PASSING)
def test_realistic_models_pass(make_spec, overrides, method, causal):
    result = batch_independence(make_spec(**overrides()))
    assert result.status == "pass", (result.summary, [f.message for f in result.findings])
    assert result.figures["method"] == method
    assert result.figures["leak"] == 0.0 and result.figures["own_effect"] > 0
    assert result.figures["probed_samples"] == [0, result.figures["batch_size"] // 2, result.figures["batch_size"] - 1]
    assert result.figures["causal"] == causal
    assert result.summary.endswith("; causal mask holds") == causal


REALISTIC_FAILING = [
    # Mixing under a causal mask spares sample 0: only probing later samples finds it.
    pytest.param(lambda: gpt(bug="time-major"), "perturbing other samples", True, id="gpt-time-major-split"),
    pytest.param(lambda: attention_block(bug="time-major"), "input gradient", True, id="attention-time-major-split"),
    pytest.param(lambda: lstm_lm(batch_first=True), "perturbing other samples", True, id="lstm-recurs-over-batch"),
    pytest.param(lambda: pooling(0), "input gradient", False, id="softmax-over-the-batch-axis"),
]


@pytest.mark.parametrize(("overrides", "method", "spares_sample_0"), REALISTIC_FAILING)
def test_realistic_mixing_is_caught(make_spec, overrides, method, spares_sample_0):
    spec = make_spec(**overrides())
    result = batch_independence(spec)
    assert result.status == "fail", result.summary
    assert result.figures["method"] == method
    (finding,) = result.findings
    sample, source = finding.details["sample"], finding.details["leaked_from"]
    assert finding.message.startswith(f"batch-independence: sample {sample}'s output depends on sample {source}'s")
    assert sample != source and finding.details["leak"] > 0
    if spares_sample_0:
        assert sample in (result.figures["batch_size"] // 2, result.figures["batch_size"] - 1)
        assert " leak, 0 does not, as when samples mix under a causal mask)" in finding.message


class RequiresBOS(nn.Module):
    """Rejects sequences that do not start with token 0: the kit's replaced token ids may not."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.head = nn.Embedding(10, 8), nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not bool((ids[:, 0] == 0).all()):
            raise ValueError("every sequence must start with BOS (id 0)")
        return self.head(self.emb(ids).mean(1))


def test_a_probe_the_model_rejects_is_a_skip(make_spec):
    x, y = synthetic_batch((6,), batch_size=8, vocab_size=10, num_classes=3)
    x[:, 0] = 0
    result = batch_independence(make_spec(model_factory=RequiresBOS, batch=(x, y)))
    assert result.status == "skip"
    assert result.summary.startswith("skipped: the probe could not run on this model (ValueError: every sequence")
    assert "test_batch_independence.py:" in result.summary  # where the model rejected the replaced ids


class CentredInEval(nn.Module):
    """Learns a centre in training; its eval path uses it before any training step set it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.centre = x.mean(0).detach()
            return self.net(x)
        return self.net(x - self.centre)


def test_a_forward_that_raises_in_eval_mode_is_an_error_at_the_users_line(make_spec):
    result = batch_independence(make_spec(model_factory=CentredInEval))
    assert result.status == "fail"
    (finding,) = result.findings
    assert "the model's forward in eval mode (model.eval(), torch.no_grad()) raised AttributeError" in finding.message
    assert finding.location is not None and finding.location.file.endswith("test_batch_independence.py")
    line = inspect.getsource(CentredInEval).splitlines().index("        return self.net(x - self.centre)")
    assert finding.location.line == inspect.getsourcelines(CentredInEval)[1] + line


class ZeroScaleInEval(nn.Module):
    """Divides by a running scale that starts at zero: eval-mode outputs are Inf/NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)
        self.register_buffer("scale", torch.zeros(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x if self.training else x / self.scale)


def test_non_finite_figures_never_pass(make_spec):
    result = batch_independence(make_spec(model_factory=ZeroScaleInEval))
    assert result.status == "skip"
    assert "NaN or Inf" in result.summary


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(lambda: gpt(bug="query-view"), id="gpt-token-ids"),
        pytest.param(lambda: attention_block(bug="query-view"), id="attention-block-float-inputs"),
    ],
)
def test_a_causal_mask_that_leaks_is_caught(make_spec, overrides):
    result = batch_independence(make_spec(**overrides()))
    assert result.status == "fail", result.summary
    assert result.figures["causal"] is True and result.summary.endswith("; causal mask leaks")
    assert result.figures["leak"] == 0.0  # no sample reads another: the leak runs along time
    (finding,) = result.findings
    position, source = finding.details["position"], finding.details["read_ahead_from"]
    assert 0 < position < source
    assert finding.message.startswith(
        f"batch-independence: in sample 0, position {position}'s output depends on position {source}'s input"
    )
    assert "q.view(B, T, nh, hs).transpose(1, 2)" in finding.message


class InplaceAfterSigmoid(nn.Module):
    """Doubles a sigmoid's output in place: the forward runs, the backward through it raises."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.head = nn.Linear(4, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x).sigmoid()
        h *= 2
        return self.head(h)


def test_a_model_without_input_gradients_is_probed_by_perturbation(make_spec):
    result = batch_independence(make_spec(model_factory=InplaceAfterSigmoid))
    assert result.status == "pass", result.summary
    assert result.figures["method"] == "perturbing other samples" and result.figures["own_effect"] > 0


class TinyLM(nn.Module):
    """One causal self-attention layer over token ids, GPT-style; `masked=False` drops the causal mask."""

    def __init__(self, masked: bool = True, vocab: int = 12, d: int = 16, T: int = 8) -> None:
        super().__init__()
        self.masked = masked
        self.tok = nn.Embedding(vocab, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", torch.tril(torch.ones(T, T)))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx)
        q, k, v = self.qkv(x).split(x.size(-1), dim=2)
        att = q @ k.transpose(-2, -1) / x.size(-1) ** 0.5
        if self.masked:
            att = att.masked_fill(self.mask[: idx.size(1), : idx.size(1)] == 0, float("-inf"))
        return self.head(x + att.softmax(-1) @ v)


def _lm_batch(shifted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(0, 12, (6, 8), generator=torch.Generator().manual_seed(0))
    y = torch.roll(x, -1, dims=1) if shifted else x.clone()
    y[:, -1] = -1
    return x, y


def _lm_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-1)


@pytest.mark.parametrize(
    ("masked", "shifted", "status"),
    [
        pytest.param(True, True, "pass", id="causal-lm"),
        pytest.param(False, True, "fail", id="next-token-without-mask"),
        pytest.param(False, False, "pass", id="bidirectional-tagger"),
    ],
)
def test_next_token_targets_need_a_causal_model(make_spec, masked, shifted, status):
    """Targets that are the inputs shifted by one are next-token prediction: a model whose first position reads
    later ones sees the answer. Without shifted targets a bidirectional model is fine."""
    spec = make_spec(model_factory=lambda: TinyLM(masked), batch=_lm_batch(shifted), loss_fn=_lm_loss)
    result = batch_independence(spec)
    assert result.status == status, result.summary
    if status == "fail":
        assert "position 0's output depends on position" in result.findings[0].message
        assert "next-token prediction" in result.findings[0].message
