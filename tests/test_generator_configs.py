"""Typed generator configs: profile presets resolve to the same configs as before, and every option error
is one line raised before any audio is read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from emoaug.bench.resolve import resolve_generator_configs, resolve_run_config
from emoaug.cli import main
from emoaug.generators import get_generator_class
from emoaug.generators.base import Generator
from emoaug.generators.options import keyed_dict
from emoaug.generators.spec import GeneratorSpec
from emoaug.storage import stable_hash

README = Path(__file__).resolve().parents[1] / "README.md"

PROFILES = ("smoke", "quick", "paper")
BUILTINS = ("cyclegan", "dcgan", "diffusion", "none", "specaugment", "vae")

# Captured from the untyped implementation (per-generator PROFILE_DEFAULTS dicts) at commit aec58b2 with
# resolve_generator_configs([name], profile, []) and json.dumps(sort_keys=True, separators=(",", ":")), the
# serialisation stable_hash uses: these dicts enter every cell's and checkpoint's key, so they must not change.
# One deliberate change since: `paper` dcgan and diffusion (issue 25: Kim & Lee's Table 4 1-D U-Net and training
# lengths sized to 12 GPU-hours per corpus; `paper-full` keeps the published lengths, pinned below).
UNTYPED_RESOLVED = {
    ('smoke', 'cyclegan'): '{"batch_size":4,"beta1":0.5,"beta2":0.999,"channels":4,"crop_frames":64,"disc_channels":8,"generate_batch_size":32,"identity_steps":null,"lambda_cls":2.0,"lambda_cyc":10.0,"lambda_id":5.0,"lr_d":0.0002,"lr_g":0.0005,"n_blocks":1,"residual_channels":32,"residual_output":true,"source_emotion":"neutral","steps":4}',
    ('smoke', 'dcgan'): '{"batch_size":8,"beta1":0.5,"beta2":0.999,"bn_batches":2,"d_steps":1,"d_widths":[8,16],"g_upsample":"transposed","g_widths":[16,8],"log_every":5,"loss":"hinge","lr_d":0.0002,"lr_g":0.0002,"noise_dim":16,"range_margin":0.05,"steps":20}',
    ('smoke', 'diffusion'): '{"attention_at":[],"base_channels":8,"batch_size":8,"beta_end":0.02,"beta_start":0.0001,"channel_mults":[1,2],"clip_x0":"auto","cond_dim":16,"cosine_s":0.008,"ddpm_variance":"posterior","dropout":0.0,"ema_decay":0.0,"enhance_t0":0.3,"eta":0.0,"grad_clip":1.0,"groups":8,"guidance_scale":2.0,"heads":4,"lr":0.001,"micro_batch_size":null,"mid_attention":true,"mode":"synthesize","num_res_blocks":1,"p_uncond":0.1,"patch_size":8,"prediction":"v","sample_batch_size":64,"sampler":"ddim","sampling_steps":4,"schedule":"linear","ser_batch_size":32,"ser_channels":8,"ser_epochs":1,"ser_holdout":0.2,"ser_lr":0.001,"ser_lstm_hidden":8,"ser_patience":5,"spacing":"trailing","stem_channels":0,"style_channels":4,"style_dim":8,"timesteps":1000,"train_steps":4,"warmup_steps":1,"weight_decay":0.0}',
    ('smoke', 'none'): '{}',
    ('smoke', 'specaugment'): '{"freq_masks":2,"mask_value":"mean","max_freq_fraction":0.3375,"max_freq_width":27,"max_time_fraction":0.2,"max_time_width":40,"time_masks":2}',
    ('smoke', 'vae'): '{"batch_size":8,"beta":0.1,"class_embedding":16,"grad_clip":0.5,"latent_dim":32,"latent_noise":1.0,"log_every":5,"lr":0.001,"mode":"prior","recon_loss":"l1","spectral_weight":1.0,"steps":20,"temperature":1.0,"widths":[8,16]}',
    ('quick', 'cyclegan'): '{"batch_size":8,"beta1":0.5,"beta2":0.999,"channels":8,"crop_frames":64,"disc_channels":64,"generate_batch_size":32,"identity_steps":100,"lambda_cls":2.0,"lambda_cyc":10.0,"lambda_id":5.0,"lr_d":0.0002,"lr_g":0.0005,"n_blocks":3,"residual_channels":128,"residual_output":true,"source_emotion":"neutral","steps":600}',
    ('quick', 'dcgan'): '{"batch_size":16,"beta1":0.5,"beta2":0.999,"bn_batches":8,"d_steps":1,"d_widths":[16,32,64,128],"g_upsample":"transposed","g_widths":[128,64,32,16],"log_every":25,"loss":"hinge","lr_d":0.0002,"lr_g":0.0002,"noise_dim":64,"range_margin":0.05,"steps":200}',
    ('quick', 'diffusion'): '{"attention_at":[],"base_channels":16,"batch_size":16,"beta_end":0.02,"beta_start":0.0001,"channel_mults":[1,2,4],"clip_x0":"auto","cond_dim":64,"cosine_s":0.008,"ddpm_variance":"posterior","dropout":0.0,"ema_decay":0.99,"enhance_t0":0.3,"eta":0.0,"grad_clip":1.0,"groups":8,"guidance_scale":2.0,"heads":4,"lr":0.001,"micro_batch_size":null,"mid_attention":true,"mode":"synthesize","num_res_blocks":1,"p_uncond":0.1,"patch_size":4,"prediction":"v","sample_batch_size":64,"sampler":"ddim","sampling_steps":15,"schedule":"linear","ser_batch_size":32,"ser_channels":32,"ser_epochs":20,"ser_holdout":0.2,"ser_lr":0.001,"ser_lstm_hidden":32,"ser_patience":5,"spacing":"trailing","stem_channels":0,"style_channels":16,"style_dim":32,"timesteps":1000,"train_steps":300,"warmup_steps":50,"weight_decay":0.0}',
    ('quick', 'none'): '{}',
    ('quick', 'specaugment'): '{"freq_masks":2,"mask_value":"mean","max_freq_fraction":0.3375,"max_freq_width":27,"max_time_fraction":0.2,"max_time_width":40,"time_masks":2}',
    ('quick', 'vae'): '{"batch_size":16,"beta":0.1,"class_embedding":16,"grad_clip":0.5,"latent_dim":32,"latent_noise":1.0,"log_every":25,"lr":0.001,"mode":"prior","recon_loss":"l1","spectral_weight":1.0,"steps":100,"temperature":1.0,"widths":[16,32,64]}',
    ('paper', 'cyclegan'): '{"batch_size":1,"beta1":0.5,"beta2":0.999,"channels":128,"crop_frames":128,"disc_channels":128,"generate_batch_size":32,"identity_steps":10000,"lambda_cls":2.0,"lambda_cyc":10.0,"lambda_id":5.0,"lr_d":0.0001,"lr_g":0.0002,"n_blocks":6,"residual_channels":512,"residual_output":true,"source_emotion":"neutral","steps":200000}',
    ('paper', 'dcgan'): '{"batch_size":64,"beta1":0.5,"beta2":0.999,"bn_batches":32,"d_steps":1,"d_widths":[128,256,512,1024],"g_upsample":"transposed","g_widths":[1024,512,256,128],"log_every":200,"loss":"hinge","lr_d":0.0002,"lr_g":0.0002,"noise_dim":100,"range_margin":0.05,"steps":10000}',
    ('paper', 'diffusion'): '{"attention_at":[0,1],"base_channels":256,"batch_size":32,"beta_end":0.02,"beta_start":0.0001,"channel_mults":[1,2,4],"clip_x0":"auto","cond_dim":512,"cosine_s":0.008,"ddpm_variance":"posterior","dropout":0.0,"ema_decay":0.9999,"enhance_t0":0.3,"eta":0.0,"grad_clip":1.0,"groups":32,"guidance_scale":2.0,"heads":8,"lr":0.0001,"micro_batch_size":null,"mid_attention":true,"mode":"synthesize","num_res_blocks":1,"p_uncond":0.1,"patch_size":1,"prediction":"eps","sample_batch_size":32,"sampler":"ddim","sampling_steps":50,"schedule":"linear","ser_batch_size":32,"ser_channels":128,"ser_epochs":50,"ser_holdout":0.2,"ser_lr":0.001,"ser_lstm_hidden":128,"ser_patience":10,"spacing":"trailing","stem_channels":0,"style_channels":32,"style_dim":128,"timesteps":1000,"train_steps":67000,"unet":"1d","warmup_steps":1000,"weight_decay":0.0}',
    ('paper', 'none'): '{}',
    ('paper', 'specaugment'): '{"freq_masks":2,"mask_value":"mean","max_freq_fraction":0.3375,"max_freq_width":27,"max_time_fraction":0.2,"max_time_width":40,"time_masks":2}',
    ('paper', 'vae'): '{"batch_size":16,"beta":0.1,"class_embedding":16,"grad_clip":0.5,"latent_dim":32,"latent_noise":1.0,"log_every":200,"lr":0.0003,"mode":"prior","recon_loss":"l1","spectral_weight":1.0,"steps":30000,"temperature":1.0,"widths":[32,64,128,256]}',
}

PAPER_FULL = {
    'dcgan': '{"batch_size":64,"beta1":0.5,"beta2":0.999,"bn_batches":32,"d_steps":1,"d_widths":[128,256,512,1024],"g_upsample":"transposed","g_widths":[1024,512,256,128],"log_every":200,"loss":"hinge","lr_d":0.0002,"lr_g":0.0002,"noise_dim":100,"range_margin":0.05,"steps":30000}',
    'diffusion': '{"attention_at":[0,1],"base_channels":256,"batch_size":32,"beta_end":0.02,"beta_start":0.0001,"channel_mults":[1,2,4],"clip_x0":"auto","cond_dim":512,"cosine_s":0.008,"ddpm_variance":"posterior","dropout":0.0,"ema_decay":0.9999,"enhance_t0":0.3,"eta":0.0,"grad_clip":1.0,"groups":32,"guidance_scale":2.0,"heads":8,"lr":0.0001,"micro_batch_size":null,"mid_attention":true,"mode":"synthesize","num_res_blocks":1,"p_uncond":0.1,"patch_size":1,"prediction":"eps","sample_batch_size":32,"sampler":"ddim","sampling_steps":50,"schedule":"linear","ser_batch_size":32,"ser_channels":128,"ser_epochs":50,"ser_holdout":0.2,"ser_lr":0.001,"ser_lstm_hidden":128,"ser_patience":10,"spacing":"trailing","stem_channels":0,"style_channels":32,"style_dim":128,"timesteps":1000,"train_steps":200000,"unet":"1d","warmup_steps":1000,"weight_decay":0.0}',
}


@pytest.mark.parametrize("name", BUILTINS)
def test_paper_full_is_paper_with_the_published_training_lengths(name):
    resolved = resolve_generator_configs([name], "paper-full", [])[name]
    keyed = json.dumps(keyed_dict(get_generator_class(name).Config, resolved), sort_keys=True, separators=(",", ":"))
    assert keyed == PAPER_FULL.get(name, UNTYPED_RESOLVED[("paper", name)])


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", BUILTINS)
def test_profiles_resolve_to_the_configs_of_the_untyped_implementation(name, profile):
    """What keys hash (``keyed_dict``: options added later, declared ``keyed_at_default=False``, are left out
    while at their default) is what the untyped implementation hashed."""
    resolved = resolve_generator_configs([name], profile, [])[name]
    keyed = keyed_dict(get_generator_class(name).Config, resolved)
    expected = json.loads(UNTYPED_RESOLVED[(profile, name)])
    assert json.dumps(keyed, sort_keys=True, separators=(",", ":")) == UNTYPED_RESOLVED[(profile, name)]
    assert stable_hash(keyed) == stable_hash(expected)


def test_an_option_added_later_enters_keys_only_away_from_its_default():
    quick = resolve_generator_configs(["diffusion"], "quick", [])["diffusion"]
    one_d = resolve_generator_configs(["diffusion"], "quick", ["diffusion.unet=1d"])["diffusion"]
    assert quick["unet"] == "2d"  # recorded with the run (config.json) ...
    pinned = json.loads(UNTYPED_RESOLVED[("quick", "diffusion")])
    pinned.pop("micro_batch_size")  # an execution option: never keyed
    def identity(config: dict) -> dict:
        return GeneratorSpec.resolve("diffusion", config).identity()

    assert identity(quick)["config"] == pinned
    assert identity(one_d)["config"]["unet"] == "1d"  # ... keyed only when not 2d
    assert stable_hash(identity(quick)) != stable_hash(identity(one_d))


# ------------------------------------------------------------------------------------------ option errors
class PluginWithoutConfig(Generator):
    """Declares no Config: it takes no options."""

    name = "no_config"


class PluginWithProfileDefaults(Generator):
    """The old way of giving per-profile values, which nothing reads any more."""

    name = "old_style"
    PROFILE_DEFAULTS = {"quick": {"sigma": 0.1}}


@pytest.fixture
def readme_plugin(tmp_path, monkeypatch):
    """The README's example plugin, as written there, importable as ``readme_plugin:NoisyCopies``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (tmp_path / "readme_plugin.py").write_text(next(b for b in blocks if "class NoisyCopies" in b))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "readme_plugin:NoisyCopies"


@pytest.fixture
def no_audio_read(monkeypatch):
    """Any attempt to read audio fails the test: option errors must come before."""
    import emoaug.audio

    def refuse(*args, **kwargs):
        raise AssertionError("audio was read before the option error")

    for reader in ("probe_audio", "read_audio", "load_mono"):
        monkeypatch.setattr(emoaug.audio, reader, refuse)


def the_error_line(err: str) -> str:
    """The one line of stderr that reports the error (info lines such as "--gen: added none" may precede it)."""
    errors = [line for line in err.splitlines() if line.startswith("emoaug: error:")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err  # the error is one line, and the last
    return errors[0]


THIS = __name__  # plugins below are passed as import paths, e.g. tests.test_generator_configs:PluginWithoutConfig


@pytest.mark.parametrize(
    ("gen", "option", "says"),
    [
        ("diffusion", "diffusion.sampling_step=5", "generator 'diffusion': unknown option 'sampling_step' "
                                                   "(did you mean 'sampling_steps'?)"),
        ("diffusion", "diffusion.sampling_steps=many", "sampling_steps must be an integer >= 1, got 'many'"),
        ("diffusion", "diffusion.sampling_steps=2.5", "sampling_steps must be an integer >= 1, got '2.5'"),
        ("diffusion", "diffusion.p_uncond=1.5", "p_uncond must be a finite number >= 0 and < 1, got '1.5'"),
        ("diffusion", "diffusion.sampler=euler", "sampler must be one of 'ddim', 'ddpm', got 'euler'"),
        ("diffusion", "diffusion.heads=3", "heads=3 must divide the attention width 64"),
        ("diffusion", "diffusion.unet=3d", "unet must be one of '2d', '1d', got '3d'"),
        ("dcgan", "dcgan.g_widths=16,8,4", "g_widths and d_widths must have the same length"),
        ("cyclegan", "cyclegan.residual_output=maybe", "residual_output must be true or false, got 'maybe'"),
        (f"{THIS}:PluginWithoutConfig", f"{THIS}:PluginWithoutConfig.sigma=1",
         "generator 'no_config' takes no options, got sigma"),
        (f"{THIS}:PluginWithProfileDefaults", None, "generator 'old_style': PROFILE_DEFAULTS is no longer read"),
    ],
)
def test_option_errors_are_one_line_before_any_audio_is_read(no_audio_read, tmp_path, capsys, gen, option, says):
    args = ["--corpus", "synthetic", "--gen", gen, "--out", str(tmp_path / "runs"), "--no-mlflow"]
    code = main([*args, *(["--gen-opt", option] if option else [])])
    assert code == 2 and says in the_error_line(capsys.readouterr().err)


def test_the_readme_plugins_mistyped_option_is_one_line_before_any_audio_is_read(readme_plugin, no_audio_read,
                                                                                  tmp_path, capsys):
    code = main(["--corpus", "synthetic", "--gen", readme_plugin, "--gen-opt", f"{readme_plugin}.sigmaa=1",
                 "--out", str(tmp_path / "runs"), "--no-mlflow"])
    assert code == 2
    assert "generator 'noisy': unknown option 'sigmaa' (did you mean 'sigma'?)" in the_error_line(capsys.readouterr().err)
    config = resolve_run_config(gen=["none", readme_plugin], gen_opt=[f"{readme_plugin}.sigma=0.3"], profile="smoke")
    assert config.experiment.generator_configs[readme_plugin] == {"sigma": 0.3}


def test_gen_opt_strings_become_the_options_types():
    options = ["diffusion.channel_mults=1,2", "diffusion.mid_attention=false", "diffusion.micro_batch_size=null",
               "diffusion.enhance_t0=10", "diffusion.clip_x0=2", "diffusion.attention_at=[1]"]
    config = resolve_run_config(gen=["diffusion"], gen_opt=options, profile="smoke").experiment.generator_configs["diffusion"]
    assert (config["channel_mults"], config["mid_attention"], config["micro_batch_size"]) == ([1, 2], False, None)
    assert (config["enhance_t0"], config["clip_x0"], config["attention_at"]) == (10, 2.0, [1])
    assert isinstance(config["enhance_t0"], int) and isinstance(config["clip_x0"], float)


def test_generators_built_directly_check_their_options_in_one_line():
    from emoaug.errors import EmoaugError
    from emoaug.generators.diffusion import DiffusionGenerator
    from emoaug.generators.specaugment import SpecAugment

    for build, says in [(lambda: SpecAugment(freq_maks=1), "did you mean 'freq_masks'?"),
                        (lambda: SpecAugment(time_masks=True), "time_masks must be an integer >= 0, got True"),
                        (lambda: DiffusionGenerator(enhance_t0=1.5), "enhance_t0 as a fraction must be in (0, 1]"),
                        (lambda: DiffusionGenerator(attention_at=(3,)), "attention_at levels [3] do not exist")]:
        with pytest.raises(EmoaugError) as err:
            build()
        assert says in str(err.value) and "\n" not in str(err.value)
    assert SpecAugment(time_masks=np.int64(1)).options.time_masks == 1


# ------------------------------------------------------------------------------------------ listing
def test_list_gen_prints_each_option_with_type_bounds_profile_defaults_and_doc(capsys):
    assert main(["list", "--gen", "diffusion"]) == 0
    out = capsys.readouterr().out
    assert ("  sampling_steps (int, >= 1) = smoke 4 | quick 15 | paper 50 | paper-full 50\n"
            "      sampler steps per generated row") in out
    assert "  unet (str, one of '2d', '1d') = smoke \"2d\" | quick \"2d\" | paper \"1d\" | paper-full \"1d\"" in out
    assert "  clip_x0 (float | str | None, > 0; one of 'auto') = \"auto\"" in out
    assert main(["list", "--gen", "diffusion", "--json"]) == 0
    listed = {o["name"]: o for o in json.loads(capsys.readouterr().out)["options"]}
    assert listed["channel_mults"]["defaults"] == {"smoke": [1, 2], "quick": [1, 2, 4], "paper": [1, 2, 4],
                                                   "paper-full": [1, 2, 4]}
    assert "left out of cell keys" in listed["micro_batch_size"]["doc"]
