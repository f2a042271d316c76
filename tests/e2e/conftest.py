"""A real ``ledger serve`` process on a fresh PostgreSQL database, one per test module."""

from tests.served import served

__all__ = ["served"]
