// Package replay loads recorded reader byte streams (with arrival times)
// and replays them through a framer, for golden tests here and in the
// transport and manager packages.
//
// Recording format (text, one item per line):
//
//	# comment
//	@key value             metadata, e.g. "@framer kind=stx_etx" (see Recording.Meta)
//	+<µs> <data>           one chunk as read() returned it, <µs> microseconds from the start
//
// <data> is a sequence of hex bytes ("02 30 46", or "023046") and Go-quoted
// strings ("%B6222…?\r"), freely mixed. Offsets never decrease.
package replay

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"posagent/devices/frame"
)

// Chunk is one read() worth of bytes and when it arrived.
type Chunk struct {
	Offset time.Duration // since the start of the recording
	Data   []byte
}

// Recording is a parsed recording file.
type Recording struct {
	// Meta holds the @key value lines. The golden tests use "framer"
	// (frame.Config as k=v pairs), "decoder" (decode.ByName) and "rule"
	// (token.Rule as k=v pairs); other keys are free-form.
	Meta   map[string]string
	Chunks []Chunk
}

// Load reads the chunks of a recording file.
func Load(path string) ([]Chunk, error) {
	r, err := LoadRecording(path)
	return r.Chunks, err
}

// LoadRecording reads a recording file with its metadata.
func LoadRecording(path string) (Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return Recording{}, err
	}
	defer f.Close()
	rec, err := Parse(f)
	if err != nil {
		return Recording{}, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// Parse reads a recording.
func Parse(r io.Reader) (Recording, error) {
	rec := Recording{Meta: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var last time.Duration
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
			continue
		case line[0] == '@':
			k, v, _ := strings.Cut(line[1:], " ")
			rec.Meta[k] = strings.TrimSpace(v)
			continue
		case line[0] != '+':
			return rec, fmt.Errorf("line %d: want '+<microseconds> <data>', '@key value' or '# comment'", n)
		}
		off, rest, _ := strings.Cut(line[1:], " ")
		us, err := strconv.ParseInt(off, 10, 64)
		if err != nil || us < 0 {
			return rec, fmt.Errorf("line %d: offset %q is not a non-negative number of microseconds", n, off)
		}
		at := time.Duration(us) * time.Microsecond
		if at < last {
			return rec, fmt.Errorf("line %d: offset %d goes back in time", n, us)
		}
		last = at
		data, err := parseData(rest)
		if err != nil {
			return rec, fmt.Errorf("line %d: %v", n, err)
		}
		if len(data) == 0 {
			return rec, fmt.Errorf("line %d: chunk without data", n)
		}
		rec.Chunks = append(rec.Chunks, Chunk{Offset: at, Data: data})
	}
	return rec, sc.Err()
}

func parseData(s string) ([]byte, error) {
	var out []byte
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("bad quoted string: %v", err)
			}
			u, _ := strconv.Unquote(q)
			out = append(out, u...)
			s = s[len(q):]
			continue
		}
		word, rest, _ := strings.Cut(s, " ")
		b, err := hex.DecodeString(word)
		if err != nil {
			return nil, fmt.Errorf("bad hex %q", word)
		}
		out = append(out, b...)
		s = rest
	}
	return out, nil
}

// Format writes chunks in the recording format (hex), e.g. to save a
// capture from a live device.
func Format(w io.Writer, chunks []Chunk) error {
	for _, c := range chunks {
		if _, err := fmt.Fprintf(w, "+%d % X\n", c.Offset.Microseconds(), c.Data); err != nil {
			return err
		}
	}
	return nil
}

// Frame is one framer output during a replay: a frame or a framing error.
type Frame struct {
	Offset time.Duration // when the frame completed (or the error was seen)
	Data   []byte
	Err    error
}

// FinalFlush is how long after the last chunk Replay flushes the framer,
// long enough for any idle gap to have elapsed.
const FinalFlush = time.Second

// Epoch is the wall-clock time of offset 0 in a replay.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Replay pushes the chunks through f at their offsets, calling Flush before
// each chunk (as a device's idle timer would have by then) and once more
// FinalFlush after the last one.
func Replay(f frame.Framer, chunks []Chunk) []Frame {
	var out []Frame
	collect := func(at time.Duration, frames [][]byte) {
		for _, e := range f.Errors() {
			out = append(out, Frame{Offset: at, Err: e})
		}
		for _, d := range frames {
			out = append(out, Frame{Offset: at, Data: d})
		}
	}
	var last time.Duration
	for _, c := range chunks {
		collect(c.Offset, f.Flush(Epoch.Add(c.Offset)))
		collect(c.Offset, f.Push(c.Data, Epoch.Add(c.Offset)))
		last = c.Offset
	}
	end := last + FinalFlush
	collect(end, f.Flush(Epoch.Add(end)))
	return out
}
