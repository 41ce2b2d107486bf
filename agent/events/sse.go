package events

import (
	"bufio"
	"net/http"
	"strconv"
	"time"
)

// SSEOptions tunes the stream handler; zero values take the defaults.
type SSEOptions struct {
	Buffer       int           // events queued per client before it is dropped (default 256)
	Heartbeat    time.Duration // comment line sent when idle, keeps proxies open (default 15 s)
	WriteTimeout time.Duration // a client that does not take a write in this time is dropped (default 10 s)
	Retry        time.Duration // reconnect delay suggested to EventSource clients (default 1 s)
	// POS tells whether a request comes from the POS software, which also
	// gets the live events of its till (Hub.PublishLive); nil: none does.
	POS func(*http.Request) bool
}

// Handler serves GET /v1/events?till=T as text/event-stream. A client
// resumes with the Last-Event-ID header (EventSource does this by itself)
// or ?after=ID; without either it gets only new events.
func (h *Hub) Handler(o SSEOptions) http.Handler {
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			http.Error(w, `{"code":"method_not_allowed","message":"use GET"}`, http.StatusMethodNotAllowed)
			return
		}
		till := r.URL.Query().Get("till")
		var after uint64
		resume := false
		from := r.Header.Get("Last-Event-ID")
		if from == "" {
			from = r.URL.Query().Get("after")
		}
		if from != "" {
			v, err := strconv.ParseUint(from, 10, 64)
			if err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"code":"bad_request","message":"Last-Event-ID / after must be the decimal id of an event"}`))
				return
			}
			after, resume = v, true
		}
		subscribe := h.Subscribe
		if o.POS != nil && o.POS(r) {
			subscribe = h.SubscribePOS
		}
		sub, backlog, gap := subscribe(till, after, resume, o.Buffer)
		defer h.Unsubscribe(sub)

		rc := http.NewResponseController(w)
		hd := w.Header()
		hd.Set("Content-Type", "text/event-stream; charset=utf-8")
		hd.Set("Cache-Control", "no-cache")
		hd.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		bw := bufio.NewWriterSize(w, 4096)
		send := func(write func()) bool {
			_ = rc.SetWriteDeadline(time.Now().Add(o.WriteTimeout))
			write()
			if bw.Flush() != nil {
				return false
			}
			return rc.Flush() == nil
		}
		ok := send(func() {
			bw.WriteString("retry: " + strconv.FormatInt(o.Retry.Milliseconds(), 10) + "\n")
			bw.WriteString(": connected\n\n")
			if gap {
				// The reset's id is just before what follows, so ids stay
				// increasing and Last-Event-ID stays a valid resume point.
				resetID := sub.Start
				if len(backlog) > 0 {
					resetID = backlog[0].ID - 1
				}
				writeEvent(bw, h.synthetic(TypeReset, till, resetID, `{"reason":"events since your last id are no longer kept; reload the member and status"}`))
			}
			for _, e := range backlog {
				writeEvent(bw, e)
			}
		})
		if !ok {
			return
		}
		last := sub.Start
		if n := len(backlog); n > 0 && backlog[n-1].ID > last {
			last = backlog[n-1].ID
		}
		tick := time.NewTicker(o.Heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				if !send(func() { bw.WriteString(": ping\n\n") }) {
					return
				}
			case e, open := <-sub.C:
				if !open {
					if sub.Dropped() {
						// Too slow: say where to resume and end the response;
						// the client reconnects with Last-Event-ID and catches
						// up from the ring.
						send(func() {
							writeEvent(bw, h.synthetic(TypeResume, till, last, `{"reason":"client too slow; reconnect with Last-Event-ID"}`))
						})
					}
					return
				}
				if e.ID <= last {
					continue // already sent in the backlog
				}
				last = e.ID
				if !send(func() { writeEvent(bw, e) }) {
					return
				}
			}
		}
	})
}

// synthetic makes a control event that is not kept in the ring; its id is
// the resume point so an EventSource's Last-Event-ID stays correct.
func (h *Hub) synthetic(typ, till string, id uint64, data string) Event {
	return Event{ID: id, Type: typ, Till: till, At: h.now().UTC(), Data: []byte(data)}
}

func writeEvent(bw *bufio.Writer, e Event) {
	bw.WriteString("id: ")
	bw.WriteString(strconv.FormatUint(e.ID, 10))
	bw.WriteString("\nevent: ")
	bw.WriteString(e.Type)
	bw.WriteString("\ndata: ")
	// JSON from encoding/json never holds a raw newline, so one data line
	// is enough.
	bw.Write(e.encode())
	bw.WriteString("\n\n")
}
