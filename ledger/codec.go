package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"posagent/ledger/entry"
)

// Keys and values of schemas 2 and 3 (same layout). Everything a sale
// touches is kept in as few B+tree leaves as possible, because each dirty
// leaf (and its branch pages) is one more page written per checkpoint:
//
//	log      till 0x00 seq(8)         → global(8) entry-JSON   (the outbox itself)
//	keys     sha256(kind,till,key)[:16] → request-hash(16) seq(8)…
//	members  id 0x00 'c' coupon-id    → coupon state (binary since schema 5,
//	                                    JSON before; both read)
//	         id 0x00 'l' exp(8) key(8) → lot (varint remaining, id)
//	         id 0x00 'm'              → entry.Member (binary since schema 5,
//	                                    JSON before; both read)
//	         id 0x00 'n'              → balance (before schema 5; since, the
//	                                    balance ends the member record) (binary; format 2 also holds
//	                                    an HQ state kept out of the hq log
//	                                    and its implicit HQ lot, schema 5)
//	sales    till 0x00 seq(8)         → refund/void state JSON
//
// A member's record, balance and newest lots sort next to each other, so a
// sale that earns points dirties one leaf of the members bucket.

const (
	tagCoupon  = 'c'
	tagLot     = 'l'
	tagMember  = 'm'
	tagBalance = 'n'
)

// tillKey is the key of entry seq of till in the log (and of a sale's
// refund state in the sales bucket).
func tillKey(till string, seq uint64) []byte {
	k := make([]byte, 0, len(till)+9)
	k = append(k, till...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// splitTillKey returns the till and seq of a log key.
func splitTillKey(k []byte) (string, uint64, bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(k) != i+9 {
		return "", 0, false
	}
	return string(k[:i]), binary.BigEndian.Uint64(k[i+1:]), true
}

// memberKey is the key of one record of member id (tag and suffix).
func memberKey(id string, tag byte, suffix ...byte) []byte {
	k := make([]byte, 0, len(id)+2+len(suffix))
	k = append(k, id...)
	k = append(k, 0, tag)
	return append(k, suffix...)
}

// memberPrefix is the prefix of every record of member id.
func memberPrefix(id string) []byte {
	k := make([]byte, 0, len(id)+1)
	return append(append(k, id...), 0)
}

// splitMemberKey returns the member id and tag of a members-bucket key.
func splitMemberKey(k []byte) (id string, tag byte, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(k) < i+2 {
		return "", 0, false
	}
	return string(k[:i]), k[i+1], true
}

// lotExpKey is the lot-expiry index key: member id holds at least one lot
// expiring at exp (unix seconds). Lots that never expire at the till (HQ's)
// are not indexed.
func lotExpKey(exp int64, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(exp))
	return append(k, id...)
}

// lotExpMark is the value of every lot-expiry index key.
var lotExpMark = []byte{1}

// idemKey is the compact idempotency key of a request.
func idemKey(kind, till, key string) []byte {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(till))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return h.Sum(nil)[:16]
}

// checkID refuses ids that would break the key layout (a NUL separates the
// id from what follows).
func checkID(what, id string) error {
	if id == "" {
		return wrapErr(ErrInvalid, "%s is empty", what)
	}
	if len(id) > 200 || bytes.IndexByte([]byte(id), 0) >= 0 {
		return wrapErr(ErrInvalid, "%s %q must be at most 200 bytes and contain no NUL character", what, id)
	}
	return nil
}

// dayNum is a local calendar day as yyyymmdd: integer order is date order.
func dayNum(t time.Time) int32 {
	y, m, d := t.Date()
	return int32(y*10000 + int(m)*100 + d)
}

// ---- binary records ----

type reader struct {
	b   []byte
	err bool
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Balance record formats: 1 has no HQ fields; 2 (schema 5) adds the global
// order of an HQ state kept out of the hq log and the implicit HQ lot; 3
// (schema 6, the one written) starts with a byte of flags that says which
// fields are not zero or implied, so a member as HQ sent it, with nothing
// local yet, spends a byte on the five local figures and none on its HQ
// lot's key and points (usually its state's order and its points). All
// three are read.
const (
	balanceFormat      = 1
	balanceFormatHQ    = 2
	balanceFormatFlags = 3
)

const (
	balPending  = 1 << iota // PendPoints, PendSV
	balOffline              // OffDay, OffRedeemed
	balRecent               // Recent
	balUnlogged             // Unlogged
	balLot                  // HQLotKey, when not Unlogged
	balLotSame              // HQLotKey == Unlogged (not 0)
	balLotRem               // HQLotRem, when not lotRemImplied
)

func (b *balance) encode(buf []byte) []byte {
	var f byte
	if b.PendPoints != 0 || b.PendSV != 0 {
		f |= balPending
	}
	if b.OffDay != 0 || b.OffRedeemed != 0 {
		f |= balOffline
	}
	if len(b.Recent) > 0 {
		f |= balRecent
	}
	if b.Unlogged != 0 {
		f |= balUnlogged
	}
	switch {
	case b.HQLotKey != 0 && b.HQLotKey == b.Unlogged:
		f |= balLotSame
	case b.HQLotKey != 0:
		f |= balLot
	}
	if b.HQLotRem != b.lotRemImplied() {
		f |= balLotRem
	}
	buf = append(buf, balanceFormatFlags, f)
	buf = binary.AppendVarint(buf, b.Points)
	buf = binary.AppendVarint(buf, b.StoredValue)
	buf = binary.AppendVarint(buf, b.LastSale)
	if f&balPending != 0 {
		buf = binary.AppendVarint(buf, b.PendPoints)
		buf = binary.AppendVarint(buf, b.PendSV)
	}
	if f&balOffline != 0 {
		buf = binary.AppendVarint(buf, int64(b.OffDay))
		buf = binary.AppendVarint(buf, b.OffRedeemed)
	}
	if f&balRecent != 0 {
		buf = binary.AppendUvarint(buf, uint64(len(b.Recent)))
		for _, s := range b.Recent {
			buf = binary.AppendVarint(buf, int64(s.Day))
			buf = binary.AppendVarint(buf, s.Amount)
			buf = binary.AppendVarint(buf, int64(s.Sales))
		}
	}
	if f&balUnlogged != 0 {
		buf = binary.AppendUvarint(buf, b.Unlogged)
	}
	if f&balLot != 0 {
		buf = binary.AppendUvarint(buf, b.HQLotKey)
	}
	if f&balLotRem != 0 {
		buf = binary.AppendVarint(buf, b.HQLotRem)
	}
	return buf
}

// lotRemImplied is the HQ lot's points format 3 leaves out: the balance's,
// as HQ's state set it, when there is a lot.
func (b *balance) lotRemImplied() int64 {
	if b.HQLotKey == 0 {
		return 0
	}
	return b.Points
}

func (r *reader) recent(b *balance) {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = true
	}
	b.Recent = nil
	if !r.err && n > 0 {
		b.Recent = make([]spend, n)
		for i := range b.Recent {
			b.Recent[i] = spend{Day: int32(r.varint()), Amount: r.varint(), Sales: int(r.varint())}
		}
	}
}

func decodeBalance(v []byte, b *balance) error {
	if len(v) == 0 || v[0] < balanceFormat || v[0] > balanceFormatFlags {
		return fmt.Errorf("%w: balance record of unknown format; run posagent ledger verify", ErrCorrupt)
	}
	r := reader{b: v[1:]}
	*b = balance{}
	if v[0] == balanceFormatFlags {
		f := r.byte1()
		b.Points, b.StoredValue, b.LastSale = r.varint(), r.varint(), r.varint()
		if f&balPending != 0 {
			b.PendPoints, b.PendSV = r.varint(), r.varint()
		}
		if f&balOffline != 0 {
			b.OffDay, b.OffRedeemed = int32(r.varint()), r.varint()
		}
		if f&balRecent != 0 {
			r.recent(b)
		}
		if f&balUnlogged != 0 {
			b.Unlogged = r.uvarint()
		}
		switch {
		case f&balLotSame != 0:
			b.HQLotKey = b.Unlogged
		case f&balLot != 0:
			b.HQLotKey = r.uvarint()
		}
		b.HQLotRem = b.lotRemImplied()
		if f&balLotRem != 0 {
			b.HQLotRem = r.varint()
		}
	} else {
		b.Points, b.StoredValue, b.PendPoints, b.PendSV = r.varint(), r.varint(), r.varint(), r.varint()
		b.LastSale, b.OffDay, b.OffRedeemed = r.varint(), int32(r.varint()), r.varint()
		r.recent(b)
		if !r.err && v[0] == balanceFormatHQ {
			b.Unlogged, b.HQLotKey, b.HQLotRem = r.uvarint(), r.uvarint(), r.varint()
		}
	}
	if r.err || len(r.b) != 0 {
		return fmt.Errorf("%w: balance record unreadable; run posagent ledger verify", ErrCorrupt)
	}
	return nil
}

func lotKey(id string, lt *lot) []byte {
	var s [16]byte
	binary.BigEndian.PutUint64(s[:8], uint64(lt.Exp))
	binary.BigEndian.PutUint64(s[8:], lt.Key)
	return memberKey(id, tagLot, s[:]...)
}

func (lt *lot) encode() []byte {
	b := binary.AppendVarint(make([]byte, 0, 8+len(lt.ID)), lt.Remaining)
	return append(b, lt.ID...)
}

// decodeLot reads a lot from its key (after the member prefix and tag) and
// value.
func decodeLot(prefixLen int, k, v []byte) (*lot, error) {
	if len(k) != prefixLen+16 {
		return nil, fmt.Errorf("%w: lot key %q malformed; run posagent ledger verify", ErrCorrupt, k)
	}
	r := reader{b: v}
	lt := &lot{Remaining: r.varint()}
	if r.err {
		return nil, fmt.Errorf("%w: lot %q unreadable; run posagent ledger verify", ErrCorrupt, k)
	}
	lt.ID = string(r.b)
	lt.Exp = int64(binary.BigEndian.Uint64(k[prefixLen:]))
	lt.Key = binary.BigEndian.Uint64(k[prefixLen+8:])
	if lt.Exp != 0 {
		lt.Expires = time.Unix(lt.Exp, 0).UTC().Format(time.RFC3339)
	}
	return lt, nil
}

// keyRec is an idempotency record: the request's hash and the sequence
// numbers (on the request's till) of the entries it wrote, primary first.
type keyRec struct {
	Hash []byte
	Seqs []uint64
}

func (k keyRec) encode() []byte {
	b := make([]byte, 0, len(k.Hash)+8*len(k.Seqs))
	b = append(b, k.Hash...)
	for _, s := range k.Seqs {
		b = binary.BigEndian.AppendUint64(b, s)
	}
	return b
}

func decodeKeyRec(v []byte) (keyRec, error) {
	if len(v) < 16 || (len(v)-16)%8 != 0 {
		return keyRec{}, fmt.Errorf("%w: idempotency record unreadable; run posagent ledger verify", ErrCorrupt)
	}
	k := keyRec{Hash: v[:16]}
	for i := 16; i < len(v); i += 8 {
		k.Seqs = append(k.Seqs, binary.BigEndian.Uint64(v[i:]))
	}
	return k, nil
}

// ---- member record ----

// memberFormat starts a binary member record (schema 5); a record of
// earlier schemas is JSON and starts with '{'. Card tokens that are keyed
// hashes (64 lowercase hex digits) are kept as their 32 bytes, an
// enrolment time that is whole UTC seconds as unix seconds, and a mobile or
// birthday of digits and dashes as one nibble a character; anything else as
// its text, so every member reads back exactly as given.
// A record of format memberFormatBal ends with the member's balance (the
// balance record's own encoding), so a sale rewrites one key, not two; the
// separate balance key of earlier files is still read (it wins when present)
// and deleted when the member is next saved.
const (
	memberFormat    = 1
	memberFormatBal = 2
)

const (
	strText   = 0
	strNibble = 1 // digits and '-', two a byte
	strHex32  = 1 // 64 lowercase hex digits as 32 bytes
	strUnix   = 1 // RFC 3339 in UTC, whole seconds, as varint unix seconds
)

func appendStr(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) byte1() byte {
	if len(r.b) == 0 {
		r.err = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func nibbleOK(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '-' {
			return false
		}
	}
	return true
}

func appendDigits(buf []byte, s string) []byte {
	if !nibbleOK(s) {
		return appendStr(append(buf, strText), s)
	}
	buf = append(buf, strNibble, byte(len(s)))
	nib := func(c byte) byte {
		if c == '-' {
			return 10
		}
		return c - '0'
	}
	for i := 0; i < len(s); i += 2 {
		b := nib(s[i]) << 4
		if i+1 < len(s) {
			b |= nib(s[i+1])
		}
		buf = append(buf, b)
	}
	return buf
}

func (r *reader) digits() string {
	switch r.byte1() {
	case strText:
		return r.str()
	case strNibble:
		n := int(r.byte1())
		if r.err || n > 64 || (n+1)/2 > len(r.b) {
			r.err = true
			return ""
		}
		out := make([]byte, n)
		for i := range out {
			v := r.b[i/2] >> 4
			if i%2 == 1 {
				v = r.b[i/2] & 15
			}
			switch {
			case v < 10:
				out[i] = '0' + v
			case v == 10:
				out[i] = '-'
			default:
				r.err = true
			}
		}
		r.b = r.b[(n+1)/2:]
		return string(out)
	}
	r.err = true
	return ""
}

func hex32(s string) ([]byte, bool) {
	if len(s) != 64 {
		return nil, false
	}
	out := make([]byte, 32)
	for i := 0; i < 64; i++ {
		c := s[i]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return nil, false
		}
		out[i/2] |= v << (4 * (1 - i%2))
	}
	return out, true
}

const hexDigits = "0123456789abcdef"

// encodeMember is the record of m stored under member key id, with the
// member's balance when bal is not nil.
func encodeMember(id string, m *entry.Member, bal *balance) []byte {
	buf := make([]byte, 0, 128)
	if bal != nil {
		buf = append(buf, memberFormatBal)
	} else {
		buf = append(buf, memberFormat)
	}
	if m.ID == id {
		buf = append(buf, 0)
	} else {
		buf = appendStr(append(buf, 1), m.ID)
	}
	buf = appendStr(buf, m.Name)
	buf = appendDigits(buf, m.Mobile)
	buf = appendDigits(buf, m.Birthday)
	buf = appendStr(buf, m.Tier)
	buf = appendStr(buf, m.ReferrerID)
	buf = binary.AppendUvarint(buf, uint64(len(m.CardTokens)))
	for _, t := range m.CardTokens {
		if raw, ok := hex32(t); ok {
			buf = append(append(buf, strHex32), raw...)
		} else {
			buf = appendStr(append(buf, strText), t)
		}
	}
	if t, err := time.Parse(time.RFC3339, m.EnrolledAt); err == nil && m.EnrolledAt != "" && t.UTC().Format(time.RFC3339) == m.EnrolledAt {
		buf = binary.AppendVarint(append(buf, strUnix), t.Unix())
	} else {
		buf = appendStr(append(buf, strText), m.EnrolledAt)
	}
	if bal != nil {
		buf = bal.encode(buf)
	}
	return buf
}

// decodeMember reads a member record stored under member key id (binary,
// or the JSON of schemas before 5), and the balance it holds into bal
// (hasBal false: the record holds none).
func decodeMember(id string, v []byte, m *entry.Member, bal *balance) (hasBal bool, err error) {
	if len(v) > 0 && v[0] == '{' {
		*m = entry.Member{}
		return false, json.Unmarshal(v, m)
	}
	if len(v) == 0 || (v[0] != memberFormat && v[0] != memberFormatBal) {
		return false, fmt.Errorf("member record of unknown format")
	}
	r := reader{b: v[1:]}
	*m = entry.Member{ID: id}
	switch r.byte1() {
	case 0:
	case 1:
		m.ID = r.str()
	default:
		r.err = true
	}
	m.Name = r.str()
	m.Mobile = r.digits()
	m.Birthday = r.digits()
	m.Tier = r.str()
	m.ReferrerID = r.str()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = true
	}
	for i := uint64(0); i < n && !r.err; i++ {
		switch r.byte1() {
		case strText:
			m.CardTokens = append(m.CardTokens, r.str())
		case strHex32:
			if len(r.b) < 32 {
				r.err = true
				break
			}
			t := make([]byte, 64)
			for j, c := range r.b[:32] {
				t[2*j], t[2*j+1] = hexDigits[c>>4], hexDigits[c&15]
			}
			m.CardTokens = append(m.CardTokens, string(t))
			r.b = r.b[32:]
		default:
			r.err = true
		}
	}
	switch r.byte1() {
	case strText:
		m.EnrolledAt = r.str()
	case strUnix:
		m.EnrolledAt = time.Unix(r.varint(), 0).UTC().Format(time.RFC3339)
	default:
		r.err = true
	}
	if !r.err && v[0] == memberFormatBal {
		if err := decodeBalance(r.b, bal); err != nil {
			return false, fmt.Errorf("member record unreadable: %w", err)
		}
		return true, nil
	}
	if r.err || len(r.b) != 0 {
		return false, fmt.Errorf("member record unreadable")
	}
	return false, nil
}

// tokenKey32 is the card index key of schema 5 files: a keyed hash (64
// lowercase hex digits) as its 32 bytes, any other token as the SHA-256 of
// a NUL and its text. Schema 6 indexes cards by its first 8 bytes
// (members_index.go).
func tokenKey32(t string) []byte {
	if raw, ok := hex32(t); ok {
		return raw
	}
	h := sha256.New()
	h.Write([]byte{0})
	h.Write([]byte(t))
	return h.Sum(nil)
}

// tokenKeyForms are the keys token t may have in the card index of earlier
// schemas: 32 bytes (schema 5), its text (before).
func tokenKeyForms(t string) [][]byte {
	return [][]byte{tokenKey32(t), []byte(t)}
}

// couponFormat starts a binary coupon state (schema 5); earlier files hold
// JSON, which is still read. The coupon's id and member id are left out when
// they are the key's.
const couponFormat = 1

func appendTime(buf []byte, s string) []byte {
	if t, err := time.Parse(time.RFC3339, s); err == nil && s != "" && t.UTC().Format(time.RFC3339) == s {
		return binary.AppendVarint(append(buf, strUnix), t.Unix())
	}
	return appendStr(append(buf, strText), s)
}

func (r *reader) time() string {
	switch r.byte1() {
	case strText:
		return r.str()
	case strUnix:
		return time.Unix(r.varint(), 0).UTC().Format(time.RFC3339)
	}
	r.err = true
	return ""
}

func appendOpt(buf []byte, s, implied string) []byte {
	if s == implied {
		return append(buf, 0)
	}
	return appendStr(append(buf, 1), s)
}

func (r *reader) opt(implied string) string {
	switch r.byte1() {
	case 0:
		return implied
	case 1:
		return r.str()
	}
	r.err = true
	return ""
}

// encodeCoupon is the state of coupon id of member memberID.
func encodeCoupon(memberID, id string, cs *couponState) []byte {
	c := &cs.Coupon
	buf := make([]byte, 0, 64)
	buf = append(buf, couponFormat)
	buf = appendOpt(buf, c.ID, id)
	buf = appendOpt(buf, c.MemberID, memberID)
	buf = appendStr(buf, c.Name)
	buf = binary.AppendVarint(buf, c.Threshold)
	buf = binary.AppendVarint(buf, c.Value)
	buf = binary.AppendUvarint(buf, uint64(len(c.SKUs)))
	for _, s := range c.SKUs {
		buf = appendStr(buf, s)
	}
	buf = appendTime(buf, c.ValidFrom)
	buf = appendTime(buf, c.ValidUntil)
	used := byte(0)
	if cs.Used {
		used = 1
	}
	buf = append(buf, used)
	buf = appendStr(buf, cs.UsedTill)
	buf = binary.AppendUvarint(buf, cs.UsedSeq)
	buf = appendStr(buf, cs.IssuedTill)
	return binary.AppendUvarint(buf, cs.IssuedSeq)
}

// decodeCoupon reads the state of coupon id of member memberID (binary, or
// the JSON of schemas before 5).
func decodeCoupon(memberID, id string, v []byte, cs *couponState) error {
	*cs = couponState{}
	if len(v) > 0 && v[0] == '{' {
		return json.Unmarshal(v, cs)
	}
	if len(v) == 0 || v[0] != couponFormat {
		return fmt.Errorf("coupon record of unknown format")
	}
	r := reader{b: v[1:]}
	c := &cs.Coupon
	c.ID = r.opt(id)
	c.MemberID = r.opt(memberID)
	c.Name = r.str()
	c.Threshold, c.Value = r.varint(), r.varint()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = true
	}
	for i := uint64(0); i < n && !r.err; i++ {
		c.SKUs = append(c.SKUs, r.str())
	}
	c.ValidFrom, c.ValidUntil = r.time(), r.time()
	switch r.byte1() {
	case 0:
	case 1:
		cs.Used = true
	default:
		r.err = true
	}
	cs.UsedTill, cs.UsedSeq = r.str(), r.uvarint()
	cs.IssuedTill, cs.IssuedSeq = r.str(), r.uvarint()
	if r.err || len(r.b) != 0 {
		return fmt.Errorf("coupon record unreadable")
	}
	return nil
}
