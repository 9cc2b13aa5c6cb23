"""Untrusted-input payloads shared by the data and fault tests."""

from __future__ import annotations

import os
from pathlib import Path


class RunsCode:
    """Pickles as a call of os.system that creates `marker`: any plain unpickler (pickle.load,
    torch.load with weights_only=False) would run it, so the marker's absence proves nothing ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
