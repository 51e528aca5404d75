#!/usr/bin/env python3
"""PyTorch references, in-process, for the benchmarks that measure against PyTorch in the same run.

Default (`ra-trainer bench`): training throughput of the same two models with the same batch
size, optimizer, thread count, input shape (`--input mnist|cifar10`) and device (`--device cpu`
or `cuda`: the loss read back each step, as ra-trainer's loop does, synchronises); prints {"cnn": [samples_per_second, ...], "mlp": [...],
"torch": version} as one JSON line, one figure per repeat.

`--evaluate DIR` (`evaluator-bench`): the evaluator's workload on a prepared dataset (manifest.json
and safetensors splits, read once before timing): for each of `--seeds` seeds, build the
reference CNN for the dataset's input, train `--epochs` epochs of shuffled batches with Adam,
then score val and test as ra-trainer does (batches of 512); prints {"seconds": [per repeat],
"val_accuracy": [per seed of the last repeat], "torch": version}.
"""

import argparse
import json
import os
import time

import torch
from torch import nn


def reference_cnn_for(channels: int, height: int, width: int, classes: int) -> nn.Module:
    """ra_spec::examples::reference_cnn on any image input: two conv–ReLU–pool stages, a
    128-unit hidden layer."""
    flat = 32 * (height // 2 // 2) * (width // 2 // 2)
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, classes),
    )


def load_prepared(folder: str) -> tuple[dict, dict]:
    """The manifest and each split as (x float32, normalised per channel as ra-trainer's
    pipeline does, y)."""
    from safetensors.numpy import load_file

    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as file:
        manifest = json.load(file)
    stats = manifest["normalization"]
    mean = torch.tensor(stats["mean"], dtype=torch.float32)
    inv_std = torch.tensor([1.0 / s if s > 0 else 1.0 for s in stats["std"]],
                           dtype=torch.float32)
    splits = {}
    for split in manifest["splits"]:
        tensors = load_file(os.path.join(folder, split["file_name"]))
        x = torch.from_numpy(tensors["x"]).to(torch.float32)
        if len(mean):
            shape = [1, -1] + [1] * (x.dim() - 2)
            x = (x - mean.view(shape)) * inv_std.view(shape)
        splits[split["name"]] = (x.contiguous(), torch.from_numpy(tensors["y"]).to(torch.int64))
    return manifest, splits


def evaluate_seed(manifest: dict, splits: dict, seed: int, epochs: int, batch: int) -> float:
    """One seed as ra-trainer trains it; returns the val accuracy."""
    torch.manual_seed(seed)
    spec = manifest["input"]
    model = reference_cnn_for(spec["channels"], spec["height"], spec["width"],
                              len(manifest["class_names"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x, y = splits["train"]
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch):
            indices = order[start:start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[indices]), y[indices])
            loss.backward()
            optimizer.step()
            loss.item()
    model.eval()
    accuracy = 0.0
    with torch.no_grad():
        for name in ("val", "test"):
            if name not in splits:
                continue
            sx, sy = splits[name]
            correct, loss_sum = 0, 0.0
            for start in range(0, len(sy), 512):
                logits = model(sx[start:start + 512])
                loss_sum += loss_fn(logits, sy[start:start + 512]).item()
                correct += int((logits.argmax(1) == sy[start:start + 512]).sum())
            if name == "val":
                accuracy = correct / max(len(sy), 1)
    return accuracy


def evaluate_workload(args: argparse.Namespace) -> dict:
    manifest, splits = load_prepared(args.evaluate)
    evaluate_seed(manifest, splits, 0, 1, args.batch)  # warm-up: allocator, kernels
    seconds, accuracies = [], []
    for repeat in range(max(args.repeats, 1)):
        started = time.perf_counter()
        accuracies = [evaluate_seed(manifest, splits, 10_000 * (repeat + 1) + seed, args.epochs,
                                    args.batch) for seed in range(args.seeds)]
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds, "val_accuracy": accuracies, "torch": torch.__version__}


def mlp(features: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 256), nn.ReLU(), nn.Linear(256, 10))


# The step benchmark's inputs: channels, height, width.
INPUTS = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def samples_per_second(model: nn.Module, shape: tuple[int, int, int], device: str, batch: int,
                       steps: int, warmup: int, repeats: int) -> list[float]:
    torch.manual_seed(0)
    model = model.to(device)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()

    for _ in range(warmup):
        step()
    rates = []
    for _ in range(max(repeats, 1)):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(batch * steps / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--input", choices=sorted(INPUTS), default="mnist",
                        help="the step benchmark's input shape")
    parser.add_argument("--device", default="cpu", help="torch device of the step benchmark")
    parser.add_argument("--evaluate", metavar="DIR",
                        help="time the evaluator's workload on this prepared dataset instead")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.evaluate:
        print(json.dumps(evaluate_workload(args)))
        return
    shape = INPUTS[args.input]
    channels, height, width = shape
    result = {
        "cnn": samples_per_second(reference_cnn_for(channels, height, width, 10), shape,
                                  args.device, args.batch, args.steps, args.warmup, args.repeats),
        "mlp": samples_per_second(mlp(channels * height * width), shape, args.device, args.batch,
                                  args.steps, args.warmup, args.repeats),
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
