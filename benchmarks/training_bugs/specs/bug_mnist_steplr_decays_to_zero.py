"""Bug: the MNIST CNN's StepLR is stepped after every batch with step_size=1, gamma=0.1: the LR decays to ~0 at once.

pytorch/examples' MNIST network and Adadelta(lr=1.0); the learning rate is 1.0, 0.1, 0.01, ... so training stalls
after two or three steps with the loss barely below its start. Otherwise identical to ok_mnist_steplr_per_batch.
Should be caught by: memorization (training stalls).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.optim.lr_scheduler import StepLR


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(800, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def spec() -> dict:
    data = ((torch.rand(32, 1, 14, 14) > 0.7).float() - 0.1307) / 0.3081  # transforms.Normalize
    target = torch.randint(0, 10, (32,))
    schedulers: dict[optim.Optimizer, StepLR] = {}

    def setup():
        model = Net()
        optimizer = optim.Adadelta(model.parameters(), lr=1.0)
        schedulers[optimizer] = StepLR(optimizer, step_size=1, gamma=0.1)  # BUG: x0.1 every batch
        return model, optimizer

    def train_step(model, batch, loss_fn, optimizer):
        data, target = batch
        model.train()
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        schedulers[optimizer].step()
        return loss.item()

    return {
        "setup": setup,
        "batch": (data, target),
        "loss_fn": F.nll_loss,
        "train_step": train_step,
    }
