// Package logformat is the --log-format flag of Spindle's daemons: klog's
// text lines (the default) or one JSON object per line, written by
// Kubernetes' component-base logging.
package logformat

import (
	"flag"
	"fmt"
	"io"

	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register" // the json format
)

// FlagName is the name of the flag.
const FlagName = "log-format"

// The formats.
const (
	Text Format = logsapi.DefaultLogFormat
	JSON Format = logsapi.JSONLogFormat
)

// Format is a log format; as a flag.Value it accepts only text and json, so
// a bad value fails flag parsing with the flag named.
type Format string

// AddFlag registers --log-format on fs, defaulting to text.
func AddFlag(fs *flag.FlagSet, f *Format) {
	*f = Text
	fs.Var(f, FlagName, "log format: text (klog lines) or json (one JSON object per line)")
}

func (f *Format) String() string { return string(*f) }

// Set implements flag.Value.
func (f *Format) Set(s string) error {
	switch Format(s) {
	case Text, JSON:
		*f = Format(s)
		return nil
	}
	return fmt.Errorf("log format %q is not text or json", s)
}

// Apply makes klog, and every logger taken from it afterwards
// (klog.Background()), write in format f to w. Call it once, right after
// the flags are parsed: fs must hold klog's flags (klog.InitFlags), whose -v
// applies to both formats. Text leaves klog as its flags configured it; json
// refuses klog's text-only flags (e.g. -vmodule, -log_file).
func (f Format) Apply(fs *flag.FlagSet, w io.Writer) error {
	if f == Text || f == "" {
		return nil
	}
	c := logsapi.NewLoggingConfiguration()
	c.Format = string(f)
	if v := fs.Lookup("v"); v != nil {
		if err := logsapi.VerbosityLevelPflag(&c.Verbosity).Set(v.Value.String()); err != nil {
			return fmt.Errorf("invalid -v %q: %w", v.Value.String(), err)
		}
	}
	if err := logsapi.ValidateAndApplyWithOptions(c, &logsapi.LoggingOptions{ErrorStream: w, InfoStream: w}, nil); err != nil {
		return fmt.Errorf("--%s=%s does not combine with the klog flags given: %w", FlagName, f, err)
	}
	return nil
}
