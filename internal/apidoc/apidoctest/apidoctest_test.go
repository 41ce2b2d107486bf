package apidoctest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/internal/apidoc"
)

const doc = `openapi: 3.1.0
info: {title: t, version: "1"}
security: [{bearer: []}]
paths:
  /things:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [name]
              properties:
                name: {type: string}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Thing"}
        "400":
          description: bad
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
  /open:
    get:
      security: []
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Thing"}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
  schemas:
    Thing:
      type: object
      required: [id, fen]
      properties:
        id: {type: string}
        fen: {type: integer, description: money in fen}
    Error:
      type: object
      required: [code]
      properties:
        code: {type: string}
`

// recordTB keeps what the checker reports instead of failing the test.
type recordTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Errorf(f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(f, a...))
}

func TestChecker(t *testing.T) {
	raw, err := apidoc.JSON([]byte(doc))
	require.NoError(t, err)
	c := Load(t, "test.yaml", raw)
	require.Equal(t, []string{"GET /open", "POST /things"}, c.Operations())

	type answer struct {
		status int
		ct     string
		body   string
		gz     bool
	}
	for _, tc := range []struct {
		name, method, path, auth, reqBody string
		ans                               answer
		want                              string // "" no report, else part of it
	}{
		{"documented", "POST", "/things", "Bearer x", `{"name":"a"}`, answer{200, "application/json", `{"id":"1","fen":1250}`, false}, ""},
		{"gzip answer", "GET", "/open", "", "", answer{200, "application/json", `{"id":"1","fen":1}`, true}, ""},
		{"undocumented field", "GET", "/open", "", "", answer{200, "application/json", `{"id":"1","fen":1,"extra":true}`, false}, "extra"},
		{"float money", "GET", "/open", "", "", answer{200, "application/json", `{"id":"1","fen":12.5}`, false}, "integer"},
		{"undocumented status", "GET", "/open", "", "", answer{418, "application/json", `{"id":"1","fen":1}`, false}, "status"},
		{"undocumented content type", "GET", "/open", "", "", answer{200, "text/plain", `hi`, false}, "Content-Type"},
		{"undocumented path served", "GET", "/secret", "", "", answer{200, "application/json", `{}`, false}, "no operation GET /secret"},
		{"undocumented path refused", "GET", "/secret", "", "", answer{404, "text/plain", `404 page not found`, false}, ""},
		{"bad request refused", "POST", "/things", "Bearer x", `{"nome":"a"}`, answer{400, "application/json", `{"code":"bad_json"}`, false}, ""},
		{"bad request accepted", "POST", "/things", "Bearer x", `{"nome":"a"}`, answer{200, "application/json", `{"id":"1","fen":1}`, false}, "refuses the request"},
		{"no token accepted", "POST", "/things", "", `{"name":"a"}`, answer{200, "application/json", `{"id":"1","fen":1}`, false}, "refuses the request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordTB{TB: t}
			h := c.Handler(rec, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				w.Header().Set("Content-Type", tc.ans.ct)
				body := []byte(tc.ans.body)
				if tc.ans.gz {
					var b bytes.Buffer
					zw := gzip.NewWriter(&b)
					_, _ = zw.Write(body)
					_ = zw.Close()
					body = b.Bytes()
					w.Header().Set("Content-Encoding", "gzip")
				}
				w.WriteHeader(tc.ans.status)
				_, _ = w.Write(body)
			}))
			srv := httptest.NewServer(h)
			defer srv.Close()
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.reqBody))
			require.NoError(t, err)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			tr := &http.Transport{DisableCompression: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Do(req)
			require.NoError(t, err)
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			srv.Close() // the handler has returned: its report is in
			if tc.want == "" {
				require.Empty(t, rec.errs)
				return
			}
			require.Len(t, rec.errs, 1)
			require.Contains(t, rec.errs[0], tc.want)
		})
	}
}
