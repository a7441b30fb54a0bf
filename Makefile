# Spindle — multi-interface IPAM and routing for Kubernetes.
# `make help` lists the targets. Everything the targets need is installed by the
# targets themselves; heavy builds are cached under $(SPINDLE_CACHE).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export SPINDLE_CACHE ?= $(HOME)/.cache/spindle
export GOTOOLCHAIN := local
# One build configuration for everything (product, tests, vet, and the pinned
# wrappers in build-deps.sh): static, path-free, module graph exactly as committed.
# Sharing it lets the build cache reuse client-go and friends across all of them.
export GOFLAGS := -mod=readonly -trimpath
export CGO_ENABLED := 0

NODES ?=
DEPS := test/lab/tools/build-deps.sh
dep-path = $(shell bash $(DEPS) path $(1))

CONTROLLER_GEN = $(call dep-path,controller-gen)/controller-gen
GOIMPORTS = $(call dep-path,goimports)/goimports
GOLANGCI_LINT = $(call dep-path,golangci-lint)/golangci-lint
HELM = $(call dep-path,helm)/helm

# How the lab runs Spindle: the agent on every node (inside the node's network and
# mount namespaces, like the DaemonSet), the controller once, all on loopback.
LAB_AGENT_ARGS ?= --enable-ipv4=true,--enable-ipv6=true
LAB_CONTROLLER_ARGS ?= --leader-elect=false,--metrics-bind-address=127.0.0.1:5721,--health-probe-bind-address=127.0.0.1:5720,--webhook-host=127.0.0.1,--webhook-port=9443,--webhook-url=https://127.0.0.1:9443,--webhook-manage-configurations=true
LAB_UP_ARGS ?= --node-daemon agent=bin/spindle-agent,$(LAB_AGENT_ARGS) --cluster-daemon controller=bin/spindle-controller,$(LAB_CONTROLLER_ARGS)
export LAB_UP_ARGS

# Product binaries: CNI plugins go to bin/cni (the lab installs them on every node).
CNI_PLUGINS := spiderpool coordinator
DAEMONS := spindle-agent spindle-controller
# Operator tools: the kubectl plugin (kubectl spindle ..., docs/kubectl-plugin.md) and
# the installation self-test the chart's `helm test` runs (also in the image).
TOOLS := kubectl-spindle spindle-selftest
# Every binary reports this version (--version, the CNI VERSION command): the chart's appVersion.
VERSION ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/spindle/Chart.yaml)
GO_LDFLAGS := -X github.com/spindle-net/spindle/cmd/internal/version.Version=$(VERSION)
# Counts per test tier, written by each stage of make test (see test/tiers).
TIERS := _out/tiers

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

# What the lab runs (control plane, etcd, Multus, reference CNI plugins); the
# developer tools (controller-gen, goimports, golangci-lint, helm) come on top.
LAB_DEPS := k8s etcd multus cni-plugins

.PHONY: deps
deps: lab-deps ## Install OS packages and build the pinned tools and lab binaries (cached).
	@bash $(DEPS) all

.PHONY: lab-deps
lab-deps: ## Install OS packages and build only what the lab runs (cached).
	@bash test/lab/tools/install-packages.sh
	@bash $(DEPS) check
	@bash $(DEPS) $(LAB_DEPS)

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
lint: ## gofmt, goimports and golangci-lint (pinned; config in .golangci.yml; its standard set includes go vet).
	@bash $(DEPS) goimports golangci-lint
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	@out=$$($(GOIMPORTS) -local github.com/spindle-net/spindle -l $$(git ls-files '*.go' | grep -v zz_generated)); test -z "$$out" || { echo "goimports needed:"; echo "$$out"; exit 1; }
	$(GOLANGCI_LINT) run ./...

.PHONY: build
build: ## Build all binaries into bin/.
	@mkdir -p bin/cni
	@for p in $(CNI_PLUGINS); do go build -ldflags '$(GO_LDFLAGS)' -o bin/cni/$$p ./cmd/$$p; done
	@for d in $(DAEMONS) $(TOOLS); do go build -ldflags '$(GO_LDFLAGS)' -o bin/$$d ./cmd/$$d; done
	go build -o bin/lab ./test/lab/cmd/lab
	go build -o bin/tiers ./test/tiers

IMAGE ?= ghcr.io/spindle-net/spindle:$(VERSION)
.PHONY: images
images: ## Build the Spindle image (agent, controller, CNI plugins) from cmd/Dockerfile (needs Docker).
	@command -v docker >/dev/null 2>&1 || { echo "images: docker is not installed: the image is built with Docker (docker build -f cmd/Dockerfile .)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "images: cannot reach a Docker engine (docker info failed): start Docker or set DOCKER_HOST" >&2; exit 1; }
	docker build -f cmd/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) .

##@ Tests

GO_TEST_FLAGS ?= -count=1
.PHONY: test
test: export SPINDLE_REQUIRE_ALL := 1
# The e2e suite runs once: the specs that drive bin/lab on the lab, every
# other one on the kind cluster, where Spindle is installed by its chart
# (tiers summary fails the run if a spec passed in neither).
test: export LAB_E2E_LABEL_FILTER := lab-only
test: export KIND_E2E_LABEL_FILTER := !lab-only
test: deps tiers-reset build lint verify-generated test-unit test-lab test-kind ## Everything CI runs: lint, generated code, unit + privileged + envtest, the lab suites, then the kind cluster (needs root); ends with one "tiers:" line.
	@bin/tiers summary $(TIERS)/unit.json $(TIERS)/lab-e2e.json $(TIERS)/lab-chart.json $(TIERS)/lab-chaos.json $(TIERS)/kind.json $(TIERS)/kind-e2e.json $(TIERS)/kind-uninstall.json

.PHONY: tiers-reset
tiers-reset:
	@rm -rf $(TIERS)

.PHONY: test-unit
# The e2e suite, the chart's server-side dry runs and the short chaos run need a cluster: test-lab runs them; test-kind runs the kind tier.
LAB_ONLY_TESTS := DryRun|LabChaos
test-unit: build ## Unit, fuzz-seed, envtest and privileged tests (privileged ones skip unless root).
	go test $(GO_TEST_FLAGS) -json -timeout 20m -skip '$(LAB_ONLY_TESTS)' $$(go list ./... | grep -v -e '/test/e2e$$' -e '/test/kind/smoke$$') | bin/tiers gotest $(TIERS)/unit.json

.PHONY: test-kind
test-kind: build kind-images ## The kind tier: a fresh offline kind cluster, the previous chart installed with Helm and upgraded, the e2e suite (KIND_E2E_LABEL_FILTER), helm uninstall checked on the nodes; the cluster and its engine are removed after.
	@E2E_LABEL_FILTER='$(KIND_E2E_LABEL_FILTER)' TIERS=$(TIERS) bash test/kind/tier.sh

.PHONY: test-chart
test-chart: ## Lint and render the chart matrix and check the manifests (and a server-side dry run if a lab is up).
	@bash $(DEPS) helm
	go test ./test/chart/ -count=1

.PHONY: test-lab
test-lab: build ## Start a fresh 3-node lab, run every lab suite in it, and tear it down.
	bash test/lab/run-suites.sh

.PHONY: bench
bench: lab-deps build ## IPAM storage benchmark on its own API server (~5 min), agent memory and API-server CPU as the cluster grows on another (~20 min), the coordinator's node inspection on a small and a full node (root, ~1 min), then pools carved from a SpiderSubnet against one named pool (root, ~10 min), then the whole pod path against host-local (root, ~15 min), each in a lab of its own; ends with the "bench:", "bench_scale:", "bench_node:", "bench_subnet:" and "bench_e2e:" summary lines.
	@mkdir -p _out
	go run ./test/perf/ipam | tee _out/bench-ipam.txt
	go run ./test/perf/scale $(BENCH_SCALE_ARGS) | tee _out/bench-scale.txt
	go run ./test/perf/node | tee _out/bench-node.txt
	go run ./test/perf/subnet -agent-args '$(LAB_AGENT_ARGS)' -controller-args '$(LAB_CONTROLLER_ARGS)' | tee _out/bench-subnet.txt
	go run ./test/perf/e2e -agent-args '$(LAB_AGENT_ARGS)' -controller-args '$(LAB_CONTROLLER_ARGS)' $(BENCH_E2E_ARGS) | tee _out/bench-e2e.txt
	@grep -hE '^bench(_scale|_node|_subnet|_e2e)?:' _out/bench-ipam.txt _out/bench-scale.txt _out/bench-node.txt _out/bench-subnet.txt _out/bench-e2e.txt

.PHONY: bench-node
bench-node: ## The coordinator's node inspection on a node of 10 and of 250 pod veths (root, ~1 min); ends with the "bench_node:" line.
	@mkdir -p _out
	go run ./test/perf/node | tee _out/bench-node.txt
	@grep -h '^bench_node:' _out/bench-node.txt

.PHONY: bench-e2e
bench-e2e: lab-deps build ## The whole pod path only (root, ~15 min): Deployments on macvlan with spiderpool IPAM and the coordinator against host-local, in a lab of its own; BENCH_E2E_ARGS passes flags (e.g. -apps 30 -nodes 3); ends with the "bench_e2e:" line.
	@mkdir -p _out
	go run ./test/perf/e2e -agent-args '$(LAB_AGENT_ARGS)' -controller-args '$(LAB_CONTROLLER_ARGS)' $(BENCH_E2E_ARGS) | tee _out/bench-e2e.txt
	@grep -h '^bench_e2e:' _out/bench-e2e.txt

.PHONY: chaos
chaos: lab-deps build ## Seeded chaos run (root, ~40 min): 5,000 pods of churn while every component is killed, in a 3-node lab of its own; CHAOS_SEED and CHAOS_PODS override; ends with the "chaos:" line (docs/chaos.md).
	@mkdir -p _out
	go run ./test/chaos -agent-args '$(LAB_AGENT_ARGS)' -controller-args '$(LAB_CONTROLLER_ARGS)' $(CHAOS_ARGS) | tee _out/chaos.txt
	@grep -h '^chaos: seed=.* pods=' _out/chaos.txt | tail -1

.PHONY: bench-scale
bench-scale: lab-deps build ## Agent memory with 10,000 and 100,000 claims in the cluster and API-server CPU per allocation with 10, 50 and 200 agents watching, on its own API server (~20 min); BENCH_SCALE_ARGS passes flags (e.g. -reps 1); writes _out/bench-scale.png; ends with the "bench_scale:" line.
	@mkdir -p _out
	go run ./test/perf/scale $(BENCH_SCALE_ARGS) | tee _out/bench-scale.txt
	@grep -h '^bench_scale:' _out/bench-scale.txt

.PHONY: fuzz
FUZZTIME ?= 10s
fuzz: ## Run every Go fuzz target (listed with go test -list) for FUZZTIME (default 10s) each; ends with a "fuzz:" summary line.
	@n=0; failed=""; \
	for dir in $$(grep -rl --include='*_test.go' -e '^func Fuzz' --exclude-dir=_lab --exclude-dir=bin --exclude-dir=testdata . | xargs -n1 dirname | sort -u); do \
	  for f in $$(go test -list '^Fuzz' $$dir | grep '^Fuzz'); do \
	    n=$$((n+1)); echo "fuzz $$dir $$f"; \
	    go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -parallel 2 $$dir || failed="$$failed $$dir:$$f"; \
	  done; \
	done; \
	echo "fuzz: targets=$$n fuzztime=$(FUZZTIME) failed=$${failed:- none}"; \
	test -z "$$failed"

.PHONY: race-gc
race-gc: build ## The garbage-collector race spec with 1,000 same-name re-creations (E2E_GC_RACE_ROUNDS) on the running lab (make lab-up NODES=3 first); ends with a "gc-race:" line.
	@mkdir -p _out
	E2E_GC_RACE_ROUNDS=$${E2E_GC_RACE_ROUNDS:-1000} SPINDLE_REQUIRE_ALL=1 go test ./test/e2e/ -v -count=1 -timeout 90m -kubeconfig $(CURDIR)/_lab/kubeconfig \
	  -ginkgo.focus='IP garbage collector race' -ginkgo.v -ginkgo.no-color 2>&1 | tee _out/race-gc.txt; \
	  rc=$${PIPESTATUS[0]}; grep -ho 'gc-race: rounds=.*' _out/race-gc.txt | tail -1; exit $$rc

##@ Lab

.PHONY: lab
lab: ## Build the lab CLI.
	go build -o bin/lab ./test/lab/cmd/lab

.PHONY: lab-up
lab-up: lab-deps build ## Start (or reuse) the lab with Spindle's agent and controller; NODES=N for a new lab (default 2).
	bin/lab up $(if $(NODES),--nodes $(NODES)) $(LAB_UP_ARGS)

.PHONY: lab-down
lab-down: lab ## Stop the lab and verify nothing is left behind.
	bin/lab down

.PHONY: e2e
e2e: lab-up ## Run the Ginkgo e2e suite against the lab.
	go test ./test/e2e/ -count=1 -timeout 40m -kubeconfig $(CURDIR)/_lab/kubeconfig -ginkgo.v

.PHONY: demo
demo: lab-up ## Show Spindle on the lab: pools, a multi-NIC Deployment, a StatefulSet with fixed IPs (objects stay in namespace spindle-demo).
	bash test/demo/run.sh

.PHONY: demo-ops
demo-ops: lab-up ## Operate and troubleshoot on the lab: full pool, agent down, leaked address, counter drift, webhook TLS (docs/operations.md, docs/troubleshooting.md).
	bash test/demo/operate.sh

.PHONY: kind-deps
kind-deps: lab-deps ## Install the kind cluster's OS packages (Docker engine, debootstrap, ...) and build its pinned binaries (cached).
	@bash test/lab/tools/install-packages.sh kind
	@bash $(DEPS) containerd runc crictl kind multus-thick helm

.PHONY: kind-images
kind-images: kind-deps ## Build the kind node image offline (Debian root file system, kind's node layout, preloaded control-plane images) in the kind engine (cached).
	@bash test/kind/images.sh

.PHONY: kind-up
kind-up: kind-images ## Start the kind engine and an offline 3-node kind cluster (_out/kind/kubeconfig; reach it with bash test/kind/cluster.sh exec kubectl ...).
	@bash test/kind/cluster.sh up

.PHONY: kind-down
kind-down: ## Delete the kind cluster, stop the kind engine and restore the machine's settings.
	@bash test/kind/cluster.sh down
	@bash test/kind/engine.sh down

.PHONY: kind-smoke
kind-smoke: kind-images ## Helm-install Spindle (with Multus) into the kind cluster and check a macvlan Deployment's addresses inside its pods; ends with a "kind-smoke:" line.
	@bash test/kind/smoke.sh

.PHONY: e2e-kind
e2e-kind: build kind-images ## Run the e2e suite on the offline kind cluster (chart installed with Helm, Multus); ends with a "kind-e2e:" line. The cluster stays up (make kind-down).
	@bash test/kind/e2e.sh $(E2E_ARGS)
