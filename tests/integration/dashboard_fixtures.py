"""The API app on SQLite holding the demo history, projected, shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from projections.projectors import PROJECTION_NAMES
from projections.runner import wait_for_position
from release_ledger.demo import load_demo
from tests.integration.test_api import Api, open_api

CATCH_UP_TIMEOUT = 60.0


def demo_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An app whose projections have applied the whole demo, with a token per role."""
    path: Path = tmp_path_factory.mktemp("demo") / "ledger.sqlite3"
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        open_api(f"sqlite:///{path}", monkeypatch) as api,
    ):
        load_demo(api.ledger)
        assert wait_for_position(
            api.engine, PROJECTION_NAMES, api.last_position(), CATCH_UP_TIMEOUT
        ), "the projections did not catch up with the demo"
        yield api
