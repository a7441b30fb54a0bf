// Package proc starts, tracks and stops the lab's long-running processes.
// Every process carries the environment variable MarkerEnv set to the lab
// directory, so leftovers (including processes those processes spawned) can
// be found and stopped even without pid files.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MarkerEnv names the variable set in every lab process.
const MarkerEnv = "SPINDLE_LAB"

// Spec describes a detached process.
type Spec struct {
	// Name identifies the process; its pid is kept in <pidDir>/<Name>.pid.
	Name string
	Argv []string
	// Env is added to the lab's base environment.
	Env []string
	// Log receives stdout and stderr (appended).
	Log string
	Dir string
}

// Manager starts processes for one lab directory.
type Manager struct {
	LabDir string
	PidDir string
}

// Start launches spec detached in its own session and records its pid.
func (m Manager) Start(spec Spec) (int, error) {
	if err := os.MkdirAll(filepath.Dir(spec.Log), 0o755); err != nil {
		return 0, fmt.Errorf("failed to create log directory for %q: %w", spec.Name, err)
	}
	if err := os.MkdirAll(m.PidDir, 0o755); err != nil {
		return 0, fmt.Errorf("failed to create pid directory %q: %w", m.PidDir, err)
	}
	logf, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("failed to open log %q: %w", spec.Log, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- %s starting: %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(spec.Argv, " "))
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = append(BaseEnv(m.LabDir), spec.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("failed to start %q: %w", spec.Name, err)
	}
	pid := cmd.Process.Pid
	// Reap the child if it exits while this process still runs, so a quick
	// failure is seen as dead rather than as a zombie.
	go cmd.Wait() //nolint:errcheck
	if err := os.WriteFile(m.pidFile(spec.Name), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return pid, fmt.Errorf("failed to record pid of %q: %w", spec.Name, err)
	}
	return pid, nil
}

// BaseEnv is the environment of every lab process: the caller's environment
// plus the marker.
func BaseEnv(labDir string) []string {
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, MarkerEnv+"=") {
			env = append(env, e)
		}
	}
	return append(env, MarkerEnv+"="+labDir)
}

func (m Manager) pidFile(name string) string { return filepath.Join(m.PidDir, name+".pid") }

// Pid returns the recorded pid of name if that process is still alive and
// belongs to this lab.
func (m Manager) Pid(name string) (int, bool) {
	data, err := os.ReadFile(m.pidFile(name))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if !Alive(pid) || !Marked(pid, m.LabDir) {
		return 0, false
	}
	return pid, true
}

// Names lists the processes with a pid file.
func (m Manager) Names() []string {
	entries, _ := os.ReadDir(m.PidDir)
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".pid"); ok {
			names = append(names, n)
		}
	}
	return names
}

// Stop terminates the named process (SIGTERM, then SIGKILL after grace) and
// removes its pid file.
func (m Manager) Stop(name string, grace time.Duration) error {
	defer os.Remove(m.pidFile(name))
	pid, ok := m.Pid(name)
	if !ok {
		return nil
	}
	return Kill(pid, grace)
}

// Kill sends SIGTERM to pid, waits up to grace, then SIGKILLs it.
func Kill(pid int, grace time.Duration) error {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !Alive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !Alive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("failed to stop process %d: still alive after SIGKILL", pid)
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	st := data[i+2]
	return st != 'Z' && st != 'X'
}

// Marked reports whether pid's environment carries the marker of labDir.
func Marked(pid int, labDir string) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	want := []byte(MarkerEnv + "=" + labDir)
	for _, kv := range bytes.Split(data, []byte{0}) {
		if bytes.Equal(kv, want) {
			return true
		}
	}
	return false
}

// FindMarked lists live processes carrying the marker of labDir, except the
// calling process.
func FindMarked(labDir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if Alive(pid) && Marked(pid, labDir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Cmdline returns a printable command line of pid.
func Cmdline(pid int) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
}

// Tail returns the last n lines of a log file.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ErrExited reports a process that died while being waited for.
var ErrExited = errors.New("process exited")

// WaitReady polls check every interval until it succeeds, the process pid
// dies, or ctx ends. Failures carry the tail of the process's log.
func WaitReady(ctx context.Context, what string, pid int, log string, interval time.Duration, check func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		if pid > 0 && !Alive(pid) {
			return fmt.Errorf("%s: %w (last check: %v); log %s:\n%s", what, ErrExited, last, log, Tail(log, 30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready in time (last check: %v); log %s:\n%s", what, last, log, Tail(log, 30))
		case <-t.C:
		}
	}
}
