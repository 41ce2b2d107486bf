package hq

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"posagent/ledger/staff"
	"posagent/sync/wire"
)

// FeedHeadStore is a Store that reads the head of its changes feed in a
// few cheap statements. The server then answers a pull that is already at
// the head from memory (see Options.FeedHeadEvery): with thousands of
// stores pulling every 30 seconds nearly every pull finds nothing new, and
// it then costs only its credential check.
type FeedHeadStore interface {
	FeedHead(ctx context.Context) (FeedHead, error)
}

// FeedHead is the changes feed as one read found it.
type FeedHead interface {
	// UpToDate reports whether the changes page after cursor holds
	// nothing as of the read and, if so, the cursor that page carries. A
	// cursor it cannot judge (a bad one too) is not up to date: the page
	// is then read from the store.
	UpToDate(cursor string) (next string, ok bool)
	// CashiersGen changes, in the same transaction, with every change to
	// any store's cashiers.
	CashiersGen() int64
}

// AllCashiersStore is a CashierStore that reads every store's cashiers at
// once. A process then learns every store's list version in one read when
// the cashier generation changes, instead of in a read per store and
// process at each store's next pull.
type AllCashiersStore interface {
	// EachStoreCashiers calls fn with each store's cashiers, by id;
	// stores without any are left out.
	EachStoreCashiers(ctx context.Context, fn func(store string, list []staff.Cashier) error) error
}

// DefaultFeedHeadEvery is how old a feed head may be and still answer a
// pull: a change made at any HQ process is in every pull that starts this
// long after it committed.
const DefaultFeedHeadEvery = 250 * time.Millisecond

// headRead is one read of the feed head and the member-code keys.
type headRead struct {
	at   time.Time // when the read began: it holds every change committed before
	head FeedHead
	keys []wire.MemberCodeKey // nil with noKeys
	// noKeys: the storage keeps no member-code keys (ErrNoMemberCodes).
	noKeys bool
}

// feedHeads is a server's latest feed head and what it learnt of the
// stores' cashier lists under it.
type feedHeads struct {
	reading sync.Mutex // held by the one pull that reads a new head

	mu  sync.Mutex
	cur *headRead
	// forgot counts forgetHead calls: a read that began before one is
	// not kept, as it may not hold the change.
	forgot uint64
	// cashiers is each store's cashier list version as read from the
	// storage, valid while the generation is gen: any change to any list
	// changes the generation and replaces the map. allCashiers: it holds
	// every store with cashiers (a store missing has none).
	cashiers    map[string]string
	allCashiers bool
	gen         int64
}

// feedHead returns a head read less than FeedHeadEvery ago, or nil when
// there is none to use (the storage reads no head, the read failed, or
// another pull is reading the first one): the pull then reads its page
// from the storage as before. A head past half its age is replaced in the
// background while it still answers, so under a steady stream of pulls
// the head never runs out and no pull waits for it.
func (s *Server) feedHead(ctx context.Context) *headRead {
	fs, ok := s.st.(FeedHeadStore)
	if !ok || s.o.FeedHeadEvery < 0 {
		return nil
	}
	s.heads.mu.Lock()
	h := s.heads.cur
	s.heads.mu.Unlock()
	if h != nil {
		switch age := time.Since(h.at); {
		case age < s.o.FeedHeadEvery/2:
			return h
		case age < s.o.FeedHeadEvery:
			if s.heads.reading.TryLock() {
				go func() {
					defer s.heads.reading.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					s.readHead(ctx, fs)
				}()
			}
			return h
		}
	}
	if !s.heads.reading.TryLock() {
		return nil
	}
	defer s.heads.reading.Unlock()
	// A pull that gives up does not cut the read short: the head serves
	// the pulls after it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return s.readHead(ctx, fs)
}

// readHead reads the head and the member-code keys and keeps them; nil
// if the read failed or a change this process made began meanwhile. The
// caller holds heads.reading.
func (s *Server) readHead(ctx context.Context, fs FeedHeadStore) *headRead {
	s.heads.mu.Lock()
	forgot, gen, known := s.heads.forgot, s.heads.gen, s.heads.cashiers != nil
	s.heads.mu.Unlock()
	h := &headRead{at: time.Now()}
	var err error
	if h.head, err = fs.FeedHead(ctx); err != nil {
		s.o.Log.Warn("reading the changes feed's head; pulls read the storage", "err", err)
		return nil
	}
	h.keys, err = s.memberCodePublicKeys(ctx)
	if h.noKeys = errors.Is(err, ErrNoMemberCodes); err != nil && !h.noKeys {
		s.o.Log.Warn("reading the member-code keys; pulls read the storage", "err", err)
		return nil
	}
	g := h.head.CashiersGen()
	var versions map[string]string
	all := false
	if g != gen || !known {
		// Read after the generation: a change since changes it again.
		versions, all = s.allCashierVersions(ctx)
	}
	s.heads.mu.Lock()
	defer s.heads.mu.Unlock()
	if s.heads.forgot != forgot {
		return nil
	}
	if g != s.heads.gen || s.heads.cashiers == nil {
		s.heads.cashiers, s.heads.allCashiers, s.heads.gen = versions, all, g
	}
	s.heads.cur = h
	return h
}

// allCashierVersions is every store's cashier list version, when the
// storage reads them all at once; else an empty map, filled pull by pull.
func (s *Server) allCashierVersions(ctx context.Context) (map[string]string, bool) {
	versions := map[string]string{}
	as, ok := s.st.(AllCashiersStore)
	if !ok {
		return versions, false
	}
	err := as.EachStoreCashiers(ctx, func(store string, list []staff.Cashier) error {
		versions[store] = CashiersVersion(list)
		return nil
	})
	if err != nil {
		s.o.Log.Warn("reading every store's cashiers; each store's next pull reads its own", "err", err)
		return map[string]string{}, false
	}
	return versions, true
}

// forgetHead drops the head after a change this process made that pulls
// must see at once (a program published, a key rotated, a cashier changed):
// the next pull reads a new one.
func (s *Server) forgetHead() {
	s.heads.mu.Lock()
	s.heads.cur = nil
	s.heads.forgot++
	s.heads.mu.Unlock()
}

// knownCashiers is the store's cashier list version as read under h's
// generation, if a pull read it.
func (s *Server) knownCashiers(h *headRead, store string) (string, bool) {
	s.heads.mu.Lock()
	defer s.heads.mu.Unlock()
	if s.heads.gen != h.head.CashiersGen() {
		return "", false
	}
	v, ok := s.heads.cashiers[store]
	if !ok && s.heads.allCashiers {
		return "", true // no cashiers: the version of an empty list
	}
	return v, ok
}

// learnCashiers keeps the version of the store's list as read from the
// storage after h was read: a change since h's read changes the
// generation, so the version is good while the generation is h's.
func (s *Server) learnCashiers(h *headRead, store, version string) {
	s.heads.mu.Lock()
	defer s.heads.mu.Unlock()
	if s.heads.gen == h.head.CashiersGen() && s.heads.cashiers != nil {
		s.heads.cashiers[store] = version
	}
}

// changesFromHead answers the pull from the head h when the page would
// hold nothing: nothing after the cursor, and (when asked) the till's
// cashier list version the store's. It reports whether it answered.
func (s *Server) changesFromHead(w http.ResponseWriter, r *http.Request, h *headRead, c Credential) bool {
	q := r.URL.Query()
	if _, err := s.limit(r); err != nil {
		return false // the storage path answers the error
	}
	if q.Has(wire.QueryCashiers) && c.Role == RoleStore {
		if v, ok := s.knownCashiers(h, c.ID); !ok || v != q.Get(wire.QueryCashiers) {
			return false
		}
	}
	next, ok := h.head.UpToDate(q.Get("cursor"))
	if !ok {
		return false
	}
	ch := wire.Changes{Cursor: next}
	if !h.noKeys {
		ch.MemberCodeKeys = usableKeys(h.keys, s.o.Now())
	}
	writeJSON(w, http.StatusOK, ch)
	return true
}

// usableKeys are the keys whose codes are still accepted at now.
func usableKeys(keys []wire.MemberCodeKey, now time.Time) []wire.MemberCodeKey {
	out := make([]wire.MemberCodeKey, 0, len(keys))
	for _, k := range keys {
		if k.NotAfter.IsZero() || !now.After(k.NotAfter) {
			out = append(out, k)
		}
	}
	return out
}
