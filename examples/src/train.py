"""Train the spiral classifier; the training step and checkpoint code are shared with the ci-checks spec."""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Callable

import numpy as np
import torch
import yaml

from model import SpiralNet

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_optimizer(params: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def train_step(
    model: torch.nn.Module, batch: Any, loss_fn: Callable[..., torch.Tensor], optimizer: torch.optim.Optimizer
) -> torch.Tensor:
    """One optimisation step on one batch; returns the loss."""
    x, y = batch
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
    optimizer.step()
    return loss.detach()


def save_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: str) -> None:
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)


def load_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: str) -> None:
    state = torch.load(path, map_location=next(model.parameters()).device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])


def main() -> None:
    with open(os.path.join(HERE, "params.yaml")) as fh:
        params = yaml.safe_load(fh)["train"]
    torch.manual_seed(params["seed"])
    # `ci-checks rerun` picks the device and a folder for checkpoints, so an interrupted replay resumes.
    device = torch.device(os.environ.get("CI_CHECKS_DEVICE", "cpu"))
    resume = (
        os.path.join(os.environ["CI_CHECKS_CHECKPOINT_DIR"], "train.pt")
        if os.environ.get("CI_CHECKS_CHECKPOINT_DIR")
        else None
    )
    data = np.load(os.path.join(HERE, "data", "spirals.npz"))
    x, y = torch.from_numpy(data["x_train"]).to(device), torch.from_numpy(data["y_train"]).to(device)
    model = SpiralNet(hidden=params["hidden"], dropout=params["dropout"]).to(device)
    optimizer = make_optimizer(model.parameters(), params["lr"], params["weight_decay"])
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(params["seed"])
    curve: list[dict[str, float]] = []
    if resume and os.path.exists(resume):
        state = torch.load(resume, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["rng"])
        curve = state["curve"]
        print(f"resumed from {resume} after epoch {len(curve)}")
    for epoch in range(len(curve), params["epochs"]):
        order = torch.randperm(len(y), generator=gen)
        losses = [
            float(train_step(model, (x[idx], y[idx]), loss_fn, optimizer)) for idx in order.split(params["batch_size"])
        ]
        curve.append({"epoch": epoch, "loss": sum(losses) / len(losses)})
        if resume:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "curve": curve,
                    "generator": gen.get_state(),
                    "rng": torch.get_rng_state(),
                },
                resume,
            )
    model.eval()
    with torch.no_grad():
        train_acc = float((model(x).argmax(1) == y).float().mean())
    for sub in ("models", "metrics", "plots"):
        os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    save_checkpoint(model.cpu(), optimizer, os.path.join(HERE, "models", "model.pt"))
    with open(os.path.join(HERE, "metrics", "train.json"), "w") as fh:
        json.dump({"loss": curve[-1]["loss"], "accuracy": train_acc}, fh, indent=2)
    with open(os.path.join(HERE, "plots", "train_loss.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", "loss"])
        writer.writeheader()
        writer.writerows(curve)
    print(f"train loss {curve[-1]['loss']:.4f}, train accuracy {train_acc:.3f}")


if __name__ == "__main__":
    main()
