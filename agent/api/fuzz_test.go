package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/ledger"
)

// FuzzWriteCalls sends arbitrary bodies to every call the POS can make: the
// agent answers with a result or a JSON error the cashier can act on, never
// a crash or a 500, and the ledger stays consistent.
func FuzzWriteCalls(f *testing.F) {
	dir := f.TempDir()
	l, err := ledger.Open(filepath.Join(dir, "ledger.db"), ledger.Options{Store: "S1", Till: "T1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		var rep bytes.Buffer
		if ok, err := l.Verify(&rep); err != nil || !ok {
			f.Errorf("ledger verify after fuzzing: %v\n%s", err, rep.String())
		}
		l.Close()
	})
	loc, _ := time.LoadLocation("Asia/Shanghai")
	s, err := New(Options{
		Ledger: l, Hub: events.NewHub(64), Store: "S1", Till: "T1", Tills: []string{"T2"},
		TokenKey: key, Card: config.CardRule{Luhn: true}, APIToken: apiToken,
		DataDir: dir, MinFreeBytes: 1, Location: loc,
	})
	if err != nil {
		f.Fatal(err)
	}
	paths := []string{"/v1/members", "/v1/members/lookup", "/v1/quote", "/v1/sales", "/v1/refunds", "/v1/voids", "/v1/topups"}
	f.Add(uint8(0), []byte(`{"enrol_id":"E1","id":"M1","name":"N","mobile":"13812341234","card":"4111111111111111"}`))
	f.Add(uint8(1), []byte(`{"card":"4111111111111111"}`))
	f.Add(uint8(2), []byte(`{"member_id":"M1","lines":[{"line_no":1,"sku":"A","qty":2,"unit_price":1990,"discountable":true,"earns_points":true}],"redeem_points":0}`))
	f.Add(uint8(3), []byte(`{"receipt_id":"R1","member_id":"M1","lines":[{"line_no":1,"sku":"A","qty":2,"unit_price":1990,"discountable":true,"earns_points":true}]}`))
	f.Add(uint8(4), []byte(`{"refund_id":"F1","receipt_id":"R1","lines":[{"line_no":1,"qty":1}]}`))
	f.Add(uint8(5), []byte(`{"receipt_id":"R1","reason":"x"}`))
	f.Add(uint8(6), []byte(`{"topup_id":"U1","member_id":"M1","amount":10000}`))
	f.Add(uint8(3), []byte(`{"receipt_id":"R2","lines":[{"line_no":1,"qty":-1,"unit_price":9223372036854775807}]}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		req := httptest.NewRequest(http.MethodPost, paths[int(which)%len(paths)], bytes.NewReader(body))
		req.Host = "127.0.0.1:8420" // the agent answers loopback names only
		req.Header.Set("Authorization", "Bearer "+apiToken)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusCreated:
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%d with a body that is not JSON: %q", rec.Code, rec.Body.String())
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge,
			http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
			var e struct{ Code, Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("%d without a JSON error: %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("%s: status %d for %q: %s", req.URL.Path, rec.Code, body, rec.Body.String())
		}
	})
}
