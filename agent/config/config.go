// Package config is the agent's one configuration file: store and till ids,
// time zone, readers, HQ, the local API and where data lives.
//
// The file is YAML. Unknown keys are rejected and every error names the key
// (and the line when it came from a file), because a store technician fixing
// a config over the phone needs to know exactly which line is wrong.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"posagent/devices/decode"
	"posagent/devices/frame"
	"posagent/devices/token"
	"posagent/ledger/durable"
	"posagent/ledger/entry"
	"posagent/ledger/loyalty"

	// Windows has no zoneinfo database; the store's zone must resolve anyway.
	_ "time/tzdata"
)

// Config is the whole agent configuration.
type Config struct {
	Store    string `yaml:"store"`
	Till     string `yaml:"till"`
	TimeZone string `yaml:"timezone"`
	// DataDir holds the ledger, the generated keys and the readiness probe.
	DataDir string `yaml:"data_dir"`
	// TokenKey is the hex key of the keyed hash that turns card numbers
	// into tokens. Empty: generated on first start into DataDir/token.key.
	// Every till of a chain must share it for a card to be recognised
	// everywhere, so HQ normally hands it out.
	TokenKey     string `yaml:"token_key"`
	TokenKeyFile string `yaml:"token_key_file"`
	// MinFreeMB is the free disk space below which /readyz fails.
	MinFreeMB int64 `yaml:"min_free_mb"`
	// Card is how a card number typed by the cashier becomes a token.
	Card    CardRule `yaml:"card"`
	Ledger  Ledger   `yaml:"ledger"`
	Devices []Device `yaml:"devices"`
	HQ      HQ       `yaml:"hq"`
	API     API      `yaml:"api"`
	// Cashiers is sign-in at the till and what needs a supervisor.
	Cashiers Cashiers `yaml:"cashiers"`
	// MemberCodes is how the till takes members' codes (docs/membercode.md).
	MemberCodes MemberCodes `yaml:"member_codes"`

	// Source is the file the config was read from ("" for defaults).
	Source string `yaml:"-"`
	lines  map[string]int
}

// CardRule checks and normalises typed card numbers.
type CardRule struct {
	// Prefix, when set, must start every card number.
	Prefix string `yaml:"prefix"`
	// Luhn requires a valid Luhn check digit (bank-style card numbers).
	Luhn bool `yaml:"luhn"`
	// MinLength and MaxLength bound the number of characters.
	MinLength int `yaml:"min_length"`
	MaxLength int `yaml:"max_length"`
}

// Ledger configures the offline ledger.
type Ledger struct {
	// Path of the bbolt file; default DataDir/ledger.db.
	Path string `yaml:"path"`
	// ProgramFile is a loyalty program YAML used instead of the embedded
	// default until HQ publishes one.
	ProgramFile string `yaml:"program_file"`
	// ClockSkew is how far a sale's at may be ahead of the agent's clock,
	// and MaxBackdate how far behind (a receipt the POS queued keeps its
	// own time). 0: the ledger's defaults, 5m and 168h (7 days).
	ClockSkew   time.Duration `yaml:"clock_skew"`
	MaxBackdate time.Duration `yaml:"max_backdate"`
}

// Device is one card reader or scanner; the fields mirror devices.Config
// (see docs/devices.md for every setting).
type Device struct {
	Name        string        `yaml:"name"`
	Till        string        `yaml:"till"`      // default: the agent's till
	Transport   string        `yaml:"transport"` // serial (default) | hid | evdev
	Path        string        `yaml:"path"`
	VID         string        `yaml:"vid"`
	PID         string        `yaml:"pid"`
	Serial      string        `yaml:"serial"`
	Baud        int           `yaml:"baud"`
	DataBits    int           `yaml:"data_bits"`
	Parity      string        `yaml:"parity"`
	StopBits    string        `yaml:"stop_bits"`
	FlowControl string        `yaml:"flow_control"`
	Framer      frame.Config  `yaml:"framer"`
	Decoder     string        `yaml:"decoder"`
	Rule        token.Rule    `yaml:"rule"`
	Layout      string        `yaml:"layout"`
	HIDReport   string        `yaml:"hid_report"`
	Debounce    time.Duration `yaml:"debounce"`
	// PaymentCodes: pos (default) hands a customer's payment code scanned
	// here to the POS of the till; drop discards it (docs/devices.md).
	PaymentCodes string `yaml:"payment_codes"`
}

// HQ is the central server; empty URL means no sync (standalone till).
type HQ struct {
	URL       string `yaml:"url"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// CAFile verifies HQ's certificate (default: system roots);
	// CertFile/KeyFile are the store's client certificate, both or neither.
	CAFile   string        `yaml:"ca_file"`
	CertFile string        `yaml:"cert_file"`
	KeyFile  string        `yaml:"key_file"`
	BatchMax int           `yaml:"batch_max"`
	BatchAge time.Duration `yaml:"batch_age"`
	// MemberRefreshTimeout is how long the till waits for HQ's balances of
	// a member just identified (a swipe, a scanned code, a POS look-up);
	// past it, or with HQ known unreachable, it answers from its own. 0:
	// no refresh; unset: DefaultMemberRefreshTimeout.
	MemberRefreshTimeout *time.Duration `yaml:"member_refresh_timeout"`
}

// DefaultMemberRefreshTimeout is HQ.MemberRefreshTimeout's default.
const DefaultMemberRefreshTimeout = 800 * time.Millisecond

// RefreshTimeout is MemberRefreshTimeout with its default (0: no refresh).
func (h HQ) RefreshTimeout() time.Duration {
	if h.MemberRefreshTimeout == nil {
		return DefaultMemberRefreshTimeout
	}
	return *h.MemberRefreshTimeout
}

// API is the local HTTP API and cashier page.
type API struct {
	Listen string `yaml:"listen"`
	// Token authorises API calls. Empty: generated on first start into
	// DataDir/api.token (mode 0600), where the POS software reads it.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// AllowRemote must be true to listen on anything but loopback.
	AllowRemote  bool  `yaml:"allow_remote"`
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// MemberCodes configures the signed, expiring member codes of the phone
// card and the static barcodes before them.
type MemberCodes struct {
	// Static is what becomes of a member barcode that is not a signed
	// code (a printed card's barcode, an old MEMBER: code): allow (the
	// default) looks it up as before; refuse asks for the phone's code.
	// Magnetic-stripe and RFID cards are not barcodes and always work.
	Static string `yaml:"static"`
	// ClaimTimeout is how long the till waits for HQ when it claims a code
	// (so a code used at another till is refused); past it the code is
	// accepted offline and claimed later. 0: the default, 1.5s.
	ClaimTimeout time.Duration `yaml:"claim_timeout"`
}

// Values of MemberCodes.Static.
const (
	StaticAllow  = "allow"
	StaticRefuse = "refuse"
)

// DefaultClaimTimeout is MemberCodes.ClaimTimeout's default.
const DefaultClaimTimeout = 1500 * time.Millisecond

// Cashiers configures cashier sign-in (docs/agent.md).
type Cashiers struct {
	// IdleTimeout ends a cashier page session left unused this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxPINTries wrong PINs in a row lock the cashier for Lockout.
	MaxPINTries int           `yaml:"max_pin_tries"`
	Lockout     time.Duration `yaml:"lockout"`
	// AllowPOSWithoutCashier lets POS software write without naming a
	// cashier (for the install period, before the POS sends one). Off: a
	// write must name a known, enabled cashier.
	AllowPOSWithoutCashier bool       `yaml:"allow_pos_without_cashier"`
	Supervisor             Supervisor `yaml:"supervisor"`
}

// Supervisor names the actions a cashier at the page may not take alone.
type Supervisor struct {
	// TopUpOver: a top-up above this many fen needs a supervisor. 0: the
	// default (100000 fen, 1000 yuan); -1: none does.
	TopUpOver int64 `yaml:"topup_over"`
	// Voids and RefundsWithoutReceipt need a supervisor unless set false.
	Voids                 *bool `yaml:"voids"`
	RefundsWithoutReceipt *bool `yaml:"refunds_without_receipt"`
	// ManualCardEntry: a card number typed by hand needs a supervisor.
	ManualCardEntry bool `yaml:"manual_card_entry"`
}

// NeedsForVoids reports whether voids need a supervisor (default yes).
func (s Supervisor) NeedsForVoids() bool { return s.Voids == nil || *s.Voids }

// NeedsForRefundsWithoutReceipt reports whether a refund without receipt
// needs a supervisor (default yes).
func (s Supervisor) NeedsForRefundsWithoutReceipt() bool {
	return s.RefundsWithoutReceipt == nil || *s.RefundsWithoutReceipt
}

// TopUpLimit is the top-up in fen above which a supervisor is needed (0:
// none is).
func (s Supervisor) TopUpLimit() int64 {
	switch {
	case s.TopUpOver == 0:
		return DefaultTopUpOver
	case s.TopUpOver < 0:
		return 0
	}
	return s.TopUpOver
}

// Defaults.
const (
	DefaultIdleTimeout = 15 * time.Minute
	DefaultMaxPINTries = 5
	DefaultLockout     = 15 * time.Minute
	DefaultTopUpOver   = 100000 // fen

	DefaultListen       = "127.0.0.1:8420"
	DefaultTimeZone     = "Asia/Shanghai"
	DefaultStore        = "local"
	DefaultTill         = "till-1"
	DefaultMinFreeMB    = 64
	DefaultMaxBodyBytes = 1 << 20
	FileName            = "posagent.yaml"
)

// Default is the configuration used when there is no file: a standalone
// till with no readers, the ledger in the OS data directory.
func Default() Config {
	return Config{
		Store:     DefaultStore,
		Till:      DefaultTill,
		TimeZone:  DefaultTimeZone,
		DataDir:   DefaultDataDir(),
		MinFreeMB: DefaultMinFreeMB,
		API:       API{Listen: DefaultListen, MaxBodyBytes: DefaultMaxBodyBytes},
		HQ:        HQ{BatchMax: 500, BatchAge: 2 * time.Second, MemberRefreshTimeout: new(DefaultMemberRefreshTimeout)},
		Cashiers:  Cashiers{IdleTimeout: DefaultIdleTimeout, MaxPINTries: DefaultMaxPINTries, Lockout: DefaultLockout},
	}
}

// asService reports whether the process runs as a system service (root,
// or started by systemd), which selects the system-wide paths on Unix.
func asService() bool {
	if os.Getenv("INVOCATION_ID") != "" || os.Getenv("NOTIFY_SOCKET") != "" {
		return true
	}
	return os.Geteuid() == 0
}

func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}

// DefaultPath is where the config file is looked for when none is named:
// /etc/posagent/posagent.yaml for a Linux service or root (unless
// $XDG_CONFIG_HOME is set and holds posagent/posagent.yaml),
// %ProgramData%\posagent\posagent.yaml on Windows, the user config
// directory otherwise.
func DefaultPath() string { p, _ := defaultPath(); return p }

// defaultPath returns DefaultPath and why it was chosen.
func defaultPath() (string, string) {
	switch {
	case runtime.GOOS == "windows":
		return filepath.Join(programData(), "posagent", FileName), "the Windows default (%ProgramData%)"
	case runtime.GOOS == "linux" && asService():
		// Root honours a config the user put under an explicit
		// XDG_CONFIG_HOME; otherwise the system location applies.
		if d := os.Getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
			p := filepath.Join(d, "posagent", FileName)
			if _, err := os.Stat(p); err == nil {
				return p, "$XDG_CONFIG_HOME is set and holds posagent/" + FileName
			}
		}
		who := "running as root"
		if os.Geteuid() != 0 {
			who = "running under systemd"
		}
		return "/etc/posagent/" + FileName, "the system location (" + who + ")"
	}
	if d, err := os.UserConfigDir(); err == nil {
		why := "the user config directory (~/.config)"
		if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
			why = "the user config directory ($XDG_CONFIG_HOME)"
		}
		return filepath.Join(d, "posagent", FileName), why
	}
	return FileName, "the current directory (no user config directory)"
}

// Origin says which config file a command uses and why.
type Origin struct {
	// Path is the file; "" when the built-in defaults apply.
	Path string
	// LookedFor is the default file that did not exist, with built-in defaults.
	LookedFor string
	// Why is a short reason for the log line.
	Why string
}

// Locate picks the config file: flag (--config) first, then
// $POSAGENT_CONFIG, then DefaultPath when that file exists, else the
// built-in defaults. Load(o.Path) then reads what Locate chose.
func Locate(flag string) Origin {
	if flag != "" {
		return Origin{Path: flag, Why: "--config"}
	}
	if e := os.Getenv("POSAGENT_CONFIG"); e != "" {
		return Origin{Path: e, Why: "$POSAGENT_CONFIG"}
	}
	p, why := defaultPath()
	if _, err := os.Stat(p); err != nil {
		return Origin{LookedFor: p, Why: "built-in defaults: no file at " + p + " (" + why + ")"}
	}
	return Origin{Path: p, Why: why}
}

// DefaultDataDir is /var/lib/posagent for a Linux service or root,
// %ProgramData%\posagent on Windows, the user's data directory otherwise
// ($XDG_DATA_HOME/posagent or ~/.local/share/posagent).
func DefaultDataDir() string {
	switch runtime.GOOS {
	case "windows":
		return filepath.Join(programData(), "posagent")
	case "linux":
		if asService() {
			return "/var/lib/posagent"
		}
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "posagent")
	}
	if runtime.GOOS == "darwin" {
		if d, err := os.UserConfigDir(); err == nil { // ~/Library/Application Support
			return filepath.Join(d, "posagent")
		}
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "posagent")
	}
	return "posagent-data"
}

// Load reads the config file at path. With path "" it reads DefaultPath,
// and a missing default file is not an error: the defaults apply. A named
// file that does not exist is an error.
func Load(path string) (Config, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultPath()
	}
	src, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return Default(), nil
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(src)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	c.Source = path
	if c.DataDir != "" && !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(filepath.Dir(path), c.DataDir)
	}
	return c, nil
}

// ApplyDefaults fills what a file may leave out; Parse calls it.
func (c *Config) ApplyDefaults() {
	d := Default()
	if c.Store == "" {
		c.Store = d.Store
	}
	if c.Till == "" {
		c.Till = d.Till
	}
	if c.TimeZone == "" {
		c.TimeZone = d.TimeZone
	}
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.MinFreeMB == 0 {
		c.MinFreeMB = d.MinFreeMB
	}
	if c.API.Listen == "" {
		c.API.Listen = d.API.Listen
	}
	if c.API.MaxBodyBytes == 0 {
		c.API.MaxBodyBytes = d.API.MaxBodyBytes
	}
	if c.HQ.BatchMax == 0 {
		c.HQ.BatchMax = d.HQ.BatchMax
	}
	if c.HQ.BatchAge == 0 {
		c.HQ.BatchAge = d.HQ.BatchAge
	}
	if c.HQ.MemberRefreshTimeout == nil {
		c.HQ.MemberRefreshTimeout = d.HQ.MemberRefreshTimeout
	}
	if c.Cashiers.IdleTimeout == 0 {
		c.Cashiers.IdleTimeout = d.Cashiers.IdleTimeout
	}
	if c.Cashiers.MaxPINTries == 0 {
		c.Cashiers.MaxPINTries = d.Cashiers.MaxPINTries
	}
	if c.Cashiers.Lockout == 0 {
		c.Cashiers.Lockout = d.Cashiers.Lockout
	}
	for i := range c.Devices {
		dv := &c.Devices[i]
		if dv.Till == "" {
			dv.Till = c.Till
		}
		if dv.Transport == "serial" || dv.Transport == "" {
			if dv.Baud == 0 {
				dv.Baud = 9600
			}
			if dv.DataBits == 0 {
				dv.DataBits = 8
			}
		}
	}
}

// Location is the store's time zone.
func (c Config) Location() (*time.Location, error) {
	return time.LoadLocation(c.TimeZone)
}

// LedgerPath is the ledger file.
func (c Config) LedgerPath() string {
	if c.Ledger.Path != "" {
		return c.Ledger.Path
	}
	return filepath.Join(c.DataDir, "ledger.db")
}

// Programs is the loyalty program of ledger.program_file, parsed and
// checked; nil when none is set (the ledger then uses the embedded default
// until HQ publishes one).
func (c Config) Programs() (loyalty.Programs, error) {
	if c.Ledger.ProgramFile == "" {
		return nil, nil
	}
	src, err := os.ReadFile(c.Ledger.ProgramFile)
	if err != nil {
		return nil, fmt.Errorf("ledger.program_file: %w", err)
	}
	p, err := loyalty.ParseProgram(src)
	if err != nil {
		return nil, fmt.Errorf("ledger.program_file %s: %w", c.Ledger.ProgramFile, err)
	}
	return loyalty.Programs{p}, nil
}

// Error is one invalid setting.
type Error struct {
	Key  string // e.g. devices[0].framer.kind
	Line int    // 0 when not known
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.Key, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

// Validate checks every setting and returns all problems at once, each
// naming its key (and line when read from a file).
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &Error{Key: key, Line: c.lineOf(key), Msg: fmt.Sprintf(format, a...)})
	}
	if !entry.ValidID(c.Store) {
		bad("store", "%q is not a valid store id (letters, digits, '.', '_', '-', at most 64)", c.Store)
	}
	if !entry.ValidID(c.Till) {
		bad("till", "%q is not a valid till id (letters, digits, '.', '_', '-', at most 64)", c.Till)
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" {
		bad("timezone", "unknown time zone %q; use an IANA name such as Asia/Shanghai", c.TimeZone)
	}
	if c.DataDir == "" {
		bad("data_dir", "must be set")
	}
	if c.TokenKey != "" {
		k, err := hex.DecodeString(c.TokenKey)
		if err != nil || len(k) < 16 {
			bad("token_key", "must be at least 32 hex digits (16 bytes)")
		}
		if c.TokenKeyFile != "" {
			bad("token_key_file", "set token_key or token_key_file, not both")
		}
	}
	if c.MinFreeMB < 0 {
		bad("min_free_mb", "must not be negative")
	}
	if c.Ledger.ClockSkew < 0 {
		bad("ledger.clock_skew", "must not be negative (e.g. 5m; 0 for the default)")
	}
	if c.Ledger.MaxBackdate < 0 {
		bad("ledger.max_backdate", "must not be negative (e.g. 168h; 0 for the default)")
	}
	switch strings.ToLower(strings.TrimSpace(c.MemberCodes.Static)) {
	case "", StaticAllow, StaticRefuse:
	default:
		bad("member_codes.static", "%q: use allow (static member barcodes work) or refuse (only the phone's signed code)", c.MemberCodes.Static)
	}
	if t := c.HQ.RefreshTimeout(); t < 0 || t > 10*time.Second {
		bad("hq.member_refresh_timeout", "must be 0 (no refresh) to 10s (default %s)", DefaultMemberRefreshTimeout)
	}
	if c.MemberCodes.ClaimTimeout < 0 || c.MemberCodes.ClaimTimeout > 10*time.Second {
		bad("member_codes.claim_timeout", "must be 0 (default %s) to 10s", DefaultClaimTimeout)
	}
	if c.Card.MinLength < 0 || c.Card.MaxLength < 0 || (c.Card.MaxLength > 0 && c.Card.MinLength > c.Card.MaxLength) {
		bad("card", "min_length and max_length must be positive and min_length <= max_length")
	}
	seen := map[string]int{}
	for i, d := range c.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		if d.Name == "" {
			bad(p+".name", "every device needs a name")
		} else if j, dup := seen[d.Name]; dup {
			bad(p+".name", "%q is already the name of devices[%d]", d.Name, j)
		} else {
			seen[d.Name] = i
		}
		if !entry.ValidID(d.Till) {
			bad(p+".till", "%q is not a valid till id", d.Till)
		}
		switch d.Transport {
		case "", "serial":
			if d.Path == "" && (d.VID == "" || d.PID == "") {
				bad(p+".path", "a serial device needs a path (e.g. /dev/ttyUSB0 or COM3) or vid and pid")
			}
			if d.Baud < 0 {
				bad(p+".baud", "must be positive")
			}
			switch d.Parity {
			case "", "none", "odd", "even", "mark", "space":
			default:
				bad(p+".parity", "%q: use none, odd, even, mark or space", d.Parity)
			}
			switch d.StopBits {
			case "", "1", "1.5", "2":
			default:
				bad(p+".stop_bits", "%q: use 1, 1.5 or 2", d.StopBits)
			}
		case "hid":
			if d.Path == "" && (d.VID == "" || d.PID == "") {
				bad(p+".vid", "a HID device needs vid and pid (hex, e.g. 0801 and 0002) or a path")
			}
			switch d.HIDReport {
			case "pos", "msr", "keyboard":
			default:
				bad(p+".hid_report", "%q: use pos (HID POS scanner), msr (MagTek-style card reader) or keyboard (wedge reader)", d.HIDReport)
			}
		case "evdev":
			if d.Path == "" {
				bad(p+".path", "an evdev device needs a path such as /dev/input/by-id/...-event-kbd")
			}
		default:
			bad(p+".transport", "%q: use serial, hid or evdev", d.Transport)
		}
		if d.Framer.Kind != "" {
			if _, err := frame.New(d.Framer); err != nil {
				bad(p+".framer", "%v", err)
			}
		}
		if d.Decoder == "" && !(d.Transport == "hid" && (d.HIDReport == "pos" || d.HIDReport == "msr")) {
			bad(p+".decoder", "name the decoder: msr, msr:lrc, em4100, parallax, pn532, barcode or uid:<format>")
		} else if d.Decoder != "" {
			if _, err := decode.ByName(d.Decoder); err != nil {
				bad(p+".decoder", "%v", err)
			}
		}
		if d.Rule.Source != "" {
			if err := d.Rule.Validate(); err != nil {
				bad(p+".rule", "%v", err)
			}
		}
		if d.Debounce < 0 || d.Framer.Gap < 0 {
			bad(p+".debounce", "durations must not be negative")
		}
		switch strings.ToLower(strings.TrimSpace(d.PaymentCodes)) {
		case "", "pos", "drop":
		default:
			bad(p+".payment_codes", "%q: use pos (hand payment codes to the POS) or drop", d.PaymentCodes)
		}
	}
	if c.HQ.URL != "" {
		if !strings.HasPrefix(c.HQ.URL, "https://") && !strings.HasPrefix(c.HQ.URL, "http://") {
			bad("hq.url", "%q must start with https:// (or http:// on a test network)", c.HQ.URL)
		}
		if c.HQ.Token == "" && c.HQ.TokenFile == "" && c.HQ.CertFile == "" {
			bad("hq.token", "HQ needs the store's credential: token, token_file or cert_file/key_file")
		}
		if c.HQ.Token != "" && c.HQ.TokenFile != "" {
			bad("hq.token_file", "set hq.token or hq.token_file, not both")
		}
	}
	if (c.HQ.CertFile == "") != (c.HQ.KeyFile == "") {
		bad("hq.cert_file", "cert_file and key_file go together")
	}
	if c.HQ.BatchMax < 0 {
		bad("hq.batch_max", "must be positive")
	}
	host, _, err := net.SplitHostPort(c.API.Listen)
	if err != nil {
		bad("api.listen", "%q is not host:port (e.g. 127.0.0.1:8420)", c.API.Listen)
	} else if !c.API.AllowRemote && !IsLoopbackHost(host) {
		bad("api.listen", "%q is not a loopback address; set api.allow_remote: true to expose the API on the network", c.API.Listen)
	}
	if c.API.Token != "" && len(c.API.Token) < 16 {
		bad("api.token", "must be at least 16 characters")
	}
	if c.API.Token != "" && c.API.TokenFile != "" {
		bad("api.token_file", "set api.token or api.token_file, not both")
	}
	if c.API.MaxBodyBytes < 0 {
		bad("api.max_body_bytes", "must be positive")
	}
	if c.Cashiers.IdleTimeout < 0 || c.Cashiers.Lockout < 0 {
		bad("cashiers", "idle_timeout and lockout must not be negative (e.g. 15m)")
	}
	if c.Cashiers.MaxPINTries < 0 || c.Cashiers.MaxPINTries > 100 {
		bad("cashiers.max_pin_tries", "must be 1 to 100 (0 for the default %d)", DefaultMaxPINTries)
	}
	if c.Cashiers.Supervisor.TopUpOver < -1 {
		bad("cashiers.supervisor.topup_over", "fen above which a top-up needs a supervisor; 0 for the default %d, -1 for never", DefaultTopUpOver)
	}
	return errors.Join(errs...)
}

// lineOf is the line of key, or of the nearest enclosing key that was in
// the file (a missing setting is reported at its device's line).
func (c Config) lineOf(key string) int {
	for key != "" {
		if l, ok := c.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// IsLoopbackHost reports whether host (no port) is a loopback name or address.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// TokenKeyBytes returns the card token hash key: token_key, else the file
// token_key_file, else DataDir/token.key, generated (mode 0600) when absent.
func (c Config) TokenKeyBytes() ([]byte, error) {
	if c.TokenKey != "" {
		return hex.DecodeString(c.TokenKey)
	}
	path := c.TokenKeyFile
	generate := path == ""
	if generate {
		path = filepath.Join(c.DataDir, "token.key")
	}
	s, err := readOrCreateSecret(path, generate, 32)
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(s)
	if err != nil || len(k) < 16 {
		return nil, fmt.Errorf("config: %s must hold at least 32 hex digits", path)
	}
	return k, nil
}

// APIToken returns the API token: api.token, else api.token_file, else
// DataDir/api.token, generated (mode 0600) when absent.
func (c Config) APIToken() (string, error) {
	if c.API.Token != "" {
		return c.API.Token, nil
	}
	path := c.API.TokenFile
	generate := path == ""
	if generate {
		path = c.APITokenPath()
	}
	s, err := readOrCreateSecret(path, generate, 24)
	if err != nil {
		return "", err
	}
	if len(s) < 16 {
		return "", fmt.Errorf("config: the API token in %s must be at least 16 characters", path)
	}
	return s, nil
}

// APITokenPath is where a generated API token is kept.
func (c Config) APITokenPath() string {
	if c.API.TokenFile != "" {
		return c.API.TokenFile
	}
	return filepath.Join(c.DataDir, "api.token")
}

// HQToken returns the store's HQ credential (hq.token or hq.token_file).
func (c Config) HQToken() (string, error) {
	if c.HQ.Token != "" || c.HQ.TokenFile == "" {
		return c.HQ.Token, nil
	}
	b, err := os.ReadFile(c.HQ.TokenFile)
	if err != nil {
		return "", fmt.Errorf("config: hq.token_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readOrCreateSecret reads a one-line secret; when generate is set and the
// file is missing it writes n random bytes as hex with mode 0600, created
// exclusively so two starts cannot write different keys.
func readOrCreateSecret(path string, generate bool, n int) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !generate || !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("config: cannot create the data directory: %w", err)
	}
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	s := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readOrCreateSecret(path, false, n)
	}
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("config: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("config: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	// Without its directory entry made durable, a power cut could take the
	// file away and the next start would hand out a different secret.
	if err := durable.Name(path); err != nil {
		return "", fmt.Errorf("config: writing %s: %w", path, err)
	}
	return s, nil
}
