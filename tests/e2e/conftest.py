"""A real ``ledger serve`` process on a fresh PostgreSQL database, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.served import Served, serving


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """``ledger serve`` on a new PostgreSQL database, with a token per role."""
    with serving(request, postgres_server, tmp_path_factory) as server:
        yield server
