package perflab

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Poll is how often conditions that watches do not cover are checked.
const Poll = 250 * time.Millisecond

// Retry runs f until it succeeds, for at most d: right after `lab up` the
// controller's webhooks may not answer yet.
func Retry(ctx context.Context, d time.Duration, what string, f func(context.Context) error) error {
	deadline := time.Now().Add(d)
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("failed to %s within %s: %w", what, d, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// WaitFor polls cond until it holds, for at most d.
func WaitFor(ctx context.Context, d time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok && err == nil {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("failed to see %s within %s: %w", what, d, last)
			}
			return fmt.Errorf("failed to see %s within %s", what, d)
		case <-time.After(Poll):
		}
	}
}

// ForEach runs f(i) for i in [0,n) with workers goroutines and returns the
// first error.
func ForEach(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	return first
}
