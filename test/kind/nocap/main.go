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
	if bundle := bundleArg(os.Args[1:]); bundle != "" {
		if err := dropCaps(filepath.Join(bundle, "config.json"), drop); err != nil {
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

// bundleArg returns the value of --bundle/-b of a "create" or "run" command,
// or "" when the command has no bundle.
func bundleArg(args []string) string {
	for i, a := range args {
		switch {
		case (a == "--bundle" || a == "-b") && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "--bundle="):
			return strings.TrimPrefix(a, "--bundle=")
		}
	}
	return ""
}

// dropCaps rewrites the OCI config at path without the capabilities in drop,
// keeping every other field as it was.
func dropCaps(path string, drop []string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("failed to read the OCI config: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("failed to parse the OCI config %s: %w", path, err)
	}
	if !removeCaps(cfg, drop) {
		return nil
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	tmp := path + ".nocap"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("failed to write the OCI config: %w", err)
	}
	return os.Rename(tmp, path)
}

// removeCaps deletes the drop list from every capability set of the config's
// process and reports whether anything changed.
func removeCaps(cfg map[string]any, drop []string) bool {
	proc, _ := cfg["process"].(map[string]any)
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
