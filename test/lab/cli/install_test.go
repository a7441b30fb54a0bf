package cli

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestInstallExecutables(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write := func(name, data string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("spiderpool", "v1", 0o755)
	write("README", "not a plugin", 0o644)
	write(".hidden", "x", 0o755)
	if err := os.Mkdir(filepath.Join(src, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := installExecutables(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"spiderpool"}) {
		t.Fatalf("installed %v, want only the executable", names)
	}
	got, err := os.ReadFile(filepath.Join(dst, "spiderpool"))
	if err != nil || string(got) != "v1" {
		t.Fatalf("installed content %q, %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(dst, "spiderpool")); fi.Mode().Perm()&0o111 == 0 {
		t.Fatal("installed plugin is not executable")
	}

	// A rebuilt plugin (new content and time) replaces the installed one.
	write("spiderpool", "v2", 0o755)
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(src, "spiderpool"), future, future); err != nil {
		t.Fatal(err)
	}
	if _, err := installExecutables(src, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "spiderpool")); string(got) != "v2" {
		t.Fatalf("rebuilt plugin not installed: %q", got)
	}
	if _, err := installExecutables(filepath.Join(src, "missing"), dst); err == nil {
		t.Fatal("a missing source directory was accepted")
	}
}
