// Command spindle-agent is Spindle's IPAM node agent: it serves the spiderpool
// CNI plugin of its node over a unix socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/spindle-net/spindle/cmd/internal/version"
	"github.com/spindle-net/spindle/ipam/agent"
)

func main() {
	var o agent.Options
	o.BindFlags(flag.CommandLine)
	klog.InitFlags(flag.CommandLine)
	showVersion := version.Flag(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		fmt.Println(version.String("spindle-agent"))
		return
	}
	if err := o.LogFormat.Apply(flag.CommandLine, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "spindle-agent:", err)
		os.Exit(2)
	}
	o.Version = version.Version
	ctrllog.SetLogger(klog.Background())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx, &o, klog.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "spindle-agent:", err)
		os.Exit(1)
	}
}
