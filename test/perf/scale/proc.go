package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// parseCPU returns utime+stime of a /proc/<pid>/stat line.
func parseCPU(stat string) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces.
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("failed to parse /proc stat %q: no command name", stat)
	}
	f := strings.Fields(stat[end+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("failed to parse /proc stat %q: %d fields after the command name, want at least 13", stat, len(f))
	}
	var sum time.Duration
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("failed to parse /proc stat %q: %w", stat, err)
		}
		sum += time.Duration(v) * clockTick
	}
	return sum, nil
}

// cpuTime returns the user+system CPU time of process pid so far.
func cpuTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseCPU(string(raw))
}

// parseStatusKiB returns the value in KiB of a "Key:   123 kB" line of
// /proc/<pid>/status.
func parseStatusKiB(status, key string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("failed to parse %q of /proc status: %q", key, line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("failed to parse /proc status: no %q line", key)
}

// memory returns the resident set and its peak (VmRSS, VmHWM) in MiB.
func memory(pid int) (rss, peak float64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	r, err := parseStatusKiB(string(raw), "VmRSS")
	if err != nil {
		return 0, 0, err
	}
	p, err := parseStatusKiB(string(raw), "VmHWM")
	if err != nil {
		return 0, 0, err
	}
	return float64(r) / 1024, float64(p) / 1024, nil
}

// findProcess returns the pid of the one process whose command line holds
// every one of args.
func findProcess(args ...string) (int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return 0, err
	}
	var found []int
	for _, d := range dirs {
		raw, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		if cmdlineHas(strings.Split(string(raw), "\x00"), args) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("failed to find the process running with %q: %d matches %v", args, len(found), found)
	}
	return found[0], nil
}

func cmdlineHas(argv, want []string) bool {
	for _, w := range want {
		ok := false
		for _, a := range argv {
			if a == w {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
