# ExpertBook: `make run` to try it, `make test` to check it. See README.md.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
STAMP  := $(VENV)/.installed
PORT   ?= 5000

export EXPERTBOOK_ENV ?= development

.PHONY: install run test worker migrate demo bench screenshots clean

# caldav's HTTP library (niquests) brings urllib3-future, whose wheel replaces urllib3 for every package in the
# environment. Built from source with URLLIB3_NO_OVERRIDE it lives beside urllib3 instead (niquests uses it,
# requests keeps upstream urllib3); docs/operations.md says the same for production installs.
export URLLIB3_NO_OVERRIDE := 1
export PIP_NO_BINARY := urllib3-future

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## install: create .venv with the app and its test tools
install: $(STAMP)

## migrate: bring the database (DATABASE_URL, default instance/expertbook.sqlite3) up to date
migrate: install
	$(FLASK) db upgrade

## demo: load the demo data (idempotent) and print the demo logins
demo: migrate
	$(FLASK) demo

# Links in the emails the demo and the dev server write point at the port it serves on.
run demo: export BASE_URL ?= http://127.0.0.1:$(PORT)

## run: install, migrate, load demo data and serve on http://127.0.0.1:$(PORT) (make run PORT=5050)
run: demo
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

## worker: run the RQ worker that sends emails (needs REDIS_URL; without it emails go out in-process)
worker: migrate
	$(FLASK) worker

## test: run the whole suite; PostgreSQL and Redis on their local default ports are used unless
##       TEST_DATABASE_URL / REDIS_URL say otherwise; browser tests need chromium, the fleet test nginx
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

## bench: the app against the bare floor (../shared/bench) under wrk on PostgreSQL; see bench/README.md
bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk) \
		|| { echo "wrk is missing and could not be installed: run 'apt-get install wrk' as root" >&2; exit 1; }
	$(BIN)/python -m bench.run

## screenshots: regenerate docs/screenshots/*.png (starts and stops its own server on a throwaway demo database; needs chromium)
screenshots: install
	$(BIN)/python docs/screenshots/make_screenshots.py

clean:
	rm -rf $(VENV) instance .pytest_cache
