package pg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Statements run as PL/pgSQL functions, so PostgreSQL keeps their plans.
//
// The store sends unnamed statements (named prepared statements do not
// survive PgBouncer's transaction pooling), which the server parses and
// plans at every execution: for an upload of a few entries that was more
// than half of its CPU. A PL/pgSQL function's statements are parsed and
// planned once per server connection and reused, whichever client
// transaction the pooler gives that connection, so the ingest path's
// statements go through functions and only a trivial `SELECT f($1, …)`
// is planned per call.
//
// A function is named after a hash of its definition and created at Open,
// under the migration lock, when missing: the Go source stays the one
// place a statement is written, and HQ versions with different statements
// can run at once on one database, each calling its own.
//
// Cached plans are generic: made once for any arguments and kept while the
// connection lives, however the tables grow. plan_cache_mode makes sure of
// it: left to choose, PostgreSQL kept planning a statement afresh at every
// call whenever a plan for the actual array lengths looked cheaper than
// the generic one. Each function therefore plans
// with sequential scans, hash joins and merge joins discouraged, so every
// statement looks its rows up by index, as the custom plans of a busy HQ
// do, rather than scan a table that was small when the plan was made.
// The cost PostgreSQL adds to a discouraged plan would otherwise make it
// compile the statement with JIT (a quarter of a second for a one-row
// read) or plan parallel workers: both are off in these functions.

// sqlFn is one statement as a function.
type sqlFn struct {
	name   string // hq_<short>_<hash>
	def    string // CREATE FUNCTION …
	call   string // the statement that calls it, with the same $n arguments
	params []string
	body   string // the PL/pgSQL block
	void   bool   // returns no rows
}

// fns are the functions Open makes sure exist; byCall finds one by its call.
var (
	fns    []*sqlFn
	byCall = map[string]*sqlFn{}
)

// plFn makes stmt, whose parameters $1… have the given types, a function.
// out: the columns of the rows stmt returns ("" for none), as in
// RETURNS TABLE (…). The call returns what stmt returns.
func plFn(short string, params []string, out string, stmt string) string {
	body := "BEGIN\n" + stmt + ";\nEND"
	if out != "" {
		// Output columns are variables in PL/pgSQL: where a name is both,
		// the statement means the table's column.
		body = "#variable_conflict use_column\nBEGIN\nRETURN QUERY " + stmt + ";\nEND"
	}
	return plBlock(short, params, out, body)
}

// plBlock is plFn for a whole PL/pgSQL block (body).
func plBlock(short string, params []string, out string, body string) string {
	ret := "void"
	if out != "" {
		ret = "TABLE (" + out + ")"
	}
	sig := strings.Join(params, ", ")
	tail := fmt.Sprintf("(%s) RETURNS %s LANGUAGE plpgsql VOLATILE\n"+
		"SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off SET max_parallel_workers_per_gather = 0\n"+
		"SET plan_cache_mode = force_generic_plan\n"+
		"AS $hqfn$\n%s\n$hqfn$", sig, ret, body)
	h := sha256.Sum256([]byte(tail))
	name := "hq_" + short + "_" + hex.EncodeToString(h[:5])
	args := make([]string, len(params))
	for i := range params {
		args[i] = fmt.Sprintf("$%d", i+1)
	}
	call := "SELECT " + name + "(" + strings.Join(args, ", ") + ")"
	if out != "" {
		call = "SELECT * FROM " + name + "(" + strings.Join(args, ", ") + ")"
	}
	f := &sqlFn{name: name, def: "CREATE OR REPLACE FUNCTION " + name + tail, call: call, params: params, body: body, void: out == ""}
	fns = append(fns, f)
	byCall[call] = f
	return call
}

// combo is one function doing the work of several void ones (plCombine).
type combo struct {
	call  string
	parts []*sqlFn
}

var combos []*combo

// maxParams is PostgreSQL's limit on a function's parameters.
const maxParams = 100

var paramRef = regexp.MustCompile(`\$([0-9]+)`)

// plCombine makes one function of the void functions parts (their calls),
// which mergeCalls then uses for any two or more of them queued one after
// the other, in this order: each statement sent costs the server a parse,
// a plan and a function call. Each part's parameters follow a bool that
// says whether it runs. Parts whose parameters would pass PostgreSQL's
// limit together are left separate.
func plCombine(short string, parts ...string) {
	c := &combo{}
	var params []string
	body := "BEGIN\n"
	for _, p := range parts {
		f := byCall[p]
		if f == nil || !f.void || !strings.HasPrefix(f.body, "BEGIN") {
			panic("plCombine: " + p + " is not a void function's call")
		}
		params = append(params, "bool")
		flag, off := len(params), len(params)
		params = append(params, f.params...)
		shifted := paramRef.ReplaceAllStringFunc(f.body, func(m string) string {
			n, _ := strconv.Atoi(m[1:])
			return fmt.Sprintf("$%d", n+off)
		})
		body += fmt.Sprintf("IF $%d THEN\n%s;\nEND IF;\n", flag, shifted)
		c.parts = append(c.parts, f)
	}
	if len(params) > maxParams {
		return
	}
	c.call = plBlock(short, params, "", body+"END")
	combos = append(combos, c)
}

// mergeCalls replaces, in b, each run of two or more calls of one combo's
// parts (in its order, without result handlers) by one call of the combo.
func mergeCalls(b *pgx.Batch) {
	for _, c := range combos {
		part := func(q *pgx.QueuedQuery) int {
			if q.Fn != nil {
				return -1
			}
			for i, f := range c.parts {
				if f.call == q.SQL {
					return i
				}
			}
			return -1
		}
		var out []*pgx.QueuedQuery
		qs := b.QueuedQueries
		for i := 0; i < len(qs); {
			k := part(qs[i])
			j := i + 1
			for last := k; k >= 0 && j < len(qs); j++ {
				n := part(qs[j])
				if n <= last {
					break
				}
				last = n
			}
			if k < 0 || j-i < 2 {
				out = append(out, qs[i])
				i++
				continue
			}
			var args []any
			run := qs[i:j]
			for _, f := range c.parts {
				if len(run) > 0 && run[0].SQL == f.call {
					args = append(append(args, true), run[0].Arguments...)
					run = run[1:]
					continue
				}
				args = append(args, false)
				args = append(args, make([]any, len(f.params))...)
			}
			out = append(out, &pgx.QueuedQuery{SQL: c.call, Arguments: args})
			i = j
		}
		b.QueuedQueries = out
	}
}

// ensureFns creates the functions missing from the current schema, in
// tx (migrate's, which holds the migration lock).
func ensureFns(ctx context.Context, tx pgx.Tx) error {
	names := make([]string, len(fns))
	for i, f := range fns {
		names[i] = f.name
	}
	rows, err := tx.Query(ctx, `SELECT proname FROM pg_proc WHERE pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) AND proname = ANY($1)`, names)
	if err != nil {
		return fmt.Errorf("hq: ingest functions: %w", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("hq: ingest functions: %w", err)
	}
	got := map[string]bool{}
	for _, n := range have {
		got[n] = true
	}
	for _, f := range fns {
		if got[f.name] {
			continue
		}
		if _, err := tx.Exec(ctx, f.def); err != nil {
			return fmt.Errorf("hq: creating function %s: %w", f.name, err)
		}
	}
	return nil
}
