package loyalty

import (
	"bytes"
	"encoding/json"
	"strings"
)

// LineReasons explains one priced line's figures, in this order: gross, tier
// discount, coupon share (when the sale's coupon is applied), points share
// (when points are redeemed), earn base. Every line of a quote has the same
// number of them.
//
// Pricing does not write them: a line holds what they are written from (its
// quote's figures, the tier and the coupon), and the text is written each time
// it is read, by Strings, String or MarshalJSON. That keeps a quote's cost to
// its figures; nearly all of the text of a 50-line quote was line reasons that
// most callers never read. They are written from the figures of the quote that
// priced them, so a caller that changes those figures in place changes what
// they say. JSON is an array of strings, exactly as a []string encodes;
// decoded, they keep the text they were given.
type LineReasons struct {
	w       *lineWhy // nil: no reasons (the zero value; JSON null)
	i       int32    // the line, in w.lines (MaxLines fits)
	covered bool     // the applied coupon covers the line
}

// lineWhy is what the reasons of every line of one quote are written from,
// or the decoded text of one line's reasons.
type lineWhy struct {
	lines    []QuoteLine // the quote's lines; nil when decoded
	decoded  []string
	member   bool
	couponOn bool
	tierID   string
	bp       int64
	couponID string

	couponValue, redeemPoints, redeemValue, pointsEarned int64
}

// Len is the number of reasons.
func (r LineReasons) Len() int {
	switch {
	case r.w == nil:
		return 0
	case r.w.lines == nil:
		return len(r.w.decoded)
	}
	n := 3
	if r.w.couponOn {
		n++
	}
	if r.w.redeemPoints > 0 {
		n++
	}
	return n
}

// Strings returns the reasons as text, a new slice each call (nil for none).
func (r LineReasons) Strings() []string {
	switch {
	case r.w == nil:
		return nil
	case r.w.lines == nil:
		return append([]string(nil), r.w.decoded...)
	}
	t := text{b: make([]byte, 0, 512), ends: make([]int, 0, 5)}
	r.write(&t)
	return t.cut()
}

// String is the reasons joined by "; ".
func (r LineReasons) String() string { return strings.Join(r.Strings(), "; ") }

// MarshalJSON writes the reasons as json.Marshal writes a []string (null for
// none). Its strings are not HTML-escaped: encoding/json escapes what a
// marshaler returns when, and only when, it escapes its own strings, so the
// bytes match a []string field under either setting.
func (r LineReasons) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.Strings()); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON keeps the text of an array of strings; null is no reasons.
func (r *LineReasons) UnmarshalJSON(b []byte) error {
	var rs []string
	if err := json.Unmarshal(b, &rs); err != nil {
		return err
	}
	if rs == nil {
		*r = LineReasons{}
		return nil
	}
	*r = LineReasons{w: &lineWhy{decoded: rs}}
	return nil
}

// write writes the line's reasons, each closed by t.end.
func (r LineReasons) write(t *text) {
	w, ql := r.w, &r.w.lines[r.i]
	t.s("gross ")
	t.yuan(ql.Gross)
	t.s(" = ")
	t.int(ql.Qty)
	t.s(" × ")
	t.yuan(ql.UnitPrice)
	t.end()
	switch {
	case !w.member:
		t.s("no tier discount: non-member")
	case !ql.Discountable:
		t.s("no tier discount: line not discountable (special price)")
	case w.bp == 0:
		t.s("no tier discount: tier ")
		t.s(w.tierID)
		t.s(" has none")
	default:
		t.s("tier discount ")
		t.yuan(ql.Discount)
		t.s(": ")
		t.s(w.tierID)
		t.s(" ")
		t.bp(w.bp)
		t.s(" off ")
		t.yuan(ql.Gross)
		t.s(", rounded half up at the fen")
	}
	t.end()
	if w.couponOn {
		if r.covered {
			t.s("coupon share ")
			t.yuan(ql.CouponShare)
			t.s(" of ")
			t.yuan(w.couponValue)
			t.s(" by net, largest remainder")
		} else {
			t.s("coupon ")
			t.s(w.couponID)
			t.s(": line not covered")
		}
		t.end()
	}
	if w.redeemPoints > 0 {
		t.s("points share ")
		t.yuan(ql.RedeemShare)
		t.s(" (")
		t.int(ql.RedeemPoints)
		t.s(" points) of ")
		t.yuan(w.redeemValue)
		t.s(" by amount due after coupon, largest remainder")
		t.end()
	}
	switch {
	case !w.member:
		t.s("earns no points: non-member")
	case !ql.EarnsPoints:
		t.s("earns no points: line marked not earning")
	default:
		t.s("earn base ")
		t.yuan(ql.EarnBase)
		t.s(" (paid); ")
		t.int(ql.EarnedPoints)
		t.s(" of the sale's ")
		t.int(w.pointsEarned)
		t.s(" points by earn base share, largest remainder")
	}
	t.end()
}
