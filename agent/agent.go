// Package agent is the till daemon: it owns the card readers, the offline
// ledger, the HQ sync client and the local API with the cashier page, and
// ties them together — a read becomes a member event on the stream, a
// committed sale nudges the sync client.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/agent/web"
	"posagent/devices"
	"posagent/ledger"
	"posagent/ledger/staff"
	"posagent/sync/client"
	"posagent/sync/wire"
)

// EventRing is how many recent events the stream keeps for clients that
// resume after a reconnect.
const EventRing = 1024

// How long a client may take to send a request's headers, and then its
// body, before the agent gives up on it (the body with a 408 answer). There
// is deliberately no whole-request read or write timeout: the event stream
// is a request that lasts for hours. Variables so tests can shorten them.
var (
	headerTimeout = 10 * time.Second
	bodyTimeout   = api.DefaultBodyTimeout
)

// Agent is one running till agent.
type Agent struct {
	cfg     config.Config
	log     *slog.Logger
	led     *ledger.Ledger
	hub     *events.Hub
	api     *api.Server
	metrics *api.Metrics
	dev     *devices.Manager // nil: no readers configured
	sync    *client.Client   // nil: no HQ configured
	ln      net.Listener
	srv     *http.Server
	loc     *time.Location
	// confirmed: members whose balances an HQ look-up applied lately.
	confirmed *confirmedBalances

	mu      sync.Mutex
	onReady func()
	ran     bool
}

// New validates cfg, opens the ledger and the API listener and prepares the
// devices and the sync client; nothing runs until Run. On error everything
// opened so far is closed again.
func New(cfg config.Config, log *slog.Logger) (a *Agent, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	loc, err := cfg.Location()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create the data directory %s: %w; set data_dir to a writable directory", cfg.DataDir, err)
	}
	key, err := cfg.TokenKeyBytes()
	if err != nil {
		return nil, err
	}
	apiToken, err := cfg.APIToken()
	if err != nil {
		return nil, err
	}
	// After APIToken and TokenKeyBytes, which generate their files.
	warnSecretPerms(cfg, log)
	a = &Agent{cfg: cfg, log: log, hub: events.NewHub(EventRing), loc: loc, confirmed: newConfirmedBalances()}
	opened := a // a is nil on the error returns below
	defer func() {
		if err != nil {
			opened.closeAll()
		}
	}()

	lo, err := LedgerOptions(cfg)
	if err != nil {
		return nil, err
	}
	a.led, err = ledger.Open(cfg.LedgerPath(), lo)
	if err != nil {
		return nil, err
	}

	tills := []string{cfg.Till}
	if len(cfg.Devices) > 0 {
		for _, d := range cfg.Devices {
			tills = append(tills, d.Till)
		}
		a.dev, err = devices.NewManager(DeviceConfigs(cfg), key, log.With("component", "devices"), deviceOptions...)
		if err != nil {
			return nil, err
		}
	}

	if cfg.HQ.URL != "" {
		tok, err := cfg.HQToken()
		if err != nil {
			return nil, err
		}
		cc := client.Config{URL: cfg.HQ.URL, Token: tok, Store: cfg.Store, BatchMax: cfg.HQ.BatchMax, BatchAge: cfg.HQ.BatchAge}
		if cfg.HQ.CAFile != "" || cfg.HQ.CertFile != "" {
			if cc.TLS, err = client.LoadTLS(cfg.HQ.CAFile, cfg.HQ.CertFile, cfg.HQ.KeyFile); err != nil {
				return nil, err
			}
		}
		a.sync, err = client.New(cc, outbox{a.led}, inbox{a.led}, log.With("component", "sync"))
		if err != nil {
			return nil, err
		}
	}

	a.metrics = api.NewMetrics(a.led.Backlog)
	sessions, err := newSessions(cfg, a.led)
	if err != nil {
		return nil, err
	}
	a.warnCashiers()
	o := api.Options{
		Ledger: a.led, Hub: a.hub, Metrics: a.metrics, Store: cfg.Store, Till: cfg.Till, Tills: tills,
		TokenKey: key, Card: cfg.Card, APIToken: apiToken,
		Sessions: sessions, Cashiers: a.led, CashiersFromHQ: cfg.HQ.URL != "", POSCashierOptional: cfg.Cashiers.AllowPOSWithoutCashier,
		Supervisor: supervisorRules(cfg),
		DataDir:    cfg.DataDir, MinFreeBytes: uint64(cfg.MinFreeMB) << 20, MaxBodyBytes: cfg.API.MaxBodyBytes, BodyTimeout: bodyTimeout,
		AllowRemote: cfg.API.AllowRemote, Page: web.Handler(), Location: loc,
		Log: log.With("component", "api"), Sync: a.syncStatus, Offline: a.offline,
		MemberCode: func(ctx context.Context, till, code string) (ledger.MemberView, error) {
			return a.typedMemberCode(ctx, till, code)
		},
		RefreshMember: a.refreshMember,
	}
	if a.dev != nil {
		o.Devices = a.deviceStatus
	}
	if a.sync != nil {
		o.SyncNow = a.sync.SyncNow
		o.SyncDetail = func() any { return a.sync.Status() }
		o.OnCommit = a.sync.Nudge
		if cfg.HQ.RefreshTimeout() > 0 {
			// HQ answers look-ups: a redemption needs its balances of late.
			o.BalancesConfirmed = a.balancesConfirmed
		}
	}
	a.api, err = api.New(o)
	if err != nil {
		return nil, err
	}
	a.ln, err = net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("api.listen %s: %w; is another posagent running? Stop it or choose another port", cfg.API.Listen, err)
	}
	return a, nil
}

// Addr is the address the API listens on (host:port), e.g. for tests that
// listen on port 0.
func (a *Agent) Addr() string { return a.ln.Addr().String() }

// Ledger is the agent's open ledger (for in-process tools and tests).
func (a *Agent) Ledger() *ledger.Ledger { return a.led }

// Handler is the agent's HTTP handler (API, stream and cashier page).
func (a *Agent) Handler() http.Handler { return a.api }

// OnReady sets a function Run calls once the API serves and every part has
// started (systemd's READY=1, the Windows service's Running state).
func (a *Agent) OnReady(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onReady = f
}

// Run serves until ctx is cancelled, then stops the API, the readers and
// the sync client and closes the ledger, in that order. It returns the
// first error that stopped it early (nil after a clean shutdown).
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.ran {
		a.mu.Unlock()
		return errors.New("agent: Run called twice")
	}
	a.ran = true
	ready := a.onReady
	a.mu.Unlock()
	defer a.closeAll()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Streams are long requests; cancelling their base context on shutdown
	// ends them so Shutdown does not wait for clients to hang up.
	reqCtx, cancelReqs := context.WithCancel(context.Background())
	defer cancelReqs()
	a.srv = &http.Server{
		Handler:           a.api,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cancel(fmt.Errorf("api server: %w", err))
		}
	})
	if a.dev != nil {
		wg.Go(func() { _ = a.dev.Run(ctx) })
		wg.Go(func() { a.dispatch(ctx) })
	}
	if a.sync != nil {
		wg.Go(func() { _ = a.sync.Run(ctx) })
		wg.Go(func() { a.watchSync(ctx) })
	}
	wg.Go(func() { a.expireLots(ctx) })
	wg.Go(func() { a.warmMembers(ctx) })

	a.log.Info("agent running", "store", a.cfg.Store, "till", a.cfg.Till, "api", "http://"+a.Addr()+"/",
		"devices", len(a.cfg.Devices), "hq", a.cfg.HQ.URL != "", "data_dir", a.cfg.DataDir)
	if ready != nil {
		ready()
	}
	<-ctx.Done()

	a.log.Info("agent stopping")
	shutCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	cancelReqs()
	if err := a.srv.Shutdown(shutCtx); err != nil {
		a.log.Warn("api shutdown", "err", err)
		_ = a.srv.Close()
	}
	cancel(nil)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// closeAll releases what New opened. Safe when parts are nil.
func (a *Agent) closeAll() {
	if a.ln != nil {
		_ = a.ln.Close()
	}
	if a.led != nil {
		if err := a.led.Close(); err != nil {
			a.log.Error("closing the ledger", "err", err)
		}
	}
}

// DeviceConfigs maps the config file's readers to the devices package's;
// the agent and the `posagent devices` commands open readers from it alike.
func DeviceConfigs(cfg config.Config) []devices.Config {
	out := make([]devices.Config, 0, len(cfg.Devices))
	for _, d := range cfg.Devices {
		// config.Device mirrors devices.Config field for field: this
		// conversion stops compiling when the two part ways.
		out = append(out, devices.Config(d))
	}
	return out
}

// LedgerOptions are the options the ledger file is opened with (store,
// till, the program of ledger.program_file, the window for sale times);
// the agent and the `posagent ledger` commands open it alike.
func LedgerOptions(cfg config.Config) (ledger.Options, error) {
	progs, err := cfg.Programs()
	if err != nil {
		return ledger.Options{}, err
	}
	return ledger.Options{Store: cfg.Store, Till: cfg.Till, TimeZone: cfg.TimeZone, Programs: progs,
		ClockSkew: cfg.Ledger.ClockSkew, MaxBackdate: cfg.Ledger.MaxBackdate}, nil
}

func (a *Agent) deviceStatus() []api.DeviceStatus {
	st := a.dev.Status()
	out := make([]api.DeviceStatus, 0, len(st))
	for _, s := range st {
		out = append(out, api.DeviceStatus{Name: s.Name, Till: s.Till, Transport: s.Transport, Online: s.Online, State: s.State, Detail: s.Detail, Since: s.Since})
	}
	return out
}

func (a *Agent) syncStatus() api.SyncStatus {
	if a.sync == nil {
		st := api.SyncStatus{}
		if n, oldest, err := a.led.Backlog(); err == nil {
			st.Backlog, st.OldestPending = n, oldest
		}
		return st
	}
	s := a.sync.Status()
	st := api.SyncStatus{Configured: true, Online: !s.LastSuccess.IsZero() && s.Failures == 0,
		LastSuccess: s.LastSuccess, LastError: s.LastError, Backlog: s.Backlog, OldestPending: s.OldestPending}
	// The client's figure is a snapshot from its last round, which can be a
	// minute old while it backs off from an unreachable HQ; the ledger knows.
	if n, oldest, err := a.led.Backlog(); err == nil {
		st.Backlog, st.OldestPending = n, oldest
	}
	return st
}

// offline: HQ is configured but the last exchange failed or none worked
// yet, so redemption falls under the offline daily cap. A till with no HQ
// at all is its own truth and is never "offline".
func (a *Agent) offline() bool {
	if a.sync == nil {
		return false
	}
	s := a.sync.Status()
	return s.LastSuccess.IsZero() || s.Failures > 0
}

// watchSync publishes a sync event whenever the HQ link's state changes.
func (a *Agent) watchSync(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	type key struct {
		online  bool
		err     string
		pending bool
	}
	var last key
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := a.syncStatus()
		k := key{st.Online, st.LastError, st.Backlog > 0}
		if first || k != last {
			first = false
			last = k
			if _, err := a.hub.Publish(events.TypeSync, "", st); err != nil {
				a.log.Warn("publishing sync status", "err", err)
			}
		}
	}
}

// expireLots writes off expired points lots at start and then every six
// hours (members are also expired lazily when next used).
func (a *Agent) expireLots(ctx context.Context) {
	t := time.NewTicker(6 * time.Hour)
	defer t.Stop()
	for {
		if n, err := a.led.ExpireLots(ctx, time.Now()); err != nil && ctx.Err() == nil {
			a.log.Warn("expiring points lots", "err", err)
		} else if n > 0 {
			a.log.Info("expired points lots written off", "lots", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// inbox adapts the ledger to the sync client's Inbox (the wire types stay
// out of the ledger).
type inbox struct{ l *ledger.Ledger }

func (in inbox) ApplyMemberStates(states []wire.MemberState) error {
	out, err := memberStates(states)
	if err != nil {
		return err
	}
	return in.l.ApplyMemberStates(out)
}

// LoadSnapshot takes HQ's member snapshot through the ledger's bulk load
// (client.SnapshotLoader): a new till onboards several times faster than
// applying it batch by batch.
func (in inbox) LoadSnapshot() (client.SnapshotLoad, error) {
	ld, err := in.l.LoadMembers()
	if err != nil {
		return nil, err
	}
	return snapshotLoad{ld}, nil
}

var _ client.SnapshotLoader = inbox{}

// snapshotLoad adapts a ledger.MemberLoad to client.SnapshotLoad.
type snapshotLoad struct{ ld *ledger.MemberLoad }

func (s snapshotLoad) Add(states []wire.MemberState) error {
	out, err := memberStates(states)
	if err != nil {
		return err
	}
	return s.ld.Add(out)
}

func (s snapshotLoad) Finish() error { return s.ld.Finish() }
func (s snapshotLoad) Abort()        { s.ld.Abort() }

// memberStates converts HQ's member states to the ledger's.
func memberStates(states []wire.MemberState) ([]ledger.MemberState, error) {
	out := make([]ledger.MemberState, 0, len(states))
	for _, s := range states {
		ms := ledger.MemberState{Member: s.Member, Points: s.Points, StoredValue: s.StoredValue, Coupons: s.Coupons, Flagged: s.Flagged}
		if s.LastSale != "" {
			t, err := time.Parse(time.RFC3339, s.LastSale)
			if err != nil {
				return nil, fmt.Errorf("member %s from HQ: last_sale %q is not RFC 3339", s.Member.ID, s.LastSale)
			}
			ms.LastSale = t
		}
		out = append(out, ms)
	}
	return out, nil
}

// The till keeps the store's cashiers from HQ (client.CashierInbox).
func (in inbox) CashiersVersion() (string, error) { return in.l.CashiersVersion() }
func (in inbox) ApplyCashiers(version string, list []staff.Cashier) error {
	return in.l.ApplyCashiers(version, list)
}

func (in inbox) ApplyProgram(src []byte) error     { return in.l.ApplyProgram(src) }
func (in inbox) SyncCursor() (string, error)       { return in.l.SyncCursor() }
func (in inbox) SetSyncCursor(cursor string) error { return in.l.SetSyncCursor(cursor) }
