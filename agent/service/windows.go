//go:build windows

package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// DefaultConfigPath is %ProgramData%\posagent\posagent.yaml.
var DefaultConfigPath = filepath.Join(programData(), "posagent", "posagent.yaml")

func programData() string {
	if p := os.Getenv("ProgramData"); p != "" {
		return p
	}
	return `C:\ProgramData`
}

// IsService reports whether the Service Control Manager started the process.
func IsService() bool { return isService() }

// isService is decided once: NewLogger and Run both ask, and the answer
// walks the process list. svc.IsWindowsService wants the parent to be
// services.exe in session 0; Wine runs every process, its services.exe
// included, in session 1, so under Wine the parent's name alone decides.
// Without this the agent started by Wine's SCM ran as a console program,
// never connected its control dispatcher and `sc start` failed with 1053.
var isService = sync.OnceValue(func() bool {
	if ok, err := svc.IsWindowsService(); err == nil && ok {
		return true
	}
	return underWine() && parentIsServicesExe()
})

// underWine reports whether ntdll is Wine's (it exports wine_get_version).
func underWine() bool {
	ntdll := windows.NewLazySystemDLL("ntdll.dll")
	return ntdll.NewProc("wine_get_version").Find() == nil
}

func parentIsServicesExe() bool {
	var pbi windows.PROCESS_BASIC_INFORMATION
	n := uint32(unsafe.Sizeof(pbi))
	if err := windows.NtQueryInformationProcess(windows.CurrentProcess(), windows.ProcessBasicInformation,
		unsafe.Pointer(&pbi), n, &n); err != nil {
		return false
	}
	parent, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pbi.InheritedFromUniqueProcessId))
	if err != nil {
		return false
	}
	defer windows.CloseHandle(parent)
	buf := make([]uint16, windows.MAX_PATH)
	size := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(parent, 0, &buf[0], &size); err != nil {
		return false
	}
	return strings.EqualFold(filepath.Base(windows.UTF16ToString(buf[:size])), "services.exe")
}

// NewLogger returns the process logger: under the SCM, records go to the
// Windows event log (source "posagent", registered by Install) and as JSON to
// w; on a console, text to w.
func NewLogger(w io.Writer, level slog.Leveler) (*slog.Logger, func()) {
	opts := &slog.HandlerOptions{Level: level}
	if !IsService() {
		return slog.New(slog.NewTextHandler(w, opts)), func() {}
	}
	el, err := eventlog.Open(Name)
	if err != nil {
		return slog.New(slog.NewJSONHandler(w, opts)), func() {}
	}
	h := &eventHandler{log: el, level: level, mu: new(sync.Mutex)}
	return slog.New(h), func() { el.Close() }
}

// eventHandler writes each record as one event-log message, "msg key=value …".
type eventHandler struct {
	log   *eventlog.Log
	level slog.Leveler
	mu    *sync.Mutex
	attrs []slog.Attr
	group string
}

func (h *eventHandler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.level != nil {
		min = h.level.Level()
	}
	return l >= min
}

func (h *eventHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	write := func(a slog.Attr) {
		if a.Equal(slog.Attr{}) {
			return
		}
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		fmt.Fprintf(&b, " %s=%v", key, a.Value.Resolve())
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(func(a slog.Attr) bool { write(a); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	const eventID = 1
	switch {
	case r.Level >= slog.LevelError:
		return h.log.Error(eventID, b.String())
	case r.Level >= slog.LevelWarn:
		return h.log.Warning(eventID, b.String())
	default:
		return h.log.Info(eventID, b.String())
	}
}

func (h *eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// Run runs r: under the SCM as the Windows service (stop and shutdown
// requests cancel r's context, the service reports Running once r is
// ready), on a console until Ctrl+C, Ctrl+Break, or the console window
// closing, the user logging off or Windows shutting down (which Go delivers
// as SIGTERM), so each of those closes the ledger cleanly.
func Run(ctx context.Context, log *slog.Logger, r Runner) error {
	log = orDiscard(log)
	if !IsService() {
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return r(ctx, func(string) {})
	}
	// The config's default data directory follows %ProgramData%, and so does
	// the MSI's [CommonAppDataFolder], through the known folder. Under Wine
	// the service manager hands its services ProgramData=C:\users\Public
	// while the folder is C:\ProgramData, so the agent would keep its ledger
	// apart from the installed config; the known folder settles it.
	if p, err := windows.KnownFolderPath(windows.FOLDERID_ProgramData, 0); err == nil && p != "" {
		if err := os.Setenv("ProgramData", p); err != nil {
			log.Warn("could not set ProgramData", "path", p, "err", err)
		}
	}
	h := &handler{ctx: ctx, run: r, log: log}
	if err := svc.Run(Name, h); err != nil {
		return fmt.Errorf("run as a Windows service: %w", err)
	}
	return h.err
}

type handler struct {
	ctx context.Context
	run Runner
	log *slog.Logger
	err error
}

// Execute is called by the SCM. A non-zero exit code makes the SCM apply the
// recovery actions Install configured (restart).
func (h *handler) Execute(_ []string, req <-chan svc.ChangeRequest, st chan<- svc.Status) (bool, uint32) {
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	st <- svc.Status{State: svc.StartPending, WaitHint: 90_000}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	// An MSI registers the service without recovery actions or a delayed
	// start (wixl cannot express them), so the service sets them itself;
	// after the first start there is nothing left to change.
	go h.configureSelf()
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() { done <- h.run(ctx, func(string) { once.Do(func() { close(ready) }) }) }()
	readyC := (<-chan struct{})(ready)
	for {
		select {
		case <-readyC:
			readyC = nil
			st <- svc.Status{State: svc.Running, Accepts: accepts}
		case err := <-done:
			h.err = err
			if err != nil {
				h.log.Error("agent stopped with an error", "err", err)
				return true, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				st <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				// Give in-flight commits time to finish before the SCM gives up.
				st <- svc.Status{State: svc.StopPending, WaitHint: 30_000}
				cancel()
				h.err = <-done
				if h.err != nil && !errors.Is(h.err, context.Canceled) {
					h.log.Error("agent stopped with an error", "err", h.err)
					return true, 1
				}
				h.err = nil
				return false, 0
			}
		}
	}
}

// recoveryActions restart the agent 5 s, 10 s and 60 s after a failure; the
// count resets after a day.
var recoveryActions = []mgr.RecoveryAction{
	{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
	{Type: mgr.ServiceRestart, Delay: 10 * time.Second},
	{Type: mgr.ServiceRestart, Delay: 60 * time.Second},
}

const recoveryReset = 24 * time.Hour

// configure gives the service its delayed automatic start and recovery
// actions (a non-zero exit counts as a failure too), leaving what is
// already set. A setting the service manager does not know
// (ERROR_INVALID_LEVEL: Wine has neither the delayed start nor the
// non-crash failure flag) is skipped and reported; the rest still apply.
// It returns one sentence per change or refusal.
func configure(s *mgr.Service) []string {
	var notes []string
	note := func(what string, err error) {
		switch {
		case err == nil:
			notes = append(notes, "set "+what)
		case errors.Is(err, windows.ERROR_INVALID_LEVEL):
			notes = append(notes, fmt.Sprintf("the service manager does not support %s (%v); skipped", what, err))
		default:
			notes = append(notes, fmt.Sprintf("could not set %s: %v", what, err))
		}
	}
	if c, err := s.Config(); err == nil && c.StartType == mgr.StartAutomatic && !c.DelayedAutoStart {
		// Only this one setting: mgr's UpdateConfig rewrites them all.
		info := windows.SERVICE_DELAYED_AUTO_START_INFO{IsDelayedAutoStartUp: 1}
		note("the delayed automatic start (so the network is up)", windows.ChangeServiceConfig2(s.Handle,
			windows.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, (*byte)(unsafe.Pointer(&info))))
	}
	if have, err := s.RecoveryActions(); err != nil || len(have) != len(recoveryActions) {
		note("the recovery actions (restart after 5 s, 10 s, 60 s)",
			s.SetRecoveryActions(recoveryActions, uint32(recoveryReset.Seconds())))
	}
	if on, err := s.RecoveryActionsOnNonCrashFailures(); err != nil || !on {
		note("recovery on a non-zero exit", s.SetRecoveryActionsOnNonCrashFailures(true))
	}
	return notes
}

// configureSelf runs configure on the service's own registration, with the
// rights of its account (LocalSystem may change its own service).
func (h *handler) configureSelf() {
	m, err := mgr.Connect()
	if err != nil {
		h.log.Warn("service settings not checked: cannot connect to the service manager", "err", err)
		return
	}
	defer m.Disconnect()
	s, err := m.OpenService(Name)
	if err != nil {
		h.log.Warn("service settings not checked: cannot open the service", "err", err)
		return
	}
	defer s.Close()
	for _, n := range configure(s) {
		h.log.Info("service settings: " + n)
	}
}

// Notify is a no-op on Windows: readiness goes through the SCM in Run.
func Notify(string) error { return nil }

// Install registers the service with the SCM (automatic start, delayed, so
// the network is up), sets recovery actions (restart after 5 s, 10 s, 60 s;
// the failure count resets after a day, and a non-zero exit counts as a
// failure) and registers the event-log source.
func Install(ctx context.Context, o Options) error {
	if o.Root != "" {
		return errors.New("--root stages Linux files; on Windows install registers the service with the SCM, run it without --root")
	}
	exe, err := o.binary()
	if err != nil {
		return err
	}
	if exe, err = filepath.Abs(exe); err != nil {
		return err
	}
	cfg := o.Config
	if cfg == "" {
		cfg = DefaultConfigPath
	}
	if len(o.DefaultConfig) > 0 {
		if _, err := os.Stat(cfg); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
				return fmt.Errorf("create %s: %w", filepath.Dir(cfg), err)
			}
			if err := os.WriteFile(cfg, o.DefaultConfig, 0o600); err != nil {
				return fmt.Errorf("write %s: %w", cfg, err)
			}
			o.say("wrote a default config to %s; edit it, then start the service", cfg)
		}
	}
	m, err := connect()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	if s, err := m.OpenService(Name); err == nil {
		s.Close()
		return errors.New("the posagent service is already installed; run `posagent service uninstall` first to reinstall")
	}
	// The delayed start is set afterwards, not through mgr.Config: there a
	// refusal deletes the service again, and Wine refuses it.
	s, err := m.CreateService(Name, exe, mgr.Config{
		DisplayName: "posagent till agent",
		Description: "Card and scanner readers, the offline loyalty ledger, HQ sync and the local API for the POS software.",
		StartType:   mgr.StartAutomatic,
	}, "run", "--config", cfg)
	if err != nil {
		return fmt.Errorf("create the service: %w", err)
	}
	defer s.Close()
	for _, n := range configure(s) {
		o.say("%s", n)
	}
	if err := eventlog.InstallAsEventCreate(Name, eventlog.Error|eventlog.Warning|eventlog.Info); err != nil &&
		!strings.Contains(err.Error(), "exists") {
		return fmt.Errorf("register the event-log source: %w", err)
	}
	o.say("installed the %s service (%s run --config %s); start it with `posagent service start`", Name, exe, cfg)
	return nil
}

// Uninstall stops and deletes the service and its event-log source. The
// config and the ledger stay.
func Uninstall(ctx context.Context, o Options) error {
	err := withService(func(s *mgr.Service) error {
		if st, err := s.Query(); err == nil && st.State != svc.Stopped {
			if err := stopAndWait(ctx, s); err != nil {
				o.say("stopping before removal: %v", err)
			}
		}
		if err := s.Delete(); err != nil {
			return fmt.Errorf("delete the service: %w", err)
		}
		_ = eventlog.Remove(Name)
		o.say("removed the %s service; kept the config and the ledger in %s", Name, filepath.Join(programData(), "posagent"))
		return nil
	})
	if errors.Is(err, ErrNotInstalled) {
		o.say("nothing to remove: the service was not installed")
		return nil
	}
	return err
}

// Start starts the service and waits until it runs.
func Start(ctx context.Context, o Options) error {
	return withService(func(s *mgr.Service) error {
		if err := s.Start(); err != nil {
			return fmt.Errorf("start the service: %w (see the Application event log, source posagent)", err)
		}
		if err := waitState(ctx, s, svc.Running); err != nil {
			return err
		}
		o.say("%s: started", Name)
		return nil
	})
}

// Stop stops the service and waits until it has stopped.
func Stop(ctx context.Context, o Options) error {
	return withService(func(s *mgr.Service) error {
		if err := stopAndWait(ctx, s); err != nil {
			return err
		}
		o.say("%s: stopped", Name)
		return nil
	})
}

// Status describes the service's state.
func Status(ctx context.Context, o Options) (string, error) {
	var out string
	err := withService(func(s *mgr.Service) error {
		st, err := s.Query()
		if err != nil {
			return fmt.Errorf("query the service: %w", err)
		}
		cfg, _ := s.Config()
		out = fmt.Sprintf("%s: %s (pid %d)\n  command: %s\n", Name, stateName(st.State), st.ProcessId, cfg.BinaryPathName)
		return nil
	})
	return out, err
}

func connect() (*mgr.Mgr, error) {
	m, err := mgr.Connect()
	if err != nil {
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			return nil, errors.New("managing services needs an elevated prompt: run as Administrator")
		}
		return nil, fmt.Errorf("connect to the service manager: %w", err)
	}
	return m, nil
}

func withService(f func(*mgr.Service) error) error {
	m, err := connect()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	s, err := m.OpenService(Name)
	if err != nil {
		return ErrNotInstalled
	}
	defer s.Close()
	return f(s)
}

func stopAndWait(ctx context.Context, s *mgr.Service) error {
	if _, err := s.Control(svc.Stop); err != nil {
		if errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
			return nil
		}
		return fmt.Errorf("stop the service: %w", err)
	}
	return waitState(ctx, s, svc.Stopped)
}

func waitState(ctx context.Context, s *mgr.Service, want svc.State) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := s.Query()
		if err != nil {
			return fmt.Errorf("query the service: %w", err)
		}
		if st.State == want {
			return nil
		}
		if want == svc.Running && st.State == svc.Stopped {
			return errors.New("the service stopped right after starting; see the Application event log, source posagent")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the service is still %s after 60 s", stateName(st.State))
		case <-t.C:
		}
	}
}

func stateName(s svc.State) string {
	switch s {
	case svc.Stopped:
		return "stopped"
	case svc.StartPending:
		return "starting"
	case svc.StopPending:
		return "stopping"
	case svc.Running:
		return "running"
	case svc.ContinuePending:
		return "resuming"
	case svc.PausePending:
		return "pausing"
	case svc.Paused:
		return "paused"
	}
	return fmt.Sprintf("state %d", s)
}
