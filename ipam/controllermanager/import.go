package controllermanager

import (
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/migrate"
)

// ErrImportProblems is returned by RunImport when some live pods' addresses
// could not be carried over (conflicts, addresses outside every pool).
var ErrImportProblems = errors.New("the import left addresses of live pods unclaimed")

// RunImport runs the import o.Import (o.ImportDryRun: the report only) and
// prints its report to out. It returns ErrImportProblems (wrapped) when the
// report has conflicts or addresses outside every pool.
func RunImport(ctx context.Context, cfg *rest.Config, o Options, out io.Writer) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(o.QPS), o.Burst
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return fmt.Errorf("failed to create API client: %w", err)
	}
	im := &migrate.Importer{C: c, DryRun: o.ImportDryRun}
	rep, err := im.Run(ctx, o.Import)
	if rep != nil {
		if werr := rep.Write(out); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return fmt.Errorf("import from %s failed (records before the failure are in the report; running the import again resumes): %w", o.Import, err)
	}
	if n := rep.Problems(); n > 0 {
		return fmt.Errorf("%w: %d records (see the conflict and no-pool lines above)", ErrImportProblems, n)
	}
	return nil
}
