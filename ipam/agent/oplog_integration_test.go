package agent_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"

	"github.com/spindle-net/spindle/ipam/agent"
)

// opLogs collects the agent's log lines as JSON objects.
type opLogs struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *opLogs) opt(c *agent.Config) {
	c.Logger = funcr.NewJSON(func(obj string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(obj), &m); err != nil {
			panic(err)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, m)
	}, funcr.Options{})
}

// take returns and forgets the ADD and DEL lines logged so far.
func (l *opLogs) take() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ops []map[string]any
	for _, m := range l.lines {
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, "ADD") || strings.HasPrefix(msg, "DEL") {
			ops = append(ops, m)
		}
	}
	l.lines = nil
	return ops
}

// TestEveryAddAndDelLogsOneLine: each ADD and DEL, whatever its outcome,
// leaves exactly one line at the default verbosity naming the pod, the
// interface, the addresses, the pools and the duration.
func TestEveryAddAndDelLogsOneLine(t *testing.T) {
	requireEnv(t)
	ensureNamespace(t, "oplog")
	createPool(t, "oplog-v4", "10.29.0.0/24", "10.29.0.10-10.29.0.20")
	logs := &opLogs{}
	a := startAgent(t, "oplog-node", logs.opt)
	p := createPod(t, podObj("oplog", "web", "oplog-node", nil))

	step := func(what string, op func() error, msg string, check func(m map[string]any)) {
		t.Helper()
		_ = op()
		lines := logs.take()
		if len(lines) != 1 {
			t.Fatalf("%s: %d ADD/DEL lines, want 1: %v", what, len(lines), lines)
		}
		m := lines[0]
		if m["msg"] != msg || m["pod"] != "oplog/web" || m["interface"] == nil || m["duration"] == "" || m["addresses"] == nil || m["pools"] == nil {
			t.Fatalf("%s: line %v", what, m)
		}
		if v, ok := m["level"]; ok && v != 0.0 {
			t.Fatalf("%s: logged at V(%v), want the default verbosity", what, v)
		}
		check(m)
	}
	var addr string
	step("ADD", func() error {
		res, err := a.Add(rootCtx, addReq(p, "eth0", "c1", "oplog-v4"))
		addr = ip0(res)
		return err
	}, "ADD", func(m map[string]any) {
		if got := m["addresses"].([]any); len(got) != 1 || got[0] != addr || m["pools"].([]any)[0] != "oplog-v4" {
			t.Fatalf("ADD line %v, want address %s of pool oplog-v4", m, addr)
		}
	})
	step("failed ADD", func() error {
		_, err := a.Add(rootCtx, addReq(p, "net1", "c1", "no-such-pool"))
		return err
	}, "ADD failed", func(m map[string]any) {
		if m["error"] == nil || m["interface"] != "net1" {
			t.Fatalf("failed ADD line %v", m)
		}
	})
	step("DEL of a live pod", func() error { return a.Del(rootCtx, addReq(p, "eth0", "c1")) }, "DEL", func(m map[string]any) {
		if m["outcome"] != "kept" || m["addresses"].([]any)[0] != strings.Split(addr, "/")[0] {
			t.Fatalf("DEL line %v, want %s kept", m, addr)
		}
	})
	deletePod(t, p)
	step("DEL of a deleted pod", func() error { return a.Del(rootCtx, addReq(p, "eth0", "c1")) }, "DEL", func(m map[string]any) {
		if m["outcome"] != "released" {
			t.Fatalf("DEL line %v, want released", m)
		}
	})
	step("repeated DEL", func() error { return a.Del(rootCtx, addReq(p, "eth0", "c1")) }, "DEL", func(m map[string]any) {
		if m["outcome"] != "none" || len(m["addresses"].([]any)) != 0 {
			t.Fatalf("DEL line %v, want nothing to release", m)
		}
	})
}
