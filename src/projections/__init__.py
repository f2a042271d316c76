"""Read models of the ledger: kept current from the log, rebuildable, queryable at any time."""
