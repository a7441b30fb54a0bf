// Command spindle-controller runs Spindle's cluster-wide controllers and its
// admission webhooks. Flags are documented in docs/controller.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/spindle-net/spindle/cmd/internal/version"
	"github.com/spindle-net/spindle/ipam/controllermanager"
)

func main() {
	var o controllermanager.Options
	o.AddFlags(flag.CommandLine)
	klog.InitFlags(flag.CommandLine)
	showVersion := version.Flag(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		fmt.Println(version.String("spindle-controller"))
		return
	}
	if err := o.LogFormat.Apply(flag.CommandLine, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "spindle-controller:", err)
		os.Exit(2)
	}
	o.Version = version.Version
	ctrl.SetLogger(klog.Background())
	err := o.Validate()
	if err == nil {
		cfg, cerr := ctrl.GetConfig()
		if cerr != nil {
			err = fmt.Errorf("failed to load API server configuration: %w", cerr)
		} else if o.Import != "" {
			err = controllermanager.RunImport(ctrl.SetupSignalHandler(), cfg, o, os.Stdout)
		} else {
			err = controllermanager.Run(ctrl.SetupSignalHandler(), cfg, o)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "spindle-controller:", err)
		if errors.Is(err, controllermanager.ErrImportProblems) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}
