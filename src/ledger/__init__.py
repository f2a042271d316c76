"""Release Ledger: an event-sourced ledger of release trains."""
