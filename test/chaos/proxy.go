package main

import (
	"context"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Injected answers of the fault proxy.
const (
	InjectNone  = ""
	InjectHTTP  = "http-500"  // a 500 Status, as an overloaded or failing API server
	InjectRetry = "http-429"  // a 429 with Retry-After, as API priority and fairness
	InjectReset = "conn-drop" // the connection closed without an answer
)

// Choose decides what the proxy does with one request: u and v are uniform
// draws in [0,1); rate is the share of requests that fail. Watches are never
// failed here (their streams are cut when an error window opens).
func Choose(u, v, rate float64, watch bool) string {
	if watch || u >= rate {
		return InjectNone
	}
	switch {
	case v < 0.5:
		return InjectHTTP
	case v < 0.75:
		return InjectRetry
	default:
		return InjectReset
	}
}

// FaultProxy is a reverse proxy in front of the API server that fails a
// share of the requests of the clients pointed at it (one node's agent).
type FaultProxy struct {
	upstream *url.URL
	proxy    *httputil.ReverseProxy

	mu      sync.Mutex
	rng     *rand.Rand
	rate    float64
	watches map[*http.Request]context.CancelFunc

	Injected atomic.Int64
	Passed   atomic.Int64
}

// NewFaultProxy relays to upstream through transport (which carries the
// credentials of the clients it stands in for).
func NewFaultProxy(upstream *url.URL, transport http.RoundTripper, seed int64) *FaultProxy {
	p := &FaultProxy{upstream: upstream, rng: rand.New(rand.NewPCG(uint64(seed), 0xfa11)), watches: map[*http.Request]context.CancelFunc{}}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.Host = upstream.Host
		},
		Transport:     transport,
		FlushInterval: -1,
		// Upstream errors are what the faults cause; the agent reports them.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return p
}

// SetRate sets the share of requests that fail; opening a window (a rate
// above zero) also cuts every open watch, as a restarting API server would.
func (p *FaultProxy) SetRate(rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = rate
	if rate > 0 {
		for _, cancel := range p.watches {
			cancel()
		}
	}
}

func isWatch(r *http.Request) bool {
	return r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1" || strings.Contains(r.URL.Path, "/watch/")
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	watch := isWatch(r)
	p.mu.Lock()
	what := Choose(p.rng.Float64(), p.rng.Float64(), p.rate, watch)
	p.mu.Unlock()
	if what != InjectNone {
		p.Injected.Add(1)
	}
	switch what {
	case InjectHTTP:
		writeStatus(w, http.StatusInternalServerError, "InternalError", "")
		return
	case InjectRetry:
		writeStatus(w, http.StatusTooManyRequests, "TooManyRequests", "1")
		return
	case InjectReset:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		writeStatus(w, http.StatusBadGateway, "InternalError", "")
		return
	}
	p.Passed.Add(1)
	if watch {
		ctx, cancel := context.WithCancel(r.Context())
		r = r.WithContext(ctx)
		p.mu.Lock()
		p.watches[r] = cancel
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			delete(p.watches, r)
			p.mu.Unlock()
			cancel()
		}()
	}
	p.proxy.ServeHTTP(w, r)
}

func writeStatus(w http.ResponseWriter, code int, reason, retryAfter string) {
	w.Header().Set("Content-Type", "application/json")
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"chaos: injected fault","reason":"` + reason + `","code":` + strconv.Itoa(code) + `}`))
}
