"""Reverse-process samplers that work with any noise predictor (diffusers' split).

A sampler only needs a schedule and a callable ``denoise(x_t, t) -> eps`` where ``t`` is a
LongTensor ``[B]`` of 0-based steps; classifier-free guidance, conditioning and the network live in
that callable. Both samplers take

* ``x``: the starting point, pure noise ``x_{T-1}`` or, with ``start_step=t0``, a noised real item
  ``x_{t0}`` (the "enhance" mode: SDEdit-style partial denoising);
* ``generator``: a ``torch.Generator`` for the noise they add (drawn on the generator's device and
  moved to ``x``'s, so a CPU generator gives the same draws whatever device the model runs on).

Every step first estimates ``x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``; ``clip_x0`` (a
bound or None) optionally clamps that estimate, as diffusers' ``clip_sample`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ...errors import EmoaugError
from .schedules import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SPACINGS = ("uniform", "trailing")
DDPM_VARIANCES = ("posterior", "beta")


class _Sampler:
    def __init__(self, schedule: NoiseSchedule, clip_x0: float | None = None):
        if clip_x0 is not None and not clip_x0 > 0:
            raise EmoaugError(f"sampler: clip_x0 must be > 0 or None, got {clip_x0!r}")
        self.schedule = schedule
        self.clip_x0 = clip_x0

    def _start(self, start_step: int | None) -> int:
        T = self.schedule.num_timesteps
        start = T - 1 if start_step is None else int(start_step)
        if not 0 <= start < T:
            raise EmoaugError(f"sampler: start_step must be in [0, {T - 1}], got {start_step!r}")
        return start

    def _predict_x0(self, x: torch.Tensor, eps: torch.Tensor, abar: float) -> torch.Tensor:
        x0 = (x - math.sqrt(1.0 - abar) * eps) / math.sqrt(abar)
        return x0 if self.clip_x0 is None else x0.clamp(-self.clip_x0, self.clip_x0)

    @staticmethod
    def _steps_tensor(x: torch.Tensor, t: int) -> torch.Tensor:
        return torch.full((x.shape[0],), t, dtype=torch.int64, device=x.device)

    @staticmethod
    def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else x.device
        return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)

    def timesteps(self, start_step: int | None = None) -> list[int]:
        raise NotImplementedError

    def n_evaluations(self, start_step: int | None = None) -> int:
        """Calls to ``denoise`` per sample (the cost that DDIM cuts)."""
        return len(self.timesteps(start_step))


class DDPMSampler(_Sampler):
    """Ancestral sampling (Ho et al. 2020): every step from ``start`` down to 0.

    ``variance``: ``"posterior"`` (default) uses ``beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t``,
    the variance of ``q(x_{t-1} | x_t, x_0)``: Ho et al.'s lower bound, exact when the data is a point,
    and what DDIM with eta = 1 reproduces. ``"beta"`` uses ``beta_t`` (their upper bound, exact for
    N(0, I) data). No noise is added at the last step (t = 0) in either case.
    """

    def __init__(self, schedule: NoiseSchedule, *, variance: str = "posterior", clip_x0: float | None = None):
        super().__init__(schedule, clip_x0)
        if variance not in DDPM_VARIANCES:
            raise EmoaugError(f"DDPM sampler: variance must be one of {', '.join(DDPM_VARIANCES)}, got {variance!r}")
        self.variance = variance

    def timesteps(self, start_step: int | None = None) -> list[int]:
        return list(range(self._start(start_step), -1, -1))

    @torch.no_grad()
    def sample(self, denoise: Denoiser, x: torch.Tensor, *, generator: torch.Generator | None = None,
               start_step: int | None = None) -> torch.Tensor:
        for t in self.timesteps(start_step):
            x = self.step(denoise(x, self._steps_tensor(x, t)), t, x, generator)
        return x

    def step(self, eps: torch.Tensor, t: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``x_{t-1}`` from ``x_t``: posterior mean at the predicted ``x0`` plus noise of the chosen variance."""
        s = self.schedule
        abar, abar_prev, beta = s.alpha_bar(t), s.alpha_bar(t - 1), float(s.betas[t])
        x0 = self._predict_x0(x, eps, abar)
        # mean of q(x_{t-1} | x_t, x0) (Ho et al. eq. 7)
        coef_x0 = math.sqrt(abar_prev) * beta / (1.0 - abar)
        coef_xt = math.sqrt(1.0 - beta) * (1.0 - abar_prev) / (1.0 - abar)
        mean = coef_x0 * x0 + coef_xt * x
        if t == 0:
            return mean
        var = beta * (1.0 - abar_prev) / (1.0 - abar) if self.variance == "posterior" else beta
        return mean + math.sqrt(var) * self._noise(x, generator)


class DDIMSampler(_Sampler):
    """Denoising diffusion implicit models (Song et al. 2021) on a subsequence of ``steps`` timesteps.

    ``eta`` scales the noise: 0 = deterministic (the DDIM ODE-like sampler), 1 with every step =
    DDPM with the posterior variance. ``spacing`` picks the subsequence of ``[0, start]``:

    * ``"uniform"``: ``round(linspace(0, start, steps))``, both ends included (the DDIM paper's uniform
      stride); its last step reaches t = 0.
    * ``"trailing"`` (default; Lin et al. 2024, "Common diffusion noise schedules and sample steps are
      flawed"): ``round((start + 1) * (1 - k / steps)) - 1`` for ``k = 0..steps-1``, which starts exactly at
      ``start`` and leaves the smallest stride at the clean end, where few-step sampling gains most.

    With ``steps >= start + 1`` both give every step. For a partial start (enhance), the number of
    steps is scaled to the fraction of the chain that is run, so the stride stays the same.
    """

    def __init__(self, schedule: NoiseSchedule, steps: int = 50, eta: float = 0.0, *, spacing: str = "trailing",
                 clip_x0: float | None = None):
        super().__init__(schedule, clip_x0)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise EmoaugError(f"DDIM sampler: steps must be an integer >= 1, got {steps!r}")
        if not eta >= 0:
            raise EmoaugError(f"DDIM sampler: eta must be >= 0, got {eta!r}")
        if spacing not in SPACINGS:
            raise EmoaugError(f"DDIM sampler: spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")
        self.steps, self.eta, self.spacing = int(steps), float(eta), spacing

    def timesteps(self, start_step: int | None = None) -> list[int]:
        start = self._start(start_step)
        span = start + 1
        n = min(span, max(1, round(self.steps * span / self.schedule.num_timesteps)))
        if self.spacing == "uniform":
            grid = np.round(np.linspace(0, start, n)) if n > 1 else np.array([start])
        else:
            grid = np.round(span - np.arange(n) * (span / n)) - 1  # exactly n values, the last >= 0
        return sorted({int(t) for t in grid}, reverse=True)

    @torch.no_grad()
    def sample(self, denoise: Denoiser, x: torch.Tensor, *, generator: torch.Generator | None = None,
               start_step: int | None = None) -> torch.Tensor:
        steps = self.timesteps(start_step)
        for k, t in enumerate(steps):
            t_prev = steps[k + 1] if k + 1 < len(steps) else -1  # -1: clean data (abar = 1)
            x = self.step(denoise(x, self._steps_tensor(x, t)), t, t_prev, x, generator)
        return x

    def step(self, eps: torch.Tensor, t: int, t_prev: int, x: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
        """Song et al. eq. 12: ``x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z``."""
        s = self.schedule
        abar, abar_prev = s.alpha_bar(t), s.alpha_bar(t_prev)
        x0 = self._predict_x0(x, eps, abar)
        if self.clip_x0 is not None:
            # keep eps consistent with the clipped x0 (as diffusers does)
            eps = (x - math.sqrt(abar) * x0) / math.sqrt(1.0 - abar)
        sigma = self.eta * math.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))
        direction = math.sqrt(max(1.0 - abar_prev - sigma**2, 0.0)) * eps
        out = math.sqrt(abar_prev) * x0 + direction
        if sigma > 0:
            out = out + sigma * self._noise(x, generator)
        return out


SAMPLERS = ("ddim", "ddpm")


def make_sampler(name: str, schedule: NoiseSchedule, *, steps: int = 50, eta: float = 0.0,
                 spacing: str = "trailing", ddpm_variance: str = "posterior",
                 clip_x0: float | None = None) -> DDPMSampler | DDIMSampler:
    """Sampler by config name; ``steps``/``eta``/``spacing`` apply to DDIM only."""
    if name == "ddpm":
        return DDPMSampler(schedule, variance=ddpm_variance, clip_x0=clip_x0)
    if name == "ddim":
        return DDIMSampler(schedule, steps, eta, spacing=spacing, clip_x0=clip_x0)
    raise EmoaugError(f"generator 'diffusion': sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")
