"""The integrations file: defaults without one, the example file, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.config import IntegrationsConfig
from ledger.exceptions import ConfigurationError
from ledger.values import QACycle

EXAMPLE = Path(__file__).parents[2] / "docs" / "integrations.example.toml"


def test_no_file_gives_the_documented_defaults() -> None:
    """Without a file, version names are train ids and cycles match phase 1/2 and golden."""
    config = IntegrationsConfig.load(None)

    assert config.jira.train_for("5.5") == "5.5"
    assert config.jira.train_for("Objects 5.5") is None
    assert config.qtest.train_for("Release 5.5") == "5.5"
    assert config.qtest.cycle_for("Phase 2 regression") == QACycle.PHASE2


def test_the_example_file_loads_and_maps_what_it_says() -> None:
    """docs/integrations.example.toml is a valid file: its example entries take effect."""
    config = IntegrationsConfig.load(EXAMPLE)

    assert config.jira.train_for("Objects 5.5") == "5.5"
    assert config.jira.train_for("Spring release", projects=["OBJ"]) == "5.6"
    assert config.jira.train_for("Spring release", projects=["NAS"]) is None
    assert config.qtest.train_for("objects ga") == "5.5"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[jira\nversions = 1", "not valid TOML"),
        ('[jira]\nversions = { "Objects 5.5" = "five" }', "jira.versions"),
        ("[qtest.cycles]\ngolden = '('", "qtest.cycles.golden"),
        ("[confluence]\nspace = 'REL'", "confluence"),
    ],
)
def test_a_wrong_file_is_refused_naming_the_file_and_the_setting(
    tmp_path: Path, text: str, named: str
) -> None:
    """Bad TOML, a version mapped to no train id, a broken pattern, an unknown section."""
    path = tmp_path / "integrations.toml"
    path.write_text(text)

    with pytest.raises(ConfigurationError, match=named) as refused:
        IntegrationsConfig.load(path)
    assert str(path) in str(refused.value)


def test_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    """A path that does not exist is a configuration error, not a traceback."""
    with pytest.raises(ConfigurationError, match="cannot read LEDGER_INTEGRATIONS_FILE"):
        IntegrationsConfig.load(tmp_path / "missing.toml")
