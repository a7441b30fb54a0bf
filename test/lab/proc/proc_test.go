package proc

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartFindStop(t *testing.T) {
	dir := t.TempDir()
	m := Manager{LabDir: dir, PidDir: filepath.Join(dir, "pids")}
	log := filepath.Join(dir, "logs", "sleeper.log")
	pid, err := m.Start(Spec{Name: "sleeper", Argv: []string{"sh", "-c", "echo hello; exec sleep 60"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Kill(pid, time.Second) })
	// Between fork and exec the child still has the test's environment,
	// without the marker: give the exec a moment to happen.
	var got int
	var ok bool
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got, ok = m.Pid("sleeper"); ok {
			break
		}
	}
	if !ok || got != pid {
		t.Fatalf("Pid = %d, %v; want %d", got, ok, pid)
	}
	found := FindMarked(dir)
	if len(found) != 1 || found[0] != pid {
		t.Fatalf("FindMarked = %v, want [%d]", found, pid)
	}
	if other := FindMarked(dir + "-other"); len(other) != 0 {
		t.Fatalf("another lab's marker matched: %v", other)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := WaitReady(ctx, "sleeper", pid, log, 10*time.Millisecond, func(context.Context) error {
		if !strings.Contains(Tail(log, 5), "hello") {
			return errors.New("no greeting yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop("sleeper", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if Alive(pid) {
		t.Fatal("process alive after Stop")
	}
	if _, ok := m.Pid("sleeper"); ok {
		t.Fatal("Pid still reports the stopped process")
	}
}

func TestWaitReadyReportsExitWithLog(t *testing.T) {
	dir := t.TempDir()
	m := Manager{LabDir: dir, PidDir: filepath.Join(dir, "pids")}
	log := filepath.Join(dir, "crash.log")
	pid, err := m.Start(Spec{Name: "crash", Argv: []string{"sh", "-c", "echo bad flag --x >&2; exit 3"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = WaitReady(ctx, "crash", pid, log, 20*time.Millisecond, func(context.Context) error { return errors.New("never ready") })
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "bad flag --x") {
		t.Fatalf("WaitReady = %v; want ErrExited with the log tail", err)
	}
}
