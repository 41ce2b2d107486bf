// Package memstore is an in-memory outbox and inbox for the sync client,
// for tests and benchmarks. It behaves like the till ledger as the client
// sees it: gapless per-till sequences, a monotonic acknowledged mark, and
// idempotent application of HQ's member states and programs.
package memstore

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/wire"
)

// Store is safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	store    string
	entries  map[string][]entry.Entry // till → entries, index = seq-1
	acked    map[string]uint64
	dead     map[string]wire.DeadLetter // entry id → dead letter
	members  map[string]wire.MemberState
	programs [][]byte
	cursor   string
}

// New returns an empty outbox/inbox for store.
func New(store string) *Store {
	return &Store{
		store:   store,
		entries: map[string][]entry.Entry{},
		acked:   map[string]uint64{},
		dead:    map[string]wire.DeadLetter{},
		members: map[string]wire.MemberState{},
	}
}

// Append writes e to till's outbox with the next sequence, filling Store,
// Till and Seq, and returns the stored entry.
func (s *Store) Append(till string, e entry.Entry) (entry.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Store, e.Till = s.store, till
	e.Seq = uint64(len(s.entries[till])) + 1
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	if err := e.Validate(); err != nil {
		return entry.Entry{}, err
	}
	s.entries[till] = append(s.entries[till], e)
	return e, nil
}

// Entries returns a copy of till's entries.
func (s *Store) Entries(till string) []entry.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]entry.Entry(nil), s.entries[till]...)
}

// Tills implements client.Outbox.
func (s *Store) Tills() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.entries))
	for t := range s.entries {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// Pending implements client.Outbox.
func (s *Store) Pending(till string, after uint64, limit int) ([]entry.Entry, error) {
	if limit <= 0 {
		return nil, errors.New("memstore: limit must be positive")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	es := s.entries[till]
	if after >= uint64(len(es)) {
		return nil, nil
	}
	end := min(after+uint64(limit), uint64(len(es)))
	return append([]entry.Entry(nil), es[after:end]...), nil
}

// Acked implements client.Outbox.
func (s *Store) Acked(till string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked[till], nil
}

// Ack implements client.Outbox: the mark only moves forward and never past
// what the till holds.
func (s *Store) Ack(till string, upTo uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if upTo > uint64(len(s.entries[till])) {
		return fmt.Errorf("memstore: ack up to %d but till %s holds only %d entries", upTo, till, len(s.entries[till]))
	}
	if upTo > s.acked[till] {
		s.acked[till] = upTo
	}
	return nil
}

// Backlog implements client.Backlogger.
func (s *Store) Backlog() (int, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, oldest := 0, time.Time{}
	for t, es := range s.entries {
		a := s.acked[t]
		n += len(es) - int(a)
		if int(a) < len(es) {
			if at := es[a].At; oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
	}
	return n, oldest, nil
}

// RecordDeadLetters implements client.DeadLetterRecorder.
func (s *Store) RecordDeadLetters(dl []wire.DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range dl {
		s.dead[fmt.Sprintf("%s/%s/%d", d.Store, d.Till, d.Seq)] = d
	}
	return nil
}

// DeadLetters returns the recorded dead letters, ordered by till and seq.
func (s *Store) DeadLetters() []wire.DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]wire.DeadLetter, 0, len(s.dead))
	for _, d := range s.dead {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Till != out[j].Till {
			return out[i].Till < out[j].Till
		}
		return out[i].Seq < out[j].Seq
	})
	return out
}

// ApplyMemberStates implements client.Inbox: HQ's state replaces ours.
func (s *Store) ApplyMemberStates(states []wire.MemberState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range states {
		if m.Member.ID == "" {
			return errors.New("memstore: member state without a member id")
		}
		s.members[m.Member.ID] = m
	}
	return nil
}

// ApplyProgram implements client.Inbox; the same source twice is kept once.
func (s *Store) ApplyProgram(src []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.programs {
		if string(p) == string(src) {
			return nil
		}
	}
	s.programs = append(s.programs, append([]byte(nil), src...))
	return nil
}

// SyncCursor implements client.Inbox.
func (s *Store) SyncCursor() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor, nil
}

// SetSyncCursor implements client.Inbox.
func (s *Store) SetSyncCursor(c string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursor = c
	return nil
}

// Member returns the state HQ last sent for id.
func (s *Store) Member(id string) (wire.MemberState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[id]
	return m, ok
}

// Members counts the member states held.
func (s *Store) Members() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.members)
}

// Programs returns the program sources applied, in order.
func (s *Store) Programs() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.programs...)
}
