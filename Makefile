# Spindle — multi-interface IPAM and routing for Kubernetes.
# `make help` lists the targets. Everything the targets need is installed by the
# targets themselves; heavy builds are cached under $(SPINDLE_CACHE).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export SPINDLE_CACHE ?= $(HOME)/.cache/spindle
export GOTOOLCHAIN := local
export GOFLAGS := -mod=mod

NODES ?= 2
DEPS := test/lab/tools/build-deps.sh
dep-path = $(shell bash $(DEPS) path $(1))

CONTROLLER_GEN = $(call dep-path,controller-gen)/controller-gen
GOIMPORTS = $(call dep-path,goimports)/goimports
HELM = $(call dep-path,helm)/helm

# Product binaries: CNI plugins go to bin/cni (the lab installs them on every node).
CNI_PLUGINS := spiderpool coordinator
DAEMONS := spindle-agent spindle-controller

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: deps
deps: ## Install OS packages and build the pinned tools and lab binaries (cached).
	@bash test/lab/tools/install-packages.sh
	@bash $(DEPS) all

.PHONY: generate
generate: ## Generate deepcopy code and CRDs (controller-gen).
	@bash $(DEPS) controller-gen
	$(CONTROLLER_GEN) object paths=./ipam/apis/...
	$(CONTROLLER_GEN) crd paths=./ipam/apis/... output:crd:artifacts:config=charts/spindle/crds

.PHONY: verify-generated
verify-generated: generate ## Fail if generated files differ from what is committed.
	@git diff --exit-code -- ipam/apis charts/spindle/crds || { echo "generated files are stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- ipam/apis charts/spindle/crds)" || { git status --porcelain -- ipam/apis charts/spindle/crds; echo "untracked generated files: run make generate and commit"; exit 1; }

.PHONY: lint
lint: ## gofmt/goimports and go vet.
	@bash $(DEPS) goimports
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	@out=$$($(GOIMPORTS) -local github.com/spindle-net/spindle -l $$(git ls-files '*.go')); test -z "$$out" || { echo "goimports needed:"; echo "$$out"; exit 1; }
	go vet ./...

.PHONY: build
build: ## Build all binaries into bin/.
	@mkdir -p bin/cni
	@for p in $(CNI_PLUGINS); do [ ! -d cmd/$$p ] || go build -trimpath -o bin/cni/$$p ./cmd/$$p; done
	@for d in $(DAEMONS); do [ ! -d cmd/$$d ] || go build -trimpath -o bin/$$d ./cmd/$$d; done
	go build -o bin/lab ./test/lab/cmd/lab
