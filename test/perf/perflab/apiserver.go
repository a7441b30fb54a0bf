package perflab

import (
	"fmt"
	"runtime"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/test/kubeapi"
)

// StartAPIServer prints the machine the benchmark runs on, starts an
// envtest kube-apiserver and etcd with Spindle's CRDs, and returns it with a
// client for scheme. The caller stops env.
func StartAPIServer(scheme *k8sruntime.Scheme) (*kubeapi.Env, client.Client, error) {
	fmt.Printf("# machine: %d CPUs (GOMAXPROCS %d), %s; API server: envtest kube-apiserver + etcd (unsafe-no-fsync), CRDs from charts/spindle/crds\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	env, err := kubeapi.Start()
	if err != nil {
		return nil, nil, err
	}
	k, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, nil, fmt.Errorf("failed to create a client of the API server: %w", err)
	}
	return env, k, nil
}
