# The two commands of the quick start; each makes .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test browser check-installed lint audit reliability bench bench-api bench-webhooks clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Token names are never reused, so each run makes a new admin token named for the moment.
run: $(STAMP)
	$(BIN)/ledger demo
	$(BIN)/ledger verify
	@echo "Your admin token for this server (shown once; export it as TOKEN):"
	@$(BIN)/ledger token create --name "local-admin-$$(date +%Y%m%d-%H%M%S)" --role admin
	$(BIN)/ledger serve

# The browser first: a machine without one stops here in seconds, not after the suite.
test: $(STAMP) browser lint audit
	$(BIN)/pytest

# A Chromium for the browser tests: the system's, or Playwright's own, fetched if need be.
browser: $(STAMP)
	@$(BIN)/python scripts/find_chromium.py --install

# The package as a user installs it: the built wheel in a new virtualenv outside the tree,
# then db upgrade, demo, verify and a serve readiness probe on PostgreSQL
# ($$LEDGER_TEST_DATABASE_URL, else the server on 127.0.0.1:5432).
check-installed: $(STAMP)
	$(BIN)/python scripts/check_installed.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Known vulnerabilities in the installed packages fail it; an unreachable vulnerability
# database only warns, so an offline build still passes and says it was not checked.
audit: $(STAMP)
	$(BIN)/python scripts/audit_dependencies.py

# The reliability suite at ten times its CI size; its figures go to reliability-figures.jsonl
# (docs/reliability.md). `make test` runs the same suite at CI size.
reliability: $(STAMP)
	rm -f reliability-figures.jsonl
	LEDGER_RELIABILITY_SCALE=large LEDGER_RELIABILITY_REPORT=reliability-figures.jsonl \
		$(BIN)/pytest -s -p no:cacheprovider tests/reliability

bench: $(STAMP)
	$(BIN)/python bench/append.py

bench-api: $(STAMP)
	$(BIN)/python bench/api.py

bench-webhooks: $(STAMP)
	$(BIN)/python bench/webhooks.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
