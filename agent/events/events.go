// Package events is the agent's live event stream: a bounded ring of recent
// events with increasing ids, fanned out to subscribers, and served as
// Server-Sent Events at GET /v1/events.
//
// A subscriber that cannot keep up is dropped rather than allowed to block
// the others: it is told to resume, reconnects with Last-Event-ID and gets
// what it missed from the ring.
package events

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Event types.
const (
	TypeMember      = "member"       // a card identified a member (data: member summary)
	TypeCardUnknown = "card_unknown" // a card was read but no member holds it (data: masked card, token hash)
	TypeReadError   = "read_error"   // a read failed (data: code, message, hint for the cashier)
	TypeDevice      = "device"       // a reader went online or offline
	TypeSync        = "sync"         // the HQ sync state changed
	TypeReset       = "reset"        // the events after the client's Last-Event-ID are gone: refresh state
	TypeResume      = "resume"       // the client fell behind: reconnect with Last-Event-ID
	// TypePaymentCode carries a customer's payment code to the POS of the
	// till (PublishLive): never kept in the ring, never sent to a page.
	TypePaymentCode = "payment_code"
	// TypePaymentCodeRead tells the till's clients that a payment code was
	// read, and whether a POS took it; without the code.
	TypePaymentCodeRead = "payment_code_read"
	// Member codes refused (data: why, and what to tell the cashier; never
	// the code): past its lifetime, not signed by this chain's HQ, or
	// already used here or at another till.
	TypeMemberCodeExpired = "member_code_expired"
	TypeMemberCodeForeign = "member_code_foreign"
	TypeMemberCodeRepeat  = "member_code_repeat"
)

// Event is one record of the stream. Data is encoded once when published.
type Event struct {
	ID   uint64          `json:"id"`
	Type string          `json:"type"`
	Till string          `json:"till,omitempty"`
	At   time.Time       `json:"at"`
	Data json.RawMessage `json:"data,omitempty"`

	enc []byte // the whole event as JSON, the SSE data line
}

func (e *Event) encode() []byte {
	if e.enc == nil {
		e.enc, _ = json.Marshal(e) // cannot fail: Data is valid JSON
	}
	return e.enc
}

// Hub keeps the ring and the subscribers. The zero value is not usable;
// call NewHub.
type Hub struct {
	mu   sync.Mutex
	ring []Event // circular, len == cap once full
	head int     // index of the oldest when full
	next uint64
	subs map[*Sub]struct{}
	now  func() time.Time
}

// NewHub keeps the last size events. Ids start at the start time in
// microseconds so they keep increasing across restarts: a client that
// resumes with an id from before a restart is told to reset, never handed
// unrelated events that happen to carry the same numbers.
func NewHub(size int) *Hub {
	if size < 1 {
		size = 1
	}
	return &Hub{
		ring: make([]Event, 0, size),
		next: uint64(time.Now().UnixMicro()),
		subs: map[*Sub]struct{}{},
		now:  time.Now,
	}
}

// Sub is one subscriber. C is closed when the subscriber is dropped for
// being slow (Dropped reports it) or unsubscribed.
type Sub struct {
	C       <-chan Event
	c       chan Event
	till    string
	pos     bool // the POS software (API token), not a cashier page
	dropped bool
	// Start is the newest id when the subscription began: the resume
	// point for a client that has received nothing yet.
	Start uint64
}

// Dropped reports whether the hub dropped the subscriber for being slow.
// Read it only after C is closed.
func (s *Sub) Dropped() bool { return s.dropped }

func (s *Sub) wants(e *Event) bool {
	return s.till == "" || e.Till == "" || e.Till == s.till
}

// Publish appends an event and offers it to every subscriber of its till
// (an event with no till goes to everyone). It never blocks.
func (h *Hub) Publish(typ, till string, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("events: encoding %s: %w", typ, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	e := Event{ID: h.next, Type: typ, Till: till, At: h.now().UTC(), Data: raw}
	e.encode()
	if len(h.ring) < cap(h.ring) {
		h.ring = append(h.ring, e)
	} else {
		h.ring[h.head] = e
		h.head = (h.head + 1) % len(h.ring)
	}
	for s := range h.subs {
		if !s.wants(&e) {
			continue
		}
		select {
		case s.c <- e:
		default:
			s.dropped = true
			delete(h.subs, s)
			close(s.c)
		}
	}
	return e, nil
}

// PublishLive offers an event only to the POS subscribers of till (those
// that subscribed with exactly that till) connected now, and keeps nothing:
// it is not in the ring, so no resume or replay hands it out again, and a
// page's subscription never sees it. It takes an id like any event, so a
// client's Last-Event-ID stays a valid resume point. delivered is how many
// subscribers took it; 0 when no POS of the till is connected.
func (h *Hub) PublishLive(typ, till string, data any) (delivered int, err error) {
	if till == "" {
		return 0, fmt.Errorf("events: %s needs a till", typ)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		// The error names the type only: the data is a credential.
		return 0, fmt.Errorf("events: encoding %s failed", typ)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	e := Event{ID: h.next, Type: typ, Till: till, At: h.now().UTC(), Data: raw}
	e.encode()
	for s := range h.subs {
		if !s.pos || s.till != till {
			continue
		}
		select {
		case s.c <- e:
			delivered++
		default:
			s.dropped = true
			delete(h.subs, s)
			close(s.c)
		}
	}
	return delivered, nil
}

// LastID is the id of the newest event (or the starting point when none
// was published yet).
func (h *Hub) LastID() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.next
}

// Subscribe registers a subscriber for till ("" for every till) with a
// queue of buf events. With resume set, the events after id `after` still in
// the ring are returned as backlog; gap is true when some of them are gone
// (the client must refresh its state). Without resume only new events come.
func (h *Hub) Subscribe(till string, after uint64, resume bool, buf int) (s *Sub, backlog []Event, gap bool) {
	return h.subscribe(till, false, after, resume, buf)
}

// SubscribePOS is Subscribe for the POS software: it also gets the live
// events of its till (PublishLive).
func (h *Hub) SubscribePOS(till string, after uint64, resume bool, buf int) (s *Sub, backlog []Event, gap bool) {
	return h.subscribe(till, true, after, resume, buf)
}

func (h *Hub) subscribe(till string, pos bool, after uint64, resume bool, buf int) (s *Sub, backlog []Event, gap bool) {
	if buf < 1 {
		buf = 1
	}
	c := make(chan Event, buf)
	s = &Sub{C: c, c: c, till: till, pos: pos}
	h.mu.Lock()
	defer h.mu.Unlock()
	if resume {
		oldest := h.next + 1 // nothing in the ring
		if len(h.ring) > 0 {
			oldest = h.ring[h.head%len(h.ring)].ID
		}
		// after beyond the newest id means an id this hub never issued
		// (a clock set back since the client's last connection).
		gap = after+1 < oldest || after > h.next
		n := len(h.ring)
		for i := 0; i < n; i++ {
			e := h.ring[(h.head+i)%n]
			if e.ID > after && s.wants(&e) {
				backlog = append(backlog, e)
			}
		}
	}
	s.Start = h.next
	h.subs[s] = struct{}{}
	return s, backlog, gap
}

// Unsubscribe removes s; its channel is closed. Safe to call twice.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.c)
	}
}

// Subscribers is the number of live subscribers.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
