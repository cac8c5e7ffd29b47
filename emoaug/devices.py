"""Turn the ``--device`` option into a ``torch.device``, failing early with a one-line message."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import EmoaugError

if TYPE_CHECKING:
    import torch

_CUDA_SPEC = re.compile(r"cuda(?::(\d+))?")


def check_device_spec(spec: str) -> str:
    """The normalised spelling of ``--device`` (no torch needed: option errors answer instantly)."""
    spec = str(spec).strip().lower()
    if spec not in ("auto", "cpu") and _CUDA_SPEC.fullmatch(spec) is None:
        raise EmoaugError(f"--device: unknown device {spec!r} (use auto, cpu, cuda or cuda:N)")
    return spec


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` (CUDA device 0 when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Asking for CUDA on a machine without it is an error rather than a silent CPU fallback: a
    benchmark that quietly ran somewhere else would report misleading timings.
    """
    import torch

    spec = check_device_spec(spec)
    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    return _cuda_device(spec, int(_CUDA_SPEC.fullmatch(spec).group(1) or 0))


def _cuda_device(spec: str, index: int) -> torch.device:
    import torch

    if not torch.cuda.is_available():
        raise EmoaugError(f"--device: {spec!r} requested but CUDA is not available on this machine (use cpu or auto)")
    count = torch.cuda.device_count()
    if index >= count:
        raise EmoaugError(f"--device: {spec!r} requested but only {count} CUDA device(s) exist")
    return torch.device("cuda", index)
