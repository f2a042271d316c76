"""Jira and QTest: verified deliveries, their inbox, and their mapping to ledger commands."""
