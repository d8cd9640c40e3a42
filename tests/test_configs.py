"""Configs by role: recipes at the top, overlays and data presets in subfolders, all composing."""

from __future__ import annotations

import warnings

import pytest

from conftest import CONFIGS

RECIPES = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
FAMILIES = {"unet": "UNet", "magphase": "MagnitudePhaseNetwork", "magnitude": "MagnitudeNetwork"}


def build(*configs: str, extra: tuple[str, ...] = ()):
    """The CLI's own parser and classes, nothing run."""
    from audiosr.training.cli import AudioSRCLI

    args = [a for c in configs for a in ("--config", str(CONFIGS / c))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AudioSRCLI(args=[*args, "--trainer.logger", "false", *extra], run=False)


def test_the_recipes_are_the_three_families():
    assert RECIPES == sorted(FAMILIES)
    assert {p.name for p in CONFIGS.iterdir() if p.is_dir()} == {"overlays", "data", "inputs"}


@pytest.mark.parametrize("recipe", RECIPES)
def test_debug_keeps_the_family_and_makes_it_small(recipe):
    full = build(f"{recipe}.yaml")
    small = build(f"{recipe}.yaml", "overlays/debug.yaml")
    assert type(small.model.network).__name__ == type(full.model.network).__name__ == FAMILIES[recipe]
    assert small.model.network.num_parameters() < 50_000 < full.model.network.num_parameters() / 20
    assert small.model.loss.weights == full.model.loss.weights  # only the sizes change
    assert small.trainer.max_steps == 4


@pytest.mark.parametrize("recipe", RECIPES)
def test_debug_shrinks_the_gan_discriminators_too(recipe):
    gan = build(f"{recipe}.yaml", "overlays/gan.yaml", "overlays/debug.yaml")
    members = gan.model.discriminators.members
    assert [type(d).__name__ for d in members] == ["MultiPeriodDiscriminator", "MultiBandSTFTDiscriminator"]
    assert sum(p.numel() for p in gan.model.discriminators.parameters()) < 100_000
    assert type(gan.model.network).__name__ == FAMILIES[recipe]


def test_a_recipe_that_builds_on_another_names_its_own_runs_and_network():
    magnitude = build("magnitude.yaml")
    magphase = build("magphase.yaml")
    assert type(magnitude.model.network).__name__ == "MagnitudeNetwork"
    assert magnitude.config.experiment == "magnitude"  # the file given, not the one it includes
    # Everything but the network comes from the magnitude + phase recipe.
    assert magnitude.model.loss.weights == magphase.model.loss.weights
    assert magnitude.datamodule.segment_frames == magphase.datamodule.segment_frames
    assert magnitude.config.trainer.max_steps == magphase.config.trainer.max_steps


def test_data_presets_compose_with_any_recipe(tmp_path):
    for recipe in RECIPES:
        vctk = build(f"{recipe}.yaml", "data/vctk_24_48.yaml", extra=("--data.corpus.root", str(tmp_path)))
        # The preset includes data/vctk.yaml: the run family is still the recipe's.
        assert vctk.config.experiment == recipe
        assert (vctk.datamodule.source_rate, vctk.datamodule.target_rate) == (24000, 48000)
        assert type(vctk.datamodule.corpus).__name__ == "VCTK"
        assert vctk.model.spec.source_rate == 24000  # linked from the data, never written twice


INPUTS = sorted(p.name for p in (CONFIGS / "inputs").glob("*.yaml"))


@pytest.mark.parametrize("preset", INPUTS)
def test_input_presets_set_how_the_test_inputs_are_made_and_nothing_else(preset):
    """`audiosr test --config RECIPE --config inputs/X.yaml`: the test split's low-rate inputs made the
    way the preset names (a resampler, a filter, a codec at a bitrate); training and validation unchanged."""
    import numpy as np

    plain, tested = build("magphase.yaml"), build("magphase.yaml", f"inputs/{preset}")
    made = tested.datamodule.degradations
    assert made["train"].describe() == plain.datamodule.degradations["train"].describe()
    assert made["val"].describe() == plain.datamodule.degradations["val"].describe()
    assert made["test"].describe() != plain.datamodule.degradations["test"].describe()
    words = preset.removesuffix(".yaml").replace("k", " kbps").split("-")
    assert words[0].replace("cheby8", "cheby1") in made["test"].describe()
    target = (0.1 * np.random.default_rng(0).standard_normal((1, 44100))).astype(np.float32)
    low, _ = made["test"](target, 22050, 44100, np.random.default_rng(0))
    assert low.shape == (1, 22050) and np.isfinite(low).all()
