# The two commands a newcomer types: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

# Serves the bot on 127.0.0.1:8080 with SQLite under data/ and the /dev endpoints on.
run: install
	mkdir -p data
	BOT_ENV=dev $(PY) run_bot.py serve --host 127.0.0.1 --port 8080

# The whole suite on SQLite, and on PostgreSQL where TEST_DATABASE_URL's server answers
# (in CI an absent PostgreSQL fails the run instead of skipping).
test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
