# Annulus: the two commands of the README, plus a few helpers.
#   make demo   - create .venv, install, migrate, fill a demo trial, serve on http://127.0.0.1:$(PORT)
#   make test   - the whole test suite (SQLite by default; DATABASE_URL=postgres://... for PostgreSQL)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
KNEE_PORT ?= 8001
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo demo-knee test test-fast bench trace serve clean-demo chromium fonts

# The demo and the server install what Annulus needs to run; the test tools (pytest, Playwright,
# schemathesis, ...) only come with `make test`.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(TEST_STAMP)

demo: $(STAMP) fonts
	PORT=$(PORT) $(BIN)/annulus demo --port $(PORT)

# the second shipped protocol (knee osteoarthritis, kits, three sites) in its own database
demo-knee: $(STAMP) fonts
	ANNULUS_VAR_DIR=var/knee-oa-drug $(BIN)/annulus demo --port $(KNEE_PORT) --protocol protocols/knee-oa-drug.yaml

serve: $(STAMP)
	$(BIN)/annulus serve --port $(PORT)

# The PDFs (sachet label, emergency letter, DSMB reports) are bilingual: a Chinese font is installed
# when none is there and we may (root + apt).
fonts:
	@fc-list :lang=zh 2>/dev/null | grep -q . || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei >/dev/null) || \
	  echo "no Chinese font installed: Chinese text in PDFs will not show"; }

# Browser tests drive Debian's chromium; install it when it is missing and we may (root + apt).
# And poppler-utils, whose pdftotext lets the tests read PDF reports page by page.
chromium: fonts
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: browser tests will be skipped"; }
	@command -v pdftotext >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null) || \
	  echo "poppler-utils not installed: the tests that read PDF pages will be skipped"; }

REQUIREMENTS ?= ../shared/protocol/REQUIREMENTS.md

# The traceability table is read from the test files (nothing runs), so it is written first and
# pytest's summary stays the last line of the run.
test: $(TEST_STAMP) chromium
	@if [ -f "$(REQUIREMENTS)" ]; then $(BIN)/annulus trace --requirements "$(REQUIREMENTS)"; \
	else echo "traceability: $(REQUIREMENTS) not found; docs/traceability.md left as it is"; fi
	$(BIN)/python -m pytest -p no:cacheprovider -q -n auto --dist loadgroup

test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -q -m "not browser and not slow" -x

# Benchmarks print figures; they are not tests and are never run by `make test`.
bench: $(STAMP)
	$(BIN)/annulus bench pages --subjects 100,10000
	$(BIN)/annulus bench mmrm
	$(BIN)/annulus bench crf
	$(BIN)/annulus bench power

trace: $(STAMP)
	$(BIN)/annulus trace --requirements "$(REQUIREMENTS)"

clean-demo:
	rm -f var/annulus.sqlite3 var/knee-oa-drug/annulus.sqlite3
