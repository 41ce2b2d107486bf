package pg

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestMergeCalls: calls of a combo's parts queued one after the other, in
// its order, become one call with a flag and the arguments of each part
// (NULLs for an absent part); a call between them, a part out of order or
// one with a result handler is left alone.
func TestMergeCalls(t *testing.T) {
	c := combos[0]
	args := func(f *sqlFn, v any) []any {
		a := make([]any, len(f.params))
		for i := range a {
			a[i] = v
		}
		return a
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(c.parts[0].call, args(c.parts[0], 1)...)
	b.Queue(c.parts[2].call, args(c.parts[2], 3)...)
	b.Queue(c.parts[3].call, args(c.parts[3], 4)...)
	b.Queue("SELECT 1")
	b.Queue(c.parts[1].call, args(c.parts[1], 2)...)
	b.Queue(c.parts[0].call, args(c.parts[0], 1)...) // out of order: alone
	b.Queue(c.parts[2].call, args(c.parts[2], 3)...).Exec(func(pgconn.CommandTag) error { return nil })
	b.Queue(c.parts[3].call, args(c.parts[3], 4)...)
	mergeCalls(b)
	var sqls []string
	for _, q := range b.QueuedQueries {
		sqls = append(sqls, q.SQL)
	}
	require.Equal(t, []string{"BEGIN", c.call, "SELECT 1", c.parts[1].call, c.parts[0].call, c.parts[2].call, c.parts[3].call}, sqls)
	var want []any
	for i, f := range c.parts {
		switch i {
		case 1:
			want = append(append(want, false), make([]any, len(f.params))...)
		default:
			want = append(append(want, true), args(f, i+1)...)
		}
	}
	require.Equal(t, want, b.QueuedQueries[1].Arguments)
	require.LessOrEqual(t, len(want), maxParams)
}
