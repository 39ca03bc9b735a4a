# One entry point for people and CI. Every target works on a fresh machine:
# it builds the virtualenv in .venv from nothing before doing anything else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`; `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2
# uv installs exactly what uv.lock names; the lock is changed only by `make lock`.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: all install lock outdated demo test check bench browser fonts deploy-tools clean

all: check test

$(STAMP): pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(UV) sync --quiet --locked --inexact --extra dev --python $(BIN)/python
	touch $(STAMP)

install: $(STAMP)

# Refresh uv.lock to the newest releases pyproject.toml's ranges allow; review, test, commit.
lock:
	test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv==$(UV_VERSION); }
	$(UV) lock --upgrade

# What uv.lock holds back: every locked package (direct or not) with a newer
# release on the index, once each. Read-only; `make lock` takes the newest
# releases pyproject.toml's ranges allow, a range's cap is raised by hand.
outdated: $(STAMP)
	$(UV) tree --outdated --locked > $(VENV)/tree-outdated.txt
	@grep -F '(latest:' $(VENV)/tree-outdated.txt | sed 's/^[│├└─ ]*//' | sort -u \
	  || echo "uv.lock: every package is at its latest release"

# Debian's Chromium drives the agent-console browser tests; Playwright's own
# browser download cannot work here, so the system one is used.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Debian's fonts embedded in the PDF copy of a customer's data (bot/access_pdf.py):
# DejaVu for Latin and Cyrillic, WenQuanYi Micro Hei for both Chinese scripts;
# poppler-utils (pdftoppm, pdftotext) for the tests that look at the PDF.
FONT_FILES := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
fonts:
	@{ missing=; for f in $(FONT_FILES); do test -f $$f || missing=1; done; \
	   test -z "$$missing" && command -v pdftoppm >/dev/null 2>&1; } || { \
	  echo "installing Debian's fonts and poppler-utils for the PDF copy"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    fonts-dejavu-core fonts-wqy-microhei poppler-utils >/dev/null; }

# Debian's nginx, systemd-analyze (package systemd) and psql check the deployment
# examples under deploy/ (tests/test_deployment.py deselects a check whose program is missing).
deploy-tools:
	@PATH="$$PATH:/usr/sbin:/sbin"; missing=; \
	command -v nginx >/dev/null 2>&1 || missing="$$missing nginx"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v psql >/dev/null 2>&1 || missing="$$missing postgresql-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's$$missing for the deployment checks"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(STAMP)
	$(BIN)/datadesk db upgrade
	$(BIN)/datadesk crm seed-demo
	$(BIN)/datadesk run --chat

test: $(STAMP) browser fonts deploy-tools
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check bot backend common datadesk tests bench
	$(BIN)/ruff format --check bot backend common datadesk tests bench
	$(BIN)/mypy bot backend common datadesk bench
	$(BIN)/deptry .
	$(BIN)/datadesk dialogs check dialogs
	$(BIN)/datadesk locales check

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Translation catalogs (see locales/README.md): extract every customer-facing
# text into locales/messages.pot, create any missing shipped catalog, merge the
# template into every catalog (changed texts become fuzzy), then check.
LOCALES := en lv ru zh_Hans zh_Hant
.PHONY: locales
locales: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -o locales/messages.pot --add-comments=TRANSLATORS: \
	  --project=datadesk --copyright-holder=datadesk .
	for l in $(LOCALES); do test -f locales/$$l/LC_MESSAGES/messages.po || \
	  $(BIN)/pybabel init -i locales/messages.pot -d locales -D messages -l $$l; done
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --previous
	-$(BIN)/datadesk locales check
