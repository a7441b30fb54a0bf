package nodeserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// FuzzHandler sends arbitrary bodies to every POST path of the plugin
// socket: the answer is always a JSON body, and an undecodable request is a
// CNI error 7 naming the path.
func FuzzHandler(f *testing.F) {
	for _, body := range []string{
		`{"containerID":"c","ifName":"eth0","podNamespace":"ns","podName":"p"}`,
		`{"containerID":1}`, `{`, ``, `null`, `[]`, `{"validAttachments":[{"containerID":"c","ifName":"eth0"}]}`,
		`{"podNamespace":"ns","podName":"p","address":"10.0.0.1","ifName":"eth0","podUID":"u"}`,
		strings.Repeat("[", 100000),
	} {
		for _, path := range []string{nodeapi.PathAdd, nodeapi.PathDel, nodeapi.PathCheck, nodeapi.PathGC, nodeapi.PathConflict} {
			f.Add(path, body)
		}
	}
	h := Handler(&fakeBackend{})
	f.Fuzz(func(t *testing.T, path, body string) {
		switch path {
		case nodeapi.PathAdd, nodeapi.PathDel, nodeapi.PathCheck, nodeapi.PathGC, nodeapi.PathConflict:
		default:
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("POST %s %q: answer %d %q is not JSON", path, body, w.Code, w.Body.String())
		}
		if w.Code == http.StatusBadRequest {
			var e nodeapi.ErrorResponse
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Code != nodeapi.CodeInvalidConfig || !strings.Contains(e.Msg, path) {
				t.Fatalf("POST %s %q: %q, want a CNI error 7 naming the path", path, body, w.Body.String())
			}
		}
	})
}
