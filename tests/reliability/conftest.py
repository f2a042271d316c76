"""The reliability suite: a real ``ledger serve`` on PostgreSQL under load, faults and
hostile input; each scenario ends with the audit of ``tests/reliability/audit.py``.

Sizes are bounded for CI; ``LEDGER_RELIABILITY_SCALE=large`` multiplies them for a
longer run (``make reliability``; figures in ``docs/reliability.md``).
"""

from tests.served import served

__all__ = ["served"]
