package multitest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq/hqtest"
)

// target is where the HQ processes connect: straight to PostgreSQL, or
// through PgBouncer in transaction pooling mode. direct always reaches the
// schema, for the test's own checks.
type target struct {
	name          string
	hqURL, direct string
}

// forTargets runs fn on a fresh schema, with HQ connecting directly and
// through PgBouncer.
func forTargets(t *testing.T, fn func(t *testing.T, tg target)) {
	hqtest.PostgresURL(t)
	t.Run("direct", func(t *testing.T) {
		_, _, direct := freshSchema(t)
		fn(t, target{"direct", direct, direct})
	})
	t.Run("pgbouncer", func(t *testing.T) {
		u, direct := bouncedSchema(t)
		fn(t, target{"pgbouncer", u, direct})
	})
}

// TestMigrationsRacedByThreeProcesses: three hq serve processes started at
// once on an empty schema all come up, and each migration is applied once.
func TestMigrationsRacedByThreeProcesses(t *testing.T) {
	forTargets(t, func(t *testing.T, tg target) {
		procs := make([]*hqProc, 3)
		for i := range procs {
			procs[i] = startHQ(t, tg.hqURL, false)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(procs))
		for i, p := range procs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = p.wait() }()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, tg.direct)
		require.NoError(t, err)
		defer c.Close(ctx)
		// Numbers may have gaps; every file is applied, and recorded once.
		files, err := filepath.Glob("../store/pg/migrations/*.sql")
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(files), 4)
		var n, distinct int
		require.NoError(t, c.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct))
		require.Equal(t, len(files), n, "each migration applied")
		require.Equal(t, n, distinct, "each migration recorded once")
	})
}

// TestProcessesShareOneDatabase: 20 stores sync through a load balancer to
// three hq serve processes on one database; the balancer sends half the
// uploads to two processes at the same moment, and one process is SIGKILLed
// while an upload is under way at it. Every entry ends up stored exactly
// once and HQ's totals and balances equal the tills'.
func TestProcessesShareOneDatabase(t *testing.T) {
	forTargets(t, func(t *testing.T, tg target) {
		p := fleetPlan{stores: 20, tills: 2, waves: 3, perTill: 40, batch: 20, members: 300}
		procs := make([]*hqProc, 3)
		for i := range procs {
			procs[i] = startHQ(t, tg.hqURL, false)
		}
		for _, pr := range procs {
			require.NoError(t, pr.wait())
		}
		lb := startBalancer(t, procs, true)
		sims := newFleet(t, tg.direct, lb.URL, p)
		total := int64(p.stores * p.tills * p.waves * p.perTill)
		stop := make(chan struct{})
		killed := killMidUpload(sims, total, procs[0], lb.backends[0], stop)
		start := time.Now()
		runFleet(t, sims, p, lb, 5*time.Minute)
		close(stop)
		require.True(t, killed(), "a process was killed with an upload under way")
		require.Positive(t, lb.backends[0].cut.Load(), "the killed process cut an upload")
		require.Zero(t, lb.errors5.Load(), "HQ answered 5xx; the last: %v", lb.last5.Load())
		t.Logf("%s: %d entries from %d stores in %v; %d uploads hedged to two processes; uploads per process %d/%d/%d; %d answered 502",
			tg.name, total, p.stores, time.Since(start).Round(time.Millisecond), lb.hedged.Load(),
			lb.backends[0].uploads.Load(), lb.backends[1].uploads.Load(), lb.backends[2].uploads.Load(), lb.failed.Load())
		checkExactlyOnce(t, tg.direct, procs[1].URL, sims)
	})
}
