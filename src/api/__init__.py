"""The HTTP API (v1): FastAPI over the ledger's application service and its projections."""
