"""Turn the ``--device`` option into a ``torch.device``, failing early with a one-line message."""

from __future__ import annotations

import re

import torch

from .errors import EmoaugError

_CUDA_SPEC = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` (CUDA device 0 when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Asking for CUDA on a machine without it is an error rather than a silent CPU fallback: a
    benchmark that quietly ran somewhere else would report misleading timings.
    """
    spec = str(spec).strip().lower()
    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = _CUDA_SPEC.fullmatch(spec)
    if match is None:
        raise EmoaugError(f"--device: unknown device {spec!r} (use auto, cpu, cuda or cuda:N)")
    return _cuda_device(spec, int(match.group(1) or 0))


def _cuda_device(spec: str, index: int) -> torch.device:
    if not torch.cuda.is_available():
        raise EmoaugError(f"--device: {spec!r} requested but CUDA is not available on this machine (use cpu or auto)")
    count = torch.cuda.device_count()
    if index >= count:
        raise EmoaugError(f"--device: {spec!r} requested but only {count} CUDA device(s) exist")
    return torch.device("cuda", index)
