package pg

// MemberCodeRepeatsSQL is the query of a span of repeats, for EXPLAIN.
const MemberCodeRepeatsSQL = memberCodeRepeatsSQL
