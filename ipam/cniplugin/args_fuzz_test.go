package cniplugin

import (
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{
		"K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_UID=u;K8S_POD_INFRA_CONTAINER_ID=c",
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web",
		"K8S_POD_NAMESPACE=ns", "garbage", ";;", "K8S_POD_NAME==x;K8S_POD_NAMESPACE=;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pa, err := ParseArgs(s)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) || te.Code != types.ErrInvalidEnvironmentVariables || te.Msg == "" {
				t.Fatalf("ParseArgs(%q): %v, want a CNI error 4 with a message", s, err)
			}
			return
		}
		if pa.Namespace == "" || pa.Name == "" {
			t.Fatalf("ParseArgs(%q) accepted %+v without pod identity", s, pa)
		}
	})
}
