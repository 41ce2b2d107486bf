package events

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Decoder reads events from a text/event-stream body, for Go clients of
// the stream (tests, tools, a POS written in Go).
type Decoder struct {
	r *bufio.Reader
}

// NewDecoder reads the stream r.
func NewDecoder(r io.Reader) *Decoder { return &Decoder{r: bufio.NewReaderSize(r, 16<<10)} }

// Next returns the next event; comments and retry lines are skipped. At the
// end of the stream it returns io.EOF.
func (d *Decoder) Next() (Event, error) {
	var data strings.Builder
	for {
		line, err := d.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" {
				return Event{}, io.EOF
			}
			if err != io.EOF {
				return Event{}, err
			}
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if data.Len() == 0 {
				if err == io.EOF {
					return Event{}, io.EOF
				}
				continue
			}
			var e Event
			if jerr := json.Unmarshal([]byte(data.String()), &e); jerr != nil {
				return Event{}, fmt.Errorf("events: bad data line: %w", jerr)
			}
			return e, nil
		}
		if v, ok := strings.CutPrefix(line, "data:"); ok {
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(v, " "))
		}
		if err == io.EOF {
			return Event{}, io.ErrUnexpectedEOF
		}
	}
}
