// Command nocap is an OCI runtime wrapper for the kind engine: it removes
// capabilities the machine does not grant (CAP_SYS_RESOURCE by default, or the
// comma-separated list in NOCAP_DROP) from the bundle's config.json, then
// runs the real runtime (NOCAP_RUNTIME, default runc) with the same
// arguments. Docker 20.10 asks for every capability in a --privileged
// container and fails ("unable to apply caps") where one is missing.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	runtime := envOr("NOCAP_RUNTIME", "runc")
	drop := strings.Split(envOr("NOCAP_DROP", "CAP_SYS_RESOURCE"), ",")
	// "create"/"run" read the bundle's config.json; "exec" reads a process
	// description of its own.
	if bundle := flagArg(os.Args[1:], "--bundle", "-b"); bundle != "" {
		if err := dropCaps(filepath.Join(bundle, "config.json"), drop, processOfConfig); err != nil {
			fmt.Fprintf(os.Stderr, "nocap: %v\n", err)
			os.Exit(1)
		}
	}
	if proc := flagArg(os.Args[1:], "--process", "-p"); proc != "" {
		if err := dropCaps(proc, drop, processItself); err != nil {
			fmt.Fprintf(os.Stderr, "nocap: %v\n", err)
			os.Exit(1)
		}
	}
	path, err := exec.LookPath(runtime)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nocap: runtime %q not found (set NOCAP_RUNTIME): %v\n", runtime, err)
		os.Exit(1)
	}
	if err := syscall.Exec(path, append([]string{runtime}, os.Args[1:]...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "nocap: exec %s: %v\n", path, err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// flagArg returns the value of the flag long (or its short form) in args, or
// "" when it is absent.
func flagArg(args []string, long, short string) string {
	for i, a := range args {
		switch {
		case (a == long || a == short) && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, long+"="):
			return strings.TrimPrefix(a, long+"=")
		}
	}
	return ""
}

// processOfConfig and processItself find the OCI process object in a
// bundle's config.json and in an exec process file.
func processOfConfig(doc map[string]any) map[string]any {
	p, _ := doc["process"].(map[string]any)
	return p
}

func processItself(doc map[string]any) map[string]any { return doc }

// dropCaps rewrites the OCI document at path without the capabilities in
// drop in the process that proc finds, keeping every other field as it was.
func dropCaps(path string, drop []string, proc func(map[string]any) map[string]any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("failed to read the OCI document: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("failed to parse the OCI document %s: %w", path, err)
	}
	if !removeCaps(proc(cfg), drop) {
		return nil
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	tmp := path + ".nocap"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("failed to write the OCI document: %w", err)
	}
	return os.Rename(tmp, path)
}

// removeCaps deletes the drop list from every capability set of an OCI
// process and reports whether anything changed.
func removeCaps(proc map[string]any, drop []string) bool {
	caps, _ := proc["capabilities"].(map[string]any)
	changed := false
	for set, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := list[:0:0]
		for _, c := range list {
			if s, ok := c.(string); ok && contains(drop, s) {
				changed = true
				continue
			}
			kept = append(kept, c)
		}
		caps[set] = kept
	}
	return changed
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
