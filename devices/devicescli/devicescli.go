// Package devicescli provides `devices list` and `devices monitor`, the
// installer's tools to find readers and watch live, masked reads.
package devicescli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"posagent/devices"
	"posagent/devices/evdev"
	"posagent/devices/hiddev"
	"posagent/devices/serialdev"
)

// Sources lists the attached hardware; tests substitute their own.
type sources struct {
	serial func() ([]serialdev.PortInfo, error)
	hid    func() (hiddev.Backend, error)
	input  func() ([]evdev.InputDevice, error)
}

var system = sources{serial: serialdev.List, hid: hiddev.System, input: evdev.List}

// NewCommand returns the `devices` command. loadDevices returns the
// configured devices and the token hash key (from the agent's config file);
// it may be nil when there is no config, and monitor then needs flags.
func NewCommand(loadDevices func() ([]devices.Config, []byte, error)) *cobra.Command {
	return newCommand(loadDevices, system, nil, nil)
}

// Config is what the `devices` commands need from the agent's config.
type Config struct {
	// Load returns the configured devices and the token hash key (list, monitor).
	Load func() ([]devices.Config, []byte, error)
	// Devices returns the configured devices only, creating no key (udev).
	Devices func() ([]devices.Config, error)
	// File returns the config file `list --add` edits ("" when none is named
	// and none exists).
	File func() string
	// Check validates a whole config file's bytes before list --add writes them.
	Check func([]byte) error
}

// New returns the `devices` command with udev and list --add.
func New(c Config) *cobra.Command {
	root := newCommand(c.Load, system, nil, &addTarget{file: c.File, check: c.Check})
	root.AddCommand(udevCommand(c.Devices))
	return root
}

func newCommand(load func() ([]devices.Config, []byte, error), src sources, opts []devices.Option, add *addTarget) *cobra.Command {
	root := &cobra.Command{
		Use:   "devices",
		Short: "Find card readers and scanners and watch their reads",
		Long: `Card readers (magnetic stripe, RFID/NFC) and barcode/QR scanners attach over
serial (RS-232 or USB virtual COM), USB HID or, on Linux, as keyboard wedges
through evdev. "list" shows what is attached (and --add puts one in the config);
"udev" prints the udev rules that let the service open the configured readers;
"monitor" shows live reads, decoded and masked, with timing.`,
		Example: `  posagent devices list
  posagent devices monitor --device msr1`,
	}
	root.AddCommand(listCommand(load, src, add), monitorCommand(load, opts))
	return root
}

func listCommand(load func() ([]devices.Config, []byte, error), src sources, add *addTarget) *cobra.Command {
	var f addFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List serial ports, HID devices and input devices with VID/PID/serial/product",
		Example: `  posagent devices list
  # then match a reader in the config by path, or by vid/pid (+ serial):
  #   devices: [{name: msr1, till: T1, vid: "0801", pid: "0002", serial: "B0A1", decoder: msr}]
  # or let list add row 2 to the config file (comments kept):
  posagent devices list --add 2 --decoder msr --name msr1 --config /etc/posagent/posagent.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := list(cmd.OutOrStdout(), cmd.ErrOrStderr(), load, src)
			if err != nil || f.row == 0 {
				return err
			}
			if f.row < 0 || f.row > len(rows) {
				return fmt.Errorf("--add %d: the list has rows 1 to %d", f.row, len(rows))
			}
			return addToConfig(cmd.OutOrStdout(), add, rows[f.row-1], f)
		},
	}
	cmd.Flags().IntVar(&f.row, "add", 0, "append the reader in this row (the # column) to the config file")
	cmd.Flags().StringVar(&f.name, "name", "", "with --add: the reader's name (default reader<N>)")
	cmd.Flags().StringVar(&f.decoder, "decoder", "", "with --add: msr, msr:lrc, em4100, parallax, pn532, barcode or uid:<format>")
	cmd.Flags().StringVar(&f.hidReport, "hid-report", "", "with --add of a HID device: pos, msr or keyboard (default pos for a POS scanner)")
	return cmd
}

// row is one attached device as list shows it.
type row struct {
	transport, path, vid, pid, serial, product, usage, configured string
	posScanner                                                    bool
}

func list(out, errw io.Writer, load func() ([]devices.Config, []byte, error), src sources) ([]row, error) {
	var cfgs []devices.Config
	if load != nil {
		if c, _, err := load(); err == nil {
			cfgs = c
		} else {
			fmt.Fprintf(errw, "note: configured devices not loaded (%v); CONFIGURED column left empty\n", err)
		}
	}
	configured := func(transport, path, vid, pid, serial string) string {
		var names []string
		for _, c := range cfgs {
			t := c.Transport
			if t == "" {
				t = devices.TransportSerial
			}
			if t != transport {
				continue
			}
			if c.Path != "" && c.Path == path ||
				c.Path == "" && hexEq(c.VID, vid) && hexEq(c.PID, pid) && (c.Serial == "" || c.Serial == serial) {
				names = append(names, c.Name)
			}
		}
		return strings.Join(names, ",")
	}
	var rows []row
	var problems []string
	ports, err := src.serial()
	if err != nil {
		problems = append(problems, "serial: "+err.Error())
	}
	for _, p := range ports {
		rows = append(rows, row{transport: "serial", path: p.Path, vid: p.VID, pid: p.PID, serial: p.Serial, product: join(p.Manufacturer, p.Product)})
	}
	if be, err := src.hid(); err != nil {
		problems = append(problems, "hid: "+err.Error())
	} else if hs, err := be.Enumerate(); err != nil {
		problems = append(problems, "hid: "+err.Error())
	} else {
		for _, h := range hs {
			rows = append(rows, row{transport: "hid", path: h.Path, vid: fmt.Sprintf("%04x", h.VID), pid: fmt.Sprintf("%04x", h.PID),
				serial: h.Serial, product: join(h.Manufacturer, h.Product), usage: usage(h), posScanner: h.UsagePage == hiddev.UsagePagePOS})
		}
	}
	if ins, err := src.input(); err != nil {
		if !errors.Is(err, evdev.ErrNotSupported) {
			problems = append(problems, "evdev: "+err.Error())
		}
	} else {
		for _, d := range ins {
			if !d.Keyboard || d.Bus != "0003" {
				continue // wedge readers are USB keyboards
			}
			rows = append(rows, row{transport: "evdev", path: d.Path, vid: d.VID, pid: d.PID, serial: d.Serial, product: d.Name, usage: "keyboard"})
		}
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tTRANSPORT\tPATH\tVID\tPID\tSERIAL\tPRODUCT\tUSAGE\tCONFIGURED")
	for i := range rows {
		r := &rows[i]
		r.configured = configured(r.transport, r.path, r.vid, r.pid, r.serial)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, r.transport, r.path, dash(r.vid), dash(r.pid), dash(r.serial), dash(r.product), r.usage, r.configured)
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	for _, p := range problems {
		fmt.Fprintln(errw, "note:", p)
	}
	return rows, nil
}

func hexEq(a, b string) bool {
	a = strings.TrimPrefix(strings.ToLower(a), "0x")
	b = strings.ToLower(b)
	return a != "" && strings.TrimLeft(a, "0") == strings.TrimLeft(b, "0")
}

func usage(h hiddev.DeviceInfo) string {
	switch {
	case h.UsagePage == hiddev.UsagePagePOS:
		return fmt.Sprintf("0x%02X:0x%02X (POS scanner)", h.UsagePage, h.Usage)
	case h.UsagePage == 0x01 && h.Usage == 0x06:
		return "0x01:0x06 (keyboard)"
	case h.UsagePage != 0:
		return fmt.Sprintf("0x%02X:0x%02X", h.UsagePage, h.Usage)
	case runtime.GOOS == "linux":
		return fmt.Sprintf("if %d", h.Interface) // libusb backend reports no usage page
	}
	return "-"
}

func join(a, b string) string { return strings.TrimSpace(a + " " + b) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type monitorFlags struct {
	device, name, till string
	count              int
	duration           time.Duration
	cfg                devices.Config
	verbose            bool
}

func monitorCommand(load func() ([]devices.Config, []byte, error), opts []devices.Option) *cobra.Command {
	var f monitorFlags
	c := &cobra.Command{
		Use:   "monitor",
		Short: "Show live decoded reads (masked) with timing",
		Long: `Opens the configured devices (or one device described by flags) and prints
every read as it happens: the masked token, symbology or track status, the
keyed token hash (first 12 hex digits), how long the read took on the wire
and how long decoding and delivery took. Card numbers are always masked.

Stop the agent first: a reader can only be claimed by one process.`,
		Example: `  # every device in the agent's config
  posagent devices monitor

  # one configured device
  posagent devices monitor --device msr1

  # an ad-hoc RDM6300 RFID reader on a USB serial adapter
  posagent devices monitor --path /dev/ttyUSB0 --decoder em4100 --baud 9600

  # a keyboard-wedge scanner on Linux, German layout, stop after 3 reads
  posagent devices monitor --transport evdev --vid 0c2e --pid 0b61 --decoder barcode --layout de --count 3

  # a HID POS scanner
  posagent devices monitor --transport hid --vid 0c2e --pid 0b61 --hid-report pos`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			adhoc := cmd.Flags().Changed("path") || cmd.Flags().Changed("vid")
			return monitor(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), load, f, adhoc, opts)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.device, "device", "", "only this configured device (by name)")
	fl.IntVar(&f.count, "count", 0, "exit after this many reads (0: until interrupted)")
	fl.DurationVar(&f.duration, "for", 0, "exit after this long (0: until interrupted)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log device life-cycle details to stderr")
	d := &f.cfg
	fl.StringVar(&d.Name, "name", "monitor", "name of the ad-hoc device")
	fl.StringVar(&d.Till, "till", "", "till of the ad-hoc device")
	fl.StringVar(&d.Transport, "transport", "serial", "ad-hoc device transport: serial, hid or evdev")
	fl.StringVar(&d.Path, "path", "", "ad-hoc device path (/dev/ttyUSB0, COM3, /dev/input/by-id/…)")
	fl.StringVar(&d.VID, "vid", "", "ad-hoc device USB vendor id (hex)")
	fl.StringVar(&d.PID, "pid", "", "ad-hoc device USB product id (hex)")
	fl.StringVar(&d.Serial, "serial", "", "ad-hoc device USB serial number")
	fl.IntVar(&d.Baud, "baud", 9600, "serial baud rate")
	fl.IntVar(&d.DataBits, "data-bits", 8, "serial data bits (5-8)")
	fl.StringVar(&d.Parity, "parity", "none", "serial parity: none, odd, even, mark, space")
	fl.StringVar(&d.StopBits, "stop-bits", "1", "serial stop bits: 1, 1.5, 2")
	fl.StringVar(&d.FlowControl, "flow-control", "none", "serial flow control: none, rtscts (Linux)")
	fl.StringVar(&d.Framer.Kind, "framer", "", "framing: terminator, stx_etx, idle_gap, fixed, pn532 (default: the decoder's usual)")
	fl.StringVar(&d.Framer.Terminator, "terminator", "CR", "terminator for --framer terminator: CR, LF, CRLF, LFCR, TAB, ANY (CR, LF or TAB)")
	fl.DurationVar(&d.Framer.Gap, "gap", 0, "idle gap that ends a read for --framer idle_gap (e.g. 50ms)")
	fl.IntVar(&d.Framer.Length, "length", 0, "frame length for --framer fixed")
	fl.StringVar(&d.Decoder, "decoder", "", "msr, msr:lrc, em4100, parallax, pn532, barcode, uid:<hex|hex_rev|8h10d|8h10d_rev|10h13d|6h8d|w26>")
	fl.StringVar(&d.Rule.Source, "rule", "", "token rule: track2_pan, barcode_regex, uid (default: the decoder's usual)")
	fl.StringVar(&d.Rule.Regex, "regex", "", "regex for --rule barcode_regex")
	fl.IntVar(&d.Rule.Group, "group", 0, "regex group holding the token")
	fl.StringVar(&d.Rule.UIDFormat, "uid-format", "", "UID format for --rule uid")
	fl.StringVar(&d.Rule.Prefix, "prefix", "", "accepted token prefixes, comma-separated")
	fl.BoolVar(&d.Rule.Luhn, "luhn", false, "require a valid Luhn check digit")
	fl.StringVar(&d.Layout, "layout", "us", "keyboard layout of a wedge reader: us, de")
	fl.StringVar(&d.HIDReport, "hid-report", "", "HID report format: pos, msr, keyboard")
	fl.DurationVar(&d.Debounce, "debounce", 0, "drop the same token repeated within this window")
	return c
}

func monitor(ctx context.Context, out, errw io.Writer, load func() ([]devices.Config, []byte, error), f monitorFlags, adhoc bool, opts []devices.Option) error {
	var cfgs []devices.Config
	var key []byte
	var loadErr error
	if load != nil {
		cfgs, key, loadErr = load()
	}
	if adhoc {
		cfgs = []devices.Config{f.cfg}
	} else {
		if load == nil {
			return errors.New("no device configuration: describe a device with --path or --vid/--pid and --decoder")
		}
		if loadErr != nil {
			return fmt.Errorf("loading device configuration: %w (or describe a device with --path/--vid and --decoder)", loadErr)
		}
		if f.device != "" {
			var sel []devices.Config
			for _, c := range cfgs {
				if c.Name == f.device {
					sel = append(sel, c)
				}
			}
			if len(sel) == 0 {
				return fmt.Errorf("no configured device named %q (see the config file's devices section)", f.device)
			}
			cfgs = sel
		}
		if len(cfgs) == 0 {
			return errors.New("no devices configured: add some to the config, or describe one with --path/--vid and --decoder")
		}
	}
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key)
		fmt.Fprintln(errw, "note: no token key configured; hashes below use a random key and will not match the agent's")
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: level}))
	m, err := devices.NewManager(cfgs, key, log, opts...)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f.duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	start := time.Now()
	reads := 0
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	for e := range m.Events() {
		line := render(e, start)
		fmt.Fprintln(tw, line)
		tw.Flush()
		if e.Kind == devices.KindData {
			reads++
			if f.count > 0 && reads >= f.count {
				cancel()
			}
		}
	}
	return <-done
}

// render is one event as a tab-separated line; never shows card data.
func render(e devices.Event, start time.Time) string {
	head := fmt.Sprintf("%s\t+%.3fs\t%s\t%s", e.At.Format("15:04:05.000"), e.At.Sub(start).Seconds(), e.Device, dash(e.Till))
	switch {
	case e.Data != nil:
		d := e.Data
		what := d.Kind
		if d.Symbology != "" {
			what += " " + d.Symbology
		}
		if len(d.Tracks) > 0 {
			var ts []string
			for _, t := range d.Tracks {
				ts = append(ts, fmt.Sprintf("%d:%s", t.N, t.Status))
			}
			what += " [" + strings.Join(ts, " ") + "]"
		}
		return fmt.Sprintf("%s\tREAD\t%s\t%s\thash=%s…\t%dB in %s\tdelivered +%s", head, what, d.Masked, d.TokenHash[:12], d.RawLen, d.Duration.Round(time.Microsecond), time.Since(e.At).Round(time.Microsecond))
	case e.Error != nil:
		return fmt.Sprintf("%s\tERROR\t%s\t%s\t→ %s", head, e.Error.Code, e.Error.Message, dash(e.Error.Hint))
	case e.Payment != nil:
		// A payment code is a bearer credential: its scheme only.
		return fmt.Sprintf("%s\tPAYMENT\t%s\t(code not shown)", head, e.Payment.Scheme)
	case e.Status != nil:
		st := "OFFLINE"
		if e.Status.Online {
			st = "ONLINE"
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s", head, st, e.Status.State, e.Status.Detail)
	}
	return head
}
