"""Mel-spectrogram diffusion (Kim & Lee 2024): model-agnostic schedules and samplers, the 2-D and 1-D U-Nets, the
generator.

The registry (emoaug.generators) names ``DiffusionGenerator`` as the ``diffusion`` generator.
"""

from __future__ import annotations

from .generator import DiffusionGenerator, classifier_free_guidance
from .samplers import DDIMSampler, DDPMSampler, make_sampler
from .schedules import NoiseSchedule, cosine_alpha_bar, cosine_schedule, linear_schedule, make_schedule
from .unet import UNet, unet
from .unet1d import UNet1d, unet1d

__all__ = [
    "DDIMSampler",
    "DDPMSampler",
    "DiffusionGenerator",
    "NoiseSchedule",
    "UNet",
    "UNet1d",
    "classifier_free_guidance",
    "cosine_alpha_bar",
    "cosine_schedule",
    "linear_schedule",
    "make_sampler",
    "make_schedule",
    "unet",
    "unet1d",
]
