package hq

import (
	"strings"
	"unicode/utf8"

	"posagent/ledger/entry"
	"posagent/sync/wire"
)

// Personal data leaves HQ masked unless the admin credential asking holds
// RightPII: HQ systems that only count and sum (ERP, BI) never need it, and
// a leaked export or token then gives away no customer.

// MaskMember returns m with its personal data masked: the mobile keeps its
// first 3 and last 4 digits (139****5678), the name its first character
// (王**), the birthday its month and day (07-15, no year), and the card
// tokens are left out. The member id stays: it is HQ's pseudonym.
func MaskMember(m entry.Member) entry.Member {
	m.Mobile = maskMiddle(m.Mobile, 3, 4)
	m.Name = maskMiddle(m.Name, 1, 0)
	if len(m.Birthday) == len("2006-01-02") {
		m.Birthday = m.Birthday[len("2006-"):]
	}
	m.CardTokens = nil
	return m
}

// maskMiddle keeps the first keep and last tail characters of s and puts a
// '*' for every other one; a string too short to keep any of that is all
// stars, so a short value is never shown whole.
func maskMiddle(s string, keep, tail int) string {
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return s
	}
	if n <= keep+tail {
		keep, tail = 0, 0
	}
	r := []rune(s)
	return string(r[:keep]) + strings.Repeat("*", n-keep-tail) + string(r[n-tail:])
}

// maskExport masks the personal data of a page's entries in place.
func maskExport(p *wire.ExportPage) {
	for i := range p.Entries {
		e := &p.Entries[i].Entry
		if e.Enrol != nil {
			en := *e.Enrol // a copy: never write through to the caller's entry
			en.Member = MaskMember(en.Member)
			e.Enrol = &en
		}
	}
}

// maskRecord masks the personal data of HQ's record of a member.
func maskRecord(m Member) Member {
	if m.Data != nil {
		d := MaskMember(*m.Data)
		m.Data = &d
	}
	return m
}
