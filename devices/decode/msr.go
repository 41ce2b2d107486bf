package decode

import "strings"

// MSROptions tunes MSR decoding to the reader's settings.
type MSROptions struct {
	// LRC: the reader sends an LRC character after every end sentinel.
	// Without it, a character after '?' that cannot start a track is still
	// taken as an LRC and checked; an LRC that happens to look like a start
	// sentinel is only recognised with LRC set.
	LRC bool
}

// Per-track ISO/IEC 7811/7813 parameters: maximum data characters (the
// track's capacity less sentinels and LRC), character offset and bit mask
// of the encoding, start sentinel code.
type trackSpec struct {
	maxData   int
	lo, hi    byte // allowed ASCII range of data characters
	offset    byte // ASCII = code + offset
	mask      byte
	startCode byte
	endCode   byte
	sentinels string // characters not allowed inside data
}

var trackSpecs = [4]trackSpec{
	1: {maxData: 76, lo: 0x20, hi: 0x5F, offset: 0x20, mask: 0x3F, startCode: '%' - 0x20, endCode: '?' - 0x20, sentinels: "%?"},
	2: {maxData: 37, lo: 0x30, hi: 0x3F, offset: 0x30, mask: 0x0F, startCode: ';' - 0x30, endCode: '?' - 0x30, sentinels: ";?"},
	3: {maxData: 104, lo: 0x30, hi: 0x3F, offset: 0x30, mask: 0x0F, startCode: ';' - 0x30, endCode: '?' - 0x30, sentinels: ";?"},
}

// MSR decodes a magnetic-stripe swipe as ASCII readers send it: track 1
// `%…?`, track 2 `;…?`, track 3 `+…?` (or a second `;…?`, as some readers
// send it), error tracks `%E?` `;E?` `+E?`, in one frame, optionally with
// CR/LF between tracks and an LRC character after each end sentinel. Every
// read has tracks 1, 2 and 3 with status ok, missing, error or lrc. A swipe
// without any good track returns ErrBadRead together with the track
// statuses.
func MSR(frame []byte) (Read, error) { return decodeMSR(frame, MSROptions{}) }

// MSRWith returns an MSR decoder for the given reader settings.
func MSRWith(o MSROptions) func([]byte) (Read, error) {
	return func(b []byte) (Read, error) { return decodeMSR(b, o) }
}

func isStart(c byte) bool { return c == '%' || c == ';' || c == '+' }

// between reports bytes readers put between or around tracks.
func between(c byte) bool {
	return c == '\r' || c == '\n' || c == 0x02 || c == 0x03 || c == '\t' || c == ' '
}

func decodeMSR(b []byte, o MSROptions) (Read, error) {
	rd := Read{Kind: "msr", Tracks: []Track{{N: 1, Status: StatusMissing}, {N: 2, Status: StatusMissing}, {N: 3, Status: StatusMissing}}}
	seen := [4]bool{}
	any := false
	for i := 0; i < len(b); {
		c := b[i]
		if between(c) {
			i++
			continue
		}
		if !isStart(c) {
			return Read{}, NewError(ErrFormat, "check the reader's output settings (ISO tracks with sentinels)", "unexpected character outside the tracks")
		}
		any = true
		n := 1
		switch c {
		case ';':
			n = 2
			if seen[2] {
				n = 3 // second ';' track: track 3 on readers that send ';' for it
			}
		case '+':
			n = 3
		}
		j := i + 1
		for j < len(b) && b[j] != '?' && !(n == 1 && b[j] == '%') && !(n > 1 && (b[j] == ';' || b[j] == '+' || b[j] == '%')) {
			j++
		}
		t := &rd.Tracks[n-1]
		if seen[n] {
			// The same track twice: the reader is misconfigured or the
			// data is corrupt; trust neither copy.
			t.Status, t.Data = StatusError, ""
		}
		if j >= len(b) || b[j] != '?' {
			// No end sentinel: truncated track.
			seen[n] = true
			t.Status, t.Data = StatusError, ""
			i = j
			continue
		}
		data := b[i+1 : j]
		i = j + 1
		var lrc byte
		hasLRC := false
		if i < len(b) && (o.LRC || !(isStart(b[i]) || between(b[i]))) {
			lrc, hasLRC = b[i], true
			i++
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		status := checkTrack(n, data, hasLRC, lrc)
		if o.LRC && !hasLRC && status == StatusOK {
			status = StatusLRC
		}
		t.Status = status
		if status == StatusOK {
			t.Data = string(data)
		}
	}
	if !any {
		if len(b) == 0 || allBetween(b) {
			return Read{}, NewError(ErrNoData, "", "empty swipe")
		}
		return Read{}, NewError(ErrFormat, "check the reader's output settings", "no track found")
	}
	ok := false
	for _, t := range rd.Tracks {
		if t.Status == StatusOK {
			ok = true
		}
	}
	if t2 := rd.Tracks[1]; t2.Status == StatusOK {
		rd.Data = t2.Data
	}
	if !ok {
		return rd, NewError(ErrBadRead, "swipe the card again, steadily", "no track could be read")
	}
	return rd, nil
}

func allBetween(b []byte) bool {
	for _, c := range b {
		if !between(c) {
			return false
		}
	}
	return true
}

// checkTrack validates one track's data characters and, when present, its
// LRC.
func checkTrack(n int, data []byte, hasLRC bool, lrc byte) string {
	if len(data) == 0 {
		return StatusMissing
	}
	if len(data) == 1 && data[0] == 'E' {
		return StatusError
	}
	sp := trackSpecs[n]
	if len(data) > sp.maxData {
		return StatusError
	}
	x := sp.startCode ^ sp.endCode
	for _, c := range data {
		if c < sp.lo || c > sp.hi || strings.IndexByte(sp.sentinels, c) >= 0 {
			return StatusError
		}
		x ^= (c - sp.offset) & sp.mask
	}
	if hasLRC && (lrc < sp.offset || (lrc-sp.offset)&sp.mask != x || lrc-sp.offset > sp.mask) {
		return StatusLRC
	}
	return StatusOK
}

// LRC returns the LRC character a reader appends to a track with this data
// (n = 1, 2 or 3), e.g. for building test swipes.
func LRC(n int, data string) byte {
	if n < 1 || n > 3 {
		return 0
	}
	sp := trackSpecs[n]
	x := sp.startCode ^ sp.endCode
	for i := 0; i < len(data); i++ {
		x ^= (data[i] - sp.offset) & sp.mask
	}
	return x + sp.offset
}

// Track2PAN returns the primary account number of track-2 data (the digits
// before the field separator '='). It wants 6–19 digits.
func Track2PAN(data string) (string, error) {
	pan, _, _ := strings.Cut(data, "=")
	if len(pan) < 6 || len(pan) > 19 || !allDigits(pan) {
		return "", NewError(ErrRule, "this card has no card number on track 2; check the card program", "track 2 does not start with a 6–19 digit card number")
	}
	return pan, nil
}
