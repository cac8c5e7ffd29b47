"""emoaug.registry: one registry for generators, corpora, classifiers and presets; plugins by entry point."""

from __future__ import annotations

import sys

import pytest

from emoaug.classifiers import CLASSIFIERS
from emoaug.datasets import CORPORA, corpus_module
from emoaug.errors import EmoaugError
from emoaug.generators import GENERATORS
from emoaug.presets import PRESET_REGISTRY, get_preset
from emoaug.registry import Registry
from tests.helpers import fake_distribution

CORPUS_PLUGIN = '''
NAME = "toycorpus"
'''


@pytest.fixture
def corpus_plugin(tmp_path, monkeypatch):
    """A fake installed distribution declaring a corpus under the emoaug.corpora entry-point group."""
    fake_distribution(tmp_path, "emoaug_toy_corpus", CORPUS_PLUGIN, "emoaug.corpora", "toycorpus = emoaug_toy_corpus")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("emoaug_toy_corpus", None)


def test_every_kind_is_one_registry_with_one_line_errors():
    for registry, option in ((GENERATORS, "--gen"), (CORPORA, "--corpus"), (CLASSIFIERS, "--classifier"),
                             (PRESET_REGISTRY, "--preset")):
        assert isinstance(registry, Registry) and registry.names()
        with pytest.raises(EmoaugError, match=rf"^{option}: unknown {registry.kind} 'nope' \(available: ") as err:
            registry.get("nope")
        assert "\n" not in str(err.value)
    assert "classic" not in GENERATORS and "speed" in GENERATORS  # reserved names are never listed


def test_names_are_known_without_importing_and_loaded_on_first_use():
    registry = Registry("thing", "--thing", {"json": "json:dumps", "lazy": "emoaug_not_imported_yet:x"})
    assert registry.names() == ["json", "lazy"] and "lazy" in registry  # nothing imported to know it
    assert registry.get("json")({"a": 1}) == '{"a": 1}'
    with pytest.raises(EmoaugError, match="--thing: thing 'lazy' cannot be loaded"):
        registry.get("lazy")


def test_a_script_adds_its_own_entry():
    presets = Registry("preset", "--preset", {"emogen": get_preset("emogen")})
    presets.add("emogen_variant", get_preset("kim2024"))
    assert presets.names() == ["emogen", "emogen_variant"] and presets.get("emogen_variant").name == "kim2024"


def test_a_corpus_plugin_registers_by_entry_point(corpus_plugin):
    assert "toycorpus" in CORPORA.names()
    assert corpus_module("toycorpus").NAME == "toycorpus"
