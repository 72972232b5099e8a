"""``tvoice models serve`` finds the offline plugins through the ``tvoice.plugins`` entry points,
as every tool of the framework should: tvoice never imports a plugin by name."""

import pytest

from tvoice.cli._models_command import _plugin


def test_the_offline_plugins_are_found_by_their_entry_points():
    assert _plugin("llamacpp").__name__ == "tvoice_plugins.llamacpp"
    assert _plugin("whisper").__name__ == "tvoice_plugins.whisper"
    assert _plugin("piper").__name__ == "tvoice_plugins.piper"


def test_a_plugin_that_is_not_installed_says_what_to_install():
    with pytest.raises(
        SystemExit, match=r"no tvoice plugin 'nothing': pip install 'tvoice\[offline\]'"
    ):
        _plugin("nothing")
