"""Noise schedules of a denoising diffusion model, independent of any network (diffusers' split).

Convention (as in diffusers): timesteps are 0-based, ``t = 0 .. T-1``, and
``alphas_cumprod[t] = prod_{i <= t} (1 - betas[i])`` is the signal fraction of ``x_t``:

    x_t = sqrt(alphas_cumprod[t]) * x_0 + sqrt(1 - alphas_cumprod[t]) * noise

Schedules are kept in float64 (the products over 1000 steps lose digits in float32); coefficients
are cast to the data's dtype only when applied.
"""

from __future__ import annotations

import math

import torch

from ...errors import EmoaugError

SCHEDULES = ("linear", "cosine")
#: Nichol & Dhariwal (2021) clip betas at 0.999 so the last steps of the cosine schedule stay finite.
COSINE_MAX_BETA = 0.999


class NoiseSchedule:
    """Betas and the derived alphas / cumulative products of one forward (noising) process."""

    def __init__(self, betas: torch.Tensor, name: str = "custom"):
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() < 1 or bool(((betas <= 0) | (betas >= 1)).any()):
            raise EmoaugError(f"noise schedule {name!r}: betas must lie in (0, 1)")
        self.name = name
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    @property
    def num_timesteps(self) -> int:
        return int(self.betas.numel())

    def __len__(self) -> int:
        return self.num_timesteps

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.name!r}, T={self.num_timesteps})"

    def alpha_bar(self, t: int) -> float:
        """``alphas_cumprod[t]``; ``t = -1`` means "before the first step" (clean data, 1.0)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw ``x_t ~ q(x_t | x_0)`` with the given noise; ``t`` is a LongTensor ``[B]`` (one step per row)."""
        signal = _per_row(self.alphas_cumprod.sqrt(), t, x0)
        sigma = _per_row((1.0 - self.alphas_cumprod).sqrt(), t, x0)
        return signal * x0 + sigma * noise

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """diffusers' name and argument order for :meth:`q_sample`."""
        return self.q_sample(original, timesteps, noise)

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio ``alpha_bar / (1 - alpha_bar)`` at steps ``t`` (float64)."""
        abar = self.alphas_cumprod[torch.as_tensor(t, dtype=torch.int64).cpu()]
        return abar / (1.0 - abar)


def _per_row(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped ``[B, 1, ..., 1]`` to broadcast against ``like``, in its dtype and device."""
    picked = values[torch.as_tensor(t, dtype=torch.int64).cpu()]
    return picked.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.ndim - 1)))


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """Ho et al. (2020): betas linear from 1e-4 to 0.02 over T = 1000 steps (Kim & Lee 2024 use the same)."""
    _check_T(T)
    if not 0 < beta_start <= beta_end < 1:
        raise EmoaugError(f"linear schedule: need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    return NoiseSchedule(torch.linspace(beta_start, beta_end, T, dtype=torch.float64), name="linear")


def cosine_alpha_bar(t: torch.Tensor, T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's ``f(t) / f(0)`` with ``f(t) = cos^2(((t/T) + s) / (1 + s) * pi/2)``, t in [0, T]."""
    t = torch.as_tensor(t, dtype=torch.float64)

    def f(u: torch.Tensor) -> torch.Tensor:
        return torch.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

    return f(t) / f(torch.zeros((), dtype=torch.float64))


def cosine_schedule(T: int = 1000, s: float = 0.008) -> NoiseSchedule:
    """Improved DDPM (Nichol & Dhariwal 2021; used by Malik et al. 2023).

    ``beta_t = 1 - abar(t) / abar(t-1)`` for ``t = 1..T``, clipped at 0.999 as in the paper, so step
    index ``i`` (0-based) has ``alphas_cumprod[i] = f(i+1)/f(0)`` wherever the clip is not active
    (only the last few steps, where abar reaches 0).
    """
    _check_T(T)
    if s < 0:
        raise EmoaugError(f"cosine schedule: s must be >= 0, got {s}")
    abar = cosine_alpha_bar(torch.arange(T + 1), T, s)
    betas = (1.0 - abar[1:] / abar[:-1]).clamp(max=COSINE_MAX_BETA)
    return NoiseSchedule(betas, name="cosine")


def make_schedule(name: str, T: int, **options: float) -> NoiseSchedule:
    """Schedule by config name (``"linear"`` or ``"cosine"``); options go to the builder."""
    if name == "linear":
        return linear_schedule(T, **options)
    if name == "cosine":
        return cosine_schedule(T, **options)
    raise EmoaugError(f"generator 'diffusion': schedule must be one of {', '.join(SCHEDULES)}, got {name!r}")


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise EmoaugError(f"noise schedule: timesteps must be an integer >= 1, got {T!r}")
