"""The ledger as a user installs it: the built wheel in a clean virtualenv, on PostgreSQL.

``scripts/check_installed.py`` (run by ``.ci/run``) goes on to the demo, verify and serve;
this keeps the part a broken package fails first inside ``make test``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.config import Database
from projections.schema import check_current, engine_for
from scripts.check_installed import ROOT, build_wheel, install_wheel, run, user_environment

pytestmark = [pytest.mark.installed, pytest.mark.postgres]


def test_the_wheel_in_a_clean_virtualenv_upgrades_postgres(
    postgres_url: str, tmp_path: Path
) -> None:
    """`ledger db upgrade` from the installed wheel, outside the tree, brings PostgreSQL to head."""
    ledger = install_wheel(build_wheel(tmp_path / "dist"), tmp_path / "venv")
    env = user_environment(postgres_url)

    run([str(ledger), "db", "upgrade"], cwd=tmp_path, env=env)

    imported = run(
        [str(ledger.with_name("python")), "-c", "import projections; print(projections.__file__)"],
        cwd=tmp_path,
        env=env,
    ).stdout.strip()
    assert Path(imported).is_relative_to(tmp_path / "venv"), imported
    assert not Path(imported).is_relative_to(ROOT)
    engine = engine_for(Database.from_url(postgres_url))
    try:
        check_current(engine)
    finally:
        engine.dispose()
