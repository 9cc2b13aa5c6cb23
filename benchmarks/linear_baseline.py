"""The floor every net of a profile must clear: a linear softmax classifier on the raw, normalized pixels.

    python benchmarks/linear_baseline.py data/laptop        # a data root that `rir fetch` prepared

One nn.Linear(3072, 10), trained with SGD (momentum 0.9, batch 128, cosine schedule, no augmentation, one
thread) on the prepared training images, normalized with the manifest's per-channel statistics as the nets'
are; prints the test accuracy after each epoch and the data's kind, as everything made from the data must.
On the JPEG copy of CIFAR-10 it reaches about 40 % (docs/results-laptop.md), the usual figure for CIFAR-10.
"""

from __future__ import annotations

import argparse
import time

import torch

from rir.data import load_arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="data root holding <dataset>/prepared.npz (rir fetch --root)")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.001)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    a = load_arrays(args.root, args.dataset)
    mean = torch.tensor(a.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(a.std, dtype=torch.float32).view(1, 3, 1, 1)

    def flat(images):
        return ((torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std).flatten(1)

    x_train, x_test = flat(a.train_images), flat(a.test_images)
    y_train, y_test = torch.from_numpy(a.train_labels), torch.from_numpy(a.test_labels)
    linear = torch.nn.Linear(x_train.shape[1], a.num_classes)
    opt = torch.optim.SGD(linear.parameters(), lr=args.lr, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    started = time.process_time()
    accuracies = []
    for _ in range(args.epochs):
        order = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 128):
            batch = order[i:i + 128]
            loss = torch.nn.functional.cross_entropy(linear(x_train[batch]), y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        schedule.step()
        with torch.no_grad():
            accuracies.append(100 * (linear(x_test).argmax(1) == y_test).float().mean().item())
    print(f"linear softmax on {a.kind} {args.dataset} (md5 {a.source_md5}): test accuracy per epoch "
          f"{', '.join(f'{x:.2f}' for x in accuracies)} %; {time.process_time() - started:.1f} CPU-s")


if __name__ == "__main__":
    main()
