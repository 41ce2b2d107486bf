package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"posagent/ledger/entry"
)

// SnapshotBinary is the media type of the compact snapshot stream. A till
// that reads it asks for it in Accept; HQ answers with it (Content-Type)
// or, if it predates it, with the newline-delimited JSON of SnapshotLine,
// so either side may be the older one. Both travel gzip-compressed.
//
// The stream starts with SnapshotMagic, then records: a tag byte ('m' a
// member, 'e' the end), the payload's length as 4 bytes big-endian, the
// payload. Strings are a uvarint length and the bytes; integers are
// varints (zig-zag); a list is a uvarint count and its items. A member
// is: id, name, mobile, birthday, tier, referrer id, enrolment time, card
// tokens (list of strings), points, stored value, a flags byte (1:
// flagged), last sale, coupons (list of: id, member id, name, threshold,
// value, SKUs (list of strings), valid from, valid until). The end is the
// member count and the cursor. Fields are in this fixed order with
// nothing optional, so the format changes only with a new media type.
const SnapshotBinary = "application/vnd.posagent.snapshot.v1"

// SnapshotMagic opens a SnapshotBinary stream.
const SnapshotMagic = "PSNAP\x01"

const (
	snapTagMember = 'm'
	snapTagEnd    = 'e'
	// maxSnapshotRecord bounds one record, so a corrupt length cannot
	// make a till allocate without limit; a member is a few hundred bytes.
	maxSnapshotRecord = 16 << 20
)

// AppendSnapshotMember appends m as one SnapshotBinary record.
func AppendSnapshotMember(b []byte, m *MemberState) ([]byte, error) {
	b, at := snapOpen(b, snapTagMember)
	mb := &m.Member
	for _, s := range [...]string{mb.ID, mb.Name, mb.Mobile, mb.Birthday, mb.Tier, mb.ReferrerID, mb.EnrolledAt} {
		b = appendSnapString(b, s)
	}
	b = appendSnapStrings(b, mb.CardTokens)
	b = binary.AppendVarint(b, m.Points)
	b = binary.AppendVarint(b, m.StoredValue)
	var flags byte
	if m.Flagged {
		flags |= 1
	}
	b = append(b, flags)
	b = appendSnapString(b, m.LastSale)
	b = binary.AppendUvarint(b, uint64(len(m.Coupons)))
	for i := range m.Coupons {
		c := &m.Coupons[i]
		b = appendSnapString(b, c.ID)
		b = appendSnapString(b, c.MemberID)
		b = appendSnapString(b, c.Name)
		b = binary.AppendVarint(b, c.Threshold)
		b = binary.AppendVarint(b, c.Value)
		b = appendSnapStrings(b, c.SKUs)
		b = appendSnapString(b, c.ValidFrom)
		b = appendSnapString(b, c.ValidUntil)
	}
	return snapClose(b, at, m.Member.ID)
}

// AppendSnapshotEnd appends the end record.
func AppendSnapshotEnd(b []byte, e SnapshotEnd) ([]byte, error) {
	b, at := snapOpen(b, snapTagEnd)
	b = binary.AppendVarint(b, e.Members)
	b = appendSnapString(b, e.Cursor)
	return snapClose(b, at, "end")
}

func snapOpen(b []byte, tag byte) ([]byte, int) {
	b = append(b, tag, 0, 0, 0, 0)
	return b, len(b)
}

func snapClose(b []byte, at int, what string) ([]byte, error) {
	n := len(b) - at
	if n > maxSnapshotRecord {
		return b[:at-5], fmt.Errorf("snapshot record of %s is %d bytes, more than the %d a till reads", what, n, maxSnapshotRecord)
	}
	binary.BigEndian.PutUint32(b[at-4:at], uint32(n))
	return b, nil
}

func appendSnapString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendSnapStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendSnapString(b, s)
	}
	return b
}

// ErrSnapshotFormat: the stream is not a well-formed SnapshotBinary
// stream (cut short reads as io.ErrUnexpectedEOF instead).
var ErrSnapshotFormat = errors.New("malformed snapshot stream")

// SnapshotReader reads a SnapshotBinary stream (already decompressed).
type SnapshotReader struct {
	r       *bufio.Reader
	started bool
	buf     []byte
}

// NewSnapshotReader reads from r, buffered.
func NewSnapshotReader(r io.Reader) *SnapshotReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &SnapshotReader{r: br}
}

// Next reads the next record: a member into *m (returning a nil end), or
// the end record. A stream that stops before its end record returns
// io.ErrUnexpectedEOF: it was cut and must be thrown away.
func (d *SnapshotReader) Next(m *MemberState) (*SnapshotEnd, error) {
	if !d.started {
		var magic [len(SnapshotMagic)]byte
		if _, err := io.ReadFull(d.r, magic[:]); err != nil {
			return nil, unexpected(err)
		}
		if string(magic[:]) != SnapshotMagic {
			return nil, fmt.Errorf("%w: does not start with the snapshot mark", ErrSnapshotFormat)
		}
		d.started = true
	}
	var head [5]byte
	if _, err := io.ReadFull(d.r, head[:]); err != nil {
		return nil, unexpected(err)
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n > maxSnapshotRecord {
		return nil, fmt.Errorf("%w: a record of %d bytes", ErrSnapshotFormat, n)
	}
	if cap(d.buf) < int(n) {
		d.buf = make([]byte, n)
	}
	p := d.buf[:n]
	if _, err := io.ReadFull(d.r, p); err != nil {
		return nil, unexpected(err)
	}
	// One string holds every text field of the record; the fields are
	// slices of it, so a member costs one allocation for its text.
	rd := snapDec{s: string(p)}
	switch head[0] {
	case snapTagMember:
		*m = MemberState{}
		mb := &m.Member
		for _, f := range [...]*string{&mb.ID, &mb.Name, &mb.Mobile, &mb.Birthday, &mb.Tier, &mb.ReferrerID, &mb.EnrolledAt} {
			*f = rd.str()
		}
		mb.CardTokens = rd.strs()
		m.Points = rd.varint()
		m.StoredValue = rd.varint()
		flags := rd.byte()
		m.Flagged = flags&1 != 0
		m.LastSale = rd.str()
		if nc := rd.count(); nc > 0 {
			m.Coupons = make([]entry.MemberCoupon, nc)
			for i := range m.Coupons {
				c := &m.Coupons[i]
				c.ID = rd.str()
				c.MemberID = rd.str()
				c.Name = rd.str()
				c.Threshold = rd.varint()
				c.Value = rd.varint()
				c.SKUs = rd.strs()
				c.ValidFrom = rd.str()
				c.ValidUntil = rd.str()
			}
		}
		if rd.err == nil && flags&^1 != 0 {
			rd.err = fmt.Errorf("unknown flags %#x", flags)
		}
		if err := rd.done(); err != nil {
			return nil, fmt.Errorf("%w: member %q: %v", ErrSnapshotFormat, mb.ID, err)
		}
		return nil, nil
	case snapTagEnd:
		e := &SnapshotEnd{Members: rd.varint(), Cursor: rd.str()}
		if err := rd.done(); err != nil {
			return nil, fmt.Errorf("%w: end record: %v", ErrSnapshotFormat, err)
		}
		return e, nil
	default:
		return nil, fmt.Errorf("%w: unknown record tag %#x", ErrSnapshotFormat, head[0])
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// snapDec reads one record's payload; the first error sticks and later
// reads return zero values.
type snapDec struct {
	s   string
	i   int
	err error
}

var errShort = errors.New("record ends inside a field")

func (d *snapDec) uvarint() uint64 {
	var x uint64
	for shift := uint(0); ; shift += 7 {
		if d.err != nil {
			return 0
		}
		if d.i >= len(d.s) {
			d.err = errShort
			return 0
		}
		c := d.s[d.i]
		d.i++
		if shift == 63 && c > 1 {
			d.err = errors.New("varint overflows 64 bits")
			return 0
		}
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x
		}
	}
}

func (d *snapDec) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *snapDec) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.i >= len(d.s) {
		d.err = errShort
		return 0
	}
	d.i++
	return d.s[d.i-1]
}

// count reads a list length, bounded by what the record can still hold
// (every item takes at least one byte), so a bad count cannot allocate.
func (d *snapDec) count() int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.s)-d.i) {
		d.err = fmt.Errorf("list of %d items in %d bytes", n, len(d.s)-d.i)
		return 0
	}
	return int(n)
}

func (d *snapDec) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.i) {
		d.err = errShort
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}

func (d *snapDec) strs() []string {
	n := d.count()
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

func (d *snapDec) done() error {
	if d.err == nil && d.i != len(d.s) {
		d.err = fmt.Errorf("%d bytes left over", len(d.s)-d.i)
	}
	return d.err
}
