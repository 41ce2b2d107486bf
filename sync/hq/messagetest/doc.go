// Package messagetest runs a generated year of a chain's history through
// the real HQ stores (bbolt and PostgreSQL) and the per-day reminder jobs,
// and checks every reminder against a count made straight from the
// generated data. It has tests only.
package messagetest
