package hq

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"time"

	"posagent/ledger/entry"
)

// StoreTotals sums what one store (or the chain) sent.
type StoreTotals struct {
	Entries      int64 `json:"entries"`
	Sales        int64 `json:"sales"`
	SalesDue     int64 `json:"sales_due"` // fen customers paid (sum of Sale.Due)
	Refunds      int64 `json:"refunds"`
	RefundAmount int64 `json:"refund_amount"`
	Voids        int64 `json:"voids"`
	TopUps       int64 `json:"topups"`
	Points       int64 `json:"points"`       // sum of PointsDelta
	StoredValue  int64 `json:"stored_value"` // sum of StoredValueDelta
	// Overflow: a sum left the int64 range and is shown at its limit.
	Overflow bool `json:"overflow,omitempty"`
}

func (t *StoreTotals) add(e *entry.Entry) {
	t.Entries++
	sum(&t.Points, e.PointsDelta, &t.Overflow)
	sum(&t.StoredValue, e.StoredValueDelta, &t.Overflow)
	switch {
	case e.Sale != nil:
		t.Sales++
		sum(&t.SalesDue, e.Sale.Due, &t.Overflow)
	case e.Refund != nil:
		t.Refunds++
		sum(&t.RefundAmount, e.Refund.Amount, &t.Overflow)
	case e.Void != nil:
		t.Voids++
	case e.TopUp != nil:
		t.TopUps++
	}
}

// Totals is what HQ holds: per store and chain-wide entry sums, and the sum
// of member balances (which equals the member entries' deltas).
type Totals struct {
	Chain              StoreTotals             `json:"chain"`
	Stores             map[string]*StoreTotals `json:"stores"`
	MemberPoints       int64                   `json:"member_points"`
	MemberStoredValue  int64                   `json:"member_stored_value"`
	MemberOverflow     bool                    `json:"member_overflow,omitempty"` // a member sum is at the int64 limit
	Members            int                     `json:"members"`
	FlaggedMembers     int                     `json:"flagged_members"`
	OpenDeadLetters    int                     `json:"open_dead_letters"`
	ResolvedDeadLetter int                     `json:"resolved_dead_letters"`
}

// Totals reports the entry totals kept at ingest (hq verify checks them
// against the entries) and sums every member balance.
func (s *Server) Totals(ctx context.Context) (Totals, error) {
	t := Totals{Stores: map[string]*StoreTotals{}}
	ts, err := s.st.AggTotals(ctx)
	if err != nil {
		return t, err
	}
	var chain TotalSums
	for st, sums := range ts {
		if sums.Zero() {
			continue
		}
		chain.AddAll(sums)
		v := sums.StoreTotals()
		t.Stores[st] = &v
	}
	t.Chain = chain.StoreTotals()
	err = s.st.Members(ctx, func(m Member) error {
		t.Members++
		sum(&t.MemberPoints, m.Points, &t.MemberOverflow)
		sum(&t.MemberStoredValue, m.StoredValue, &t.MemberOverflow)
		if m.Flagged {
			t.FlaggedMembers++
		}
		return nil
	})
	if err != nil {
		return t, err
	}
	ds, err := s.st.DeadLetters(ctx, true)
	for _, d := range ds {
		if d.ResolvedAt.IsZero() {
			t.OpenDeadLetters++
		} else {
			t.ResolvedDeadLetter++
		}
	}
	return t, err
}

// RecallRequest issues a recall coupon (回归礼) to every dormant member.
type RecallRequest struct {
	Campaign    string `json:"campaign"`             // part of the coupon id; the same campaign twice issues nothing new
	Name        string `json:"name,omitempty"`       // [回归礼]
	Threshold   int64  `json:"threshold"`            // fen, 满X
	Value       int64  `json:"value"`                // fen, 减Y
	ValidDays   int    `json:"valid_days,omitempty"` // [30]
	DormantDays int    `json:"dormant_days,omitempty"`
}

// RecallResult counts the coupons issued.
type RecallResult struct {
	Issued  int      `json:"issued"`
	Members []string `json:"members"`
}

// IssueRecall gives every member without a sale (or, never having bought,
// without activity since enrolment) for DormantDays local days a coupon; it
// reaches the stores with their next changes pull.
func (s *Server) IssueRecall(ctx context.Context, r RecallRequest) (RecallResult, error) {
	res := RecallResult{Members: []string{}}
	if r.Campaign == "" || r.Value <= 0 || r.Threshold < 0 {
		return res, errors.New("hq: recall needs a campaign name and a value > 0 fen (threshold ≥ 0)")
	}
	if r.Name == "" {
		r.Name = "回归礼"
	}
	if r.ValidDays <= 0 {
		r.ValidDays = 30
	}
	if r.DormantDays <= 0 {
		r.DormantDays = s.o.DormantDays
	}
	now := s.o.Now()
	local := now.In(s.loc)
	from := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, s.loc)
	until := from.AddDate(0, 0, r.ValidDays).Add(-time.Second)
	var ds []Delta
	err := s.st.Members(ctx, func(m Member) error {
		last := m.LastSale
		if last.IsZero() && m.Data != nil {
			last, _ = time.Parse(time.RFC3339, m.Data.EnrolledAt)
		}
		if last.IsZero() || localDays(last, now, s.loc) < r.DormantDays {
			return nil
		}
		id := "recall-" + r.Campaign + "-" + m.ID
		for _, c := range m.Coupons {
			if c.ID == id && c.Known {
				return nil
			}
		}
		ds = append(ds, Delta{MemberID: m.ID, CouponsIssued: []entry.MemberCoupon{{
			ID: id, MemberID: m.ID, Name: r.Name, Threshold: r.Threshold, Value: r.Value,
			ValidFrom: from.Format(time.RFC3339), ValidUntil: until.Format(time.RFC3339),
		}}})
		res.Members = append(res.Members, m.ID)
		return nil
	})
	if err != nil || len(ds) == 0 {
		return res, err
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].MemberID < ds[j].MemberID })
	sort.Strings(res.Members)
	if err := s.st.ApplyDeltas(ctx, ds); err != nil {
		return RecallResult{}, err
	}
	res.Issued = len(ds)
	return res, nil
}

func (s *Server) handleRecall(w http.ResponseWriter, r *http.Request) {
	var req RecallRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"campaign":"2026-03","threshold":10000,"value":2000}: `+err.Error())
		return
	}
	res, err := s.IssueRecall(r.Context(), req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// localDays counts calendar days in loc from a to b.
func localDays(a, b time.Time, loc *time.Location) int {
	a, b = a.In(loc), b.In(loc)
	da := time.Date(a.Year(), a.Month(), a.Day(), 12, 0, 0, 0, time.UTC)
	db := time.Date(b.Year(), b.Month(), b.Day(), 12, 0, 0, 0, time.UTC)
	return int(db.Sub(da).Hours() / 24)
}

// TLSConfig builds the server TLS config from PEM files; with clientCA set,
// stores must present a certificate signed by it (mutual TLS).
func TLSConfig(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("hq: TLS certificate %s / key %s: %w", certFile, keyFile, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("hq: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("hq: client CA %s holds no PEM certificate", clientCA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}
