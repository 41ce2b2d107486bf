package hq_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/wire"
)

// FuzzBatchUpload posts arbitrary bodies as a store's upload: HQ answers
// with an ack or a JSON error a store can act on, never a crash or a 500.
func FuzzBatchUpload(f *testing.F) {
	st, err := bolt.Open(filepath.Join(f.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	srv := hq.NewServer(st, hq.Options{AdminToken: adminToken, ParseProgram: testParser})
	tok, err := srv.IssueCredential(context.Background(), hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	if err != nil {
		f.Fatal(err)
	}
	till := &hqtest.Till{Store: "S1", Till: "T1"}
	valid, err := json.Marshal(batchOf(till.Enrol("M1", hqtest.T0)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, false)
	f.Add(valid, true)
	f.Add([]byte(`{"store":"S1","till":"T1","first":1,"last":1,"entries":[{}]}`), false)
	f.Add([]byte(`{"store":"S1","till":"T1","first":3,"last":2,"entries":[]}`), false)
	f.Add([]byte(`{"store":"S2","till":"T1","first":1,"last":1,"entries":[{"store":"S2","till":"T1","seq":1}]}`), false)
	f.Add([]byte("not json"), true)
	f.Fuzz(func(t *testing.T, body []byte, gzipped bool) {
		req := httptest.NewRequest(http.MethodPost, wire.PathBatches, bytes.NewReader(body))
		if gzipped {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			w.Write(body)
			w.Close()
			req = httptest.NewRequest(http.MethodPost, wire.PathBatches, &buf)
			req.Header.Set("Content-Encoding", "gzip")
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var ack wire.Ack
			if err := json.Unmarshal(rec.Body.Bytes(), &ack); err != nil {
				t.Fatalf("200 without an ack: %q", rec.Body.String())
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			var e wire.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("%d without a JSON error: %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}
