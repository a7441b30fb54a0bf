// Pinned build of golang.org/x/tools v0.47.0 for Spindle's lab and tools; regenerate with
// test/lab/tools/build-deps.sh pin goimports.
module spindle.local/deps/goimports

go 1.26

require (
	golang.org/x/mod v0.37.0 // indirect
	golang.org/x/sync v0.21.0 // indirect
	golang.org/x/sys v0.46.0 // indirect
	golang.org/x/telemetry v0.0.0-20260625142307-59b4966ccb57 // indirect
	golang.org/x/tools v0.47.0 // indirect
)

tool golang.org/x/tools/cmd/goimports
