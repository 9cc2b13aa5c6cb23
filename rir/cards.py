"""The GPU cards the suite knows: their dense peak FLOP/s by math mode, and the utilisation assumed of them.

Torch-free, so the Snakefile's parse can read it (rir.timelimits). `rir bench` reads the peaks to report a
fraction of peak; `rir plan` and the cluster's time limits price a run's FLOPs on a card with them
(`seconds_on`): an ESTIMATE from FLOPs, not a measurement.
"""

from __future__ import annotations

import re

# Dense (no sparsity) peak FLOP/s by card and math mode, from NVIDIA's data sheets (whose tensor-core
# figures are quoted "with sparsity": halved here). `rir bench`, `rir plan` and the time limits read this one
# table.
PEAKS = {
    "H100 SXM": {"bf16": 989e12, "tf32": 494.5e12, "fp32": 67e12},
    "H100 PCIe": {"bf16": 756e12, "tf32": 378e12, "fp32": 51e12},
    "H100 NVL": {"bf16": 835e12, "tf32": 417.5e12, "fp32": 60e12},
    "H200": {"bf16": 989e12, "tf32": 494.5e12, "fp32": 67e12},  # the H100 SXM's compute, more memory
    "A100": {"bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "L40S": {"bf16": 362.05e12, "tf32": 183e12, "fp32": 91.6e12},
    "unknown": None,  # any other device: no peak, so no fraction of peak (never a guess)
}
# A CUDA device name -> its card: the first fragment found in the name wins (`NVIDIA H100 80GB HBM3` is SXM).
_CARD_FRAGMENTS = (("H100 PCIe", "H100 PCIe"), ("H100 NVL", "H100 NVL"), ("H100", "H100 SXM"),
                   ("H200", "H200"), ("A100", "A100"), ("L40S", "L40S"))
# The fraction of a card's peak a run is assumed to reach: 35 % for nets of 1 GFLOP per image or more (issue
# 7's target for rir_18_wide, set for bf16 and assumed alike for the other modes), 15 % for the smaller ones
# (narrow convs fill a card badly). An assumption, not a measurement: no run has been timed on a GPU yet.
UTILISATION = ((1e9, 0.35), (0.0, 0.15))  # (min forward FLOPs per image, assumed fraction of peak)


def card_of(device_name: str) -> str:
    """The card of `PEAKS` a CUDA device name belongs to, or "unknown"."""
    for fragment, card in _CARD_FRAGMENTS:
        if fragment.lower() in device_name.lower():
            return card
    return "unknown"


def card_named(name: str) -> str:
    """The card of `PEAKS` a user's name for it means (`A100`, `h100-pcie`, `H100_NVL`, `h100pcie`), or
    "unknown": `card_of` with case, spaces, `-` and `_` ignored (every known card's own name resolves to it;
    `h100` is the H100 SXM, as for a CUDA device name)."""
    def bare(text: str) -> str:
        return re.sub(r"[\s_-]+", "", text).lower()

    return next((card for fragment, card in _CARD_FRAGMENTS if bare(fragment) in bare(name)), "unknown")


def known_cards() -> list[str]:
    return [card for card, peaks in PEAKS.items() if peaks]


def utilisation(forward_flops_per_image: float) -> float:
    return next(u for min_flops, u in UTILISATION if forward_flops_per_image >= min_flops)


def seconds_on(card: str, precision: str, flops: float, forward_flops_per_image: float) -> float:
    """Seconds `flops` take on `card` in math mode `precision` at the utilisation assumed for a net of
    `forward_flops_per_image` (the card runs the mode asked for: TF32 exists on all of them)."""
    return flops / (utilisation(forward_flops_per_image) * PEAKS[card][precision])
