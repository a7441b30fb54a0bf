package framework

import "testing"

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(`# HELP spindle_controller_gc_collected_total Pod allocations collected.
# TYPE spindle_controller_gc_collected_total counter
spindle_controller_gc_collected_total{reason="PodDeleted"} 3
spindle_controller_gc_collected_total{reason="PodUIDMismatch"} 17
spindle_controller_gc_precondition_conflicts_total 13
spindle_controller_ippool_allocated_ips{pool="a,b=\"c\"\\d"} 2
go_gc_duration_seconds{quantile="0.5"} 1.5e-05
process_start_time_seconds 1.7e+09 1700000000000
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"spindle_controller_gc_collected_total", []string{"reason", "PodDeleted"}, 3, true},
		{"spindle_controller_gc_collected_total", []string{"reason", "PodUIDMismatch"}, 17, true},
		{"spindle_controller_gc_collected_total", []string{"reason", "PodFailed"}, 0, false},
		{"spindle_controller_gc_precondition_conflicts_total", nil, 13, true},
		{"spindle_controller_ippool_allocated_ips", []string{"pool", `a,b="c"\d`}, 2, true},
		{"go_gc_duration_seconds", []string{"quantile", "0.5"}, 1.5e-05, true},
		{"process_start_time_seconds", nil, 1.7e+09, true},
	} {
		got, ok := m.Get(tc.name, tc.labels...)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Get(%s %v) = %v, %v; want %v, %v", tc.name, tc.labels, got, ok, tc.want, tc.ok)
		}
	}
	if s := m.Sum("spindle_controller_gc_collected_total"); s != 20 {
		t.Errorf("Sum = %v, want 20", s)
	}
	if _, err := ParseMetrics(`broken{reason="x} 1`); err == nil {
		t.Error("an unterminated label value must be an error")
	}
}
