"""Evaluate the trained model on the held-out split and write metrics."""

from __future__ import annotations

import json
import os

import numpy as np
import torch
import yaml

from model import SpiralNet

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    with open(os.path.join(HERE, "params.yaml")) as fh:
        params = yaml.safe_load(fh)
    data = np.load(os.path.join(HERE, "data", "spirals.npz"))
    x, y = torch.from_numpy(data["x_test"]), torch.from_numpy(data["y_test"])
    model = SpiralNet(
        hidden=params["train"]["hidden"], dropout=params["train"]["dropout"], classes=params["prepare"]["classes"]
    )
    model.load_state_dict(torch.load(os.path.join(HERE, "models", "model.pt"), map_location="cpu")["model"])
    model.eval()
    with torch.no_grad():
        logits = model(x)
    loss = float(torch.nn.functional.cross_entropy(logits, y))
    accuracy = float((logits.argmax(1) == y).float().mean())
    os.makedirs(os.path.join(HERE, "metrics"), exist_ok=True)
    with open(os.path.join(HERE, "metrics", "eval.json"), "w") as fh:
        json.dump({"loss": loss, "accuracy": accuracy}, fh, indent=2)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
