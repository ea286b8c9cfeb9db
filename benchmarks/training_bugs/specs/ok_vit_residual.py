"""Correct: a tiny pre-norm Vision Transformer (4x4 patches of 1x16x16 images, class token) with x = x + f(x) residuals.

nn.MultiheadAttention(batch_first=True) and an MLP block, each behind a LayerNorm, as from-scratch ViT code writes
them; AdamW with weight decay, dropout, label smoothing.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return x


class ViT(nn.Module):
    def __init__(
        self, image_size: int = 16, patch_size: int = 4, num_classes: int = 5, dim: int = 32, depth: int = 2
    ) -> None:
        super().__init__()
        num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(1, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads=4) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(img).flatten(2).transpose(1, 2)  # [batch, patches, dim]
        x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))


def spec() -> dict:
    images = torch.randn(16, 1, 16, 16)
    labels = torch.randint(0, 5, (16,))

    def train_step(model, batch, loss_fn, optimizer):
        images, labels = batch
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "model_factory": ViT,
        "optimizer_factory": lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05),
        "loss_fn": nn.CrossEntropyLoss(label_smoothing=0.1),
        "batch": (images, labels),
        "train_step": train_step,
    }
