# The two commands that matter: `make demo` and `make test`. Both install what they need.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit live-deps e2e bench docs clean checkov image image-base broker-zip

# checkov pins many libraries of its own: it gets a virtualenv of its own, off the project's.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: lint typecheck unit e2e

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/cfn-lint templates/cloudformation/*.yaml
	$(MAKE) checkov

# Pinned: a newer checkov brings new checks, and CI must not turn red without a change of ours.
# pip's output (a machine's pip.conf can add a hundred warnings) is shown only if it fails.
$(CHECKOV):
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.30' >$(CHECKOV_VENV)/install.log 2>&1 \
	  || { cat $(CHECKOV_VENV)/install.log >&2; rm -rf $(CHECKOV_VENV); exit 1; }

# A third-party scanner on every stack template and the image: 0 failed checks. It runs
# offline (--skip-download); a check may only be skipped inline, next to the resource, with a
# reason.
TEMPLATES := $(wildcard templates/cloudformation/*.yaml)
checkov: $(CHECKOV)
	$(CHECKOV) --skip-download --quiet --compact \
	  $(foreach t,$(TEMPLATES),-f $(t)) -f Dockerfile.redmine

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) live-deps
	$(BIN)/pytest

# Redmine runs in a Debian 13 root (Redmine 6.0, Rails 7.2, Ruby 3.3, Passenger 6.0.26,
# PostgreSQL 17), made and cached outside the clone by scripts/debian13-root.sh and entered with
# unshare + chroot; the clone is /src there and .venv-debian13 its venv (Python 3.13). Without
# root it says it skipped. See docs/try-it-on-one-machine.md.
IN_DEBIAN13 := bash scripts/debian13-root.sh run

# Real multi-tenant Redmine: Debian's redmine + PostgreSQL + Apache/Passenger, then one
# tenant's whole life on the same packages (docs/tenant-lifecycle.md), then the live tests
# again on the root's Ruby, Passenger and Apache (the host's run checks the host's).
e2e: $(STAMP)
	$(IN_DEBIAN13) python scripts/e2e_redmine.py
	$(IN_DEBIAN13) python scripts/e2e_lifecycle.py
	$(IN_DEBIAN13) python -m pytest -q -p no:cacheprovider tests/live

# Debian's Apache + Passenger for the live tests (apt-get; skipped without root).
live-deps:
	bash scripts/install-live-deps.sh

# Benchmarks (not tests): writes docs/benchmarks.md. The density benchmark runs real Redmine
# in the Debian 13 root (root on Debian; it skips itself elsewhere) and replaces its own
# section of the file.
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(IN_DEBIAN13) python bench/density.py

# The container image (Dockerfile.redmine, docs/container.md "The image"). Needs a Docker
# engine (it says so and exits 2 without one) and, once, root to make the Debian 13 base with
# debootstrap; `make image-base` makes that base again (Debian's newest point release).
IMAGE ?= redmica-app:dev
image:
	sh docker/build-image.sh $(IMAGE)

image-base:
	sh docker/make-base.sh build/base/debian-trixie-rootfs.tar

# The admin broker's Lambda code (docs/infrastructure.md): build/admin-broker-<version>-<hash>.zip
# for python3.12 on x86_64, from the image's pinned wheels (needs PyPI); prints the S3 key.
broker-zip: $(STAMP)
	bash scripts/build-broker-zip.sh build

docs: $(STAMP)
	$(BIN)/python -m redmica_ops.cli.reference > docs/cli.md

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache dist build
