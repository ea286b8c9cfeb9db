"""Bug: the CIFAR-10 tutorial's Net is trained with Adam at lr 0.1, the SGD recipe's learning rate kept in the config.

Adam's steps are about lr in size whatever the gradient's scale: the first updates throw the weights far off and
the loss settles on a plateau near log(10), finite throughout, with most of the batch never fit. Otherwise
identical to ok_cifar_tutorial_adam.
Should be caught by: memorization (training stalls).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

CONFIG = {"optimizer": "adam", "lr": 0.1, "batch_size": 32}  # BUG: the SGD recipe's lr, 100x too high for Adam


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)  # flatten all dimensions except batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def make_optimizer(params, config: dict) -> optim.Optimizer:
    if config["optimizer"] == "sgd":
        return optim.SGD(params, lr=config["lr"], momentum=0.9)
    return optim.Adam(params, lr=config["lr"])


def spec() -> dict:
    inputs = torch.rand(CONFIG["batch_size"], 3, 32, 32) * 2 - 1  # Normalize((0.5,) * 3, (0.5,) * 3)
    labels = torch.randint(0, 10, (CONFIG["batch_size"],))
    criterion = nn.CrossEntropyLoss()

    def train_step(net, batch, loss_fn, optimizer):
        inputs, labels = batch
        # zero the parameter gradients
        optimizer.zero_grad()
        # forward + backward + optimize
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {
        "model_factory": Net,
        "optimizer_factory": lambda params: make_optimizer(params, CONFIG),
        "loss_fn": criterion,
        "batch": (inputs, labels),
        "train_step": train_step,
    }
