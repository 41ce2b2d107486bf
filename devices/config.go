// Package devices reads member cards and codes from magnetic-stripe
// readers, RFID/NFC readers and barcode/QR scanners over serial, USB HID
// and Linux evdev, and turns each read into a hashed member token.
//
// The life cycle follows the UnifiedPOS MSR/Scanner device classes: a
// device is opened, claimed (exclusive access: TIOCEXCL, EVIOCGRAB, HID
// open), enabled (reads flow as events) and released (on unplug or
// shutdown). Reads become Events on Manager.Events.
package devices

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"posagent/devices/decode"
	"posagent/devices/evdev"
	"posagent/devices/frame"
	"posagent/devices/hiddev"
	"posagent/devices/hiddev/hidreport"
	"posagent/devices/serialdev"
	"posagent/devices/token"
)

// Transports.
const (
	TransportSerial = "serial"
	TransportHID    = "hid"
	TransportEvdev  = "evdev"
)

// Config is one reader. A device is found by Path, or by VID:PID (plus
// Serial when several identical readers are attached).
type Config struct {
	Name      string `yaml:"name" json:"name"`
	Till      string `yaml:"till" json:"till"`           // the till whose reads these are
	Transport string `yaml:"transport" json:"transport"` // serial | hid | evdev
	Path      string `yaml:"path" json:"path"`           // /dev/ttyUSB0, COM3, /dev/input/by-id/…, HID path
	VID       string `yaml:"vid" json:"vid"`             // USB vendor id, hex ("0801")
	PID       string `yaml:"pid" json:"pid"`             // USB product id, hex
	Serial    string `yaml:"serial" json:"serial"`       // USB serial number

	// Serial line settings (transport serial).
	Baud        int    `yaml:"baud" json:"baud"`                 // default 9600
	DataBits    int    `yaml:"data_bits" json:"data_bits"`       // default 8
	Parity      string `yaml:"parity" json:"parity"`             // none|odd|even|mark|space
	StopBits    string `yaml:"stop_bits" json:"stop_bits"`       // 1|1.5|2
	FlowControl string `yaml:"flow_control" json:"flow_control"` // none|rtscts (rtscts: Linux only)

	// Framer cuts the byte stream into reads; zero value picks the
	// decoder's usual framing (see DefaultFramer).
	Framer frame.Config `yaml:"framer" json:"framer"`
	// Decoder: msr, msr:lrc, em4100, parallax, pn532, barcode, uid:<format>.
	// Empty: msr for hid_report msr, barcode for hid_report pos.
	Decoder string `yaml:"decoder" json:"decoder"`
	// Rule turns a read into the member token; zero value picks the
	// decoder's usual rule (see DefaultRule).
	Rule token.Rule `yaml:"rule" json:"rule"`
	// Layout of keyboard-wedge readers (evdev, hid_report keyboard): us, de.
	Layout string `yaml:"layout" json:"layout"`
	// HIDReport is the report format of a HID device: pos, msr, keyboard.
	HIDReport string `yaml:"hid_report" json:"hid_report"`
	// Debounce drops the same token from this device while it repeats
	// within this window (RFID readers resend while a card lies on them).
	Debounce time.Duration `yaml:"debounce" json:"debounce"`
	// PaymentCodes is what becomes of a customer's payment code (WeChat
	// Pay, Alipay, UnionPay) read by this scanner: "pos" (default) hands it
	// to the POS of the till, "drop" discards it. Either way it is never
	// taken for a member code.
	PaymentCodes string `yaml:"payment_codes" json:"payment_codes"`
}

// What becomes of payment codes (Config.PaymentCodes).
const (
	PaymentCodesPOS  = "pos"
	PaymentCodesDrop = "drop"
)

// normalize fills defaults and validates; it returns a copy.
func (c Config) normalize() (Config, error) {
	c.Transport = strings.ToLower(strings.TrimSpace(c.Transport))
	if c.Transport == "" {
		c.Transport = TransportSerial
	}
	var err error
	if c.VID, err = normID("vid", c.VID); err != nil {
		return c, err
	}
	if c.PID, err = normID("pid", c.PID); err != nil {
		return c, err
	}
	if c.Path == "" && (c.VID == "" || c.PID == "") {
		return c, errors.New("set path, or vid and pid (plus serial when several identical readers are attached)")
	}
	if c.Name == "" {
		c.Name = c.Transport + ":" + c.Path
		if c.Path == "" {
			c.Name = c.Transport + ":" + c.VID + ":" + c.PID
			if c.Serial != "" {
				c.Name += ":" + c.Serial
			}
		}
	}
	if c.Debounce < 0 {
		return c, fmt.Errorf("debounce %v is negative", c.Debounce)
	}
	switch c.PaymentCodes = strings.ToLower(strings.TrimSpace(c.PaymentCodes)); c.PaymentCodes {
	case "":
		c.PaymentCodes = PaymentCodesPOS
	case PaymentCodesPOS, PaymentCodesDrop:
	default:
		return c, fmt.Errorf("payment_codes %q unknown; use pos (hand them to the POS) or drop", c.PaymentCodes)
	}
	keyboard := false
	switch c.Transport {
	case TransportSerial:
		if _, err := c.serialConfig("").Mode(); err != nil {
			return c, err
		}
	case TransportHID:
		c.HIDReport = strings.ToLower(c.HIDReport)
		if c.HIDReport == "" {
			return c, errors.New("hid devices need hid_report: pos (HID POS scanner), msr (MagTek-style card reader) or keyboard (wedge reader)")
		}
		if !hiddev.ValidMode(c.HIDReport) {
			return c, fmt.Errorf("hid_report %q unknown: use pos, msr or keyboard", c.HIDReport)
		}
		if c.Decoder == "" {
			switch c.HIDReport {
			case hiddev.ModePOS:
				c.Decoder = "barcode"
			case hiddev.ModeMSR:
				c.Decoder = "msr"
			}
		}
		keyboard = c.HIDReport == hiddev.ModeKeyboard
	case TransportEvdev:
		keyboard = true
	default:
		return c, fmt.Errorf("transport %q unknown: use serial, hid or evdev", c.Transport)
	}
	if c.Decoder == "" {
		return c, errors.New("set decoder: msr, msr:lrc, em4100, parallax, pn532, barcode or uid:<format>")
	}
	if _, err := decode.ByName(c.Decoder); err != nil {
		return c, err
	}
	if keyboard || c.Layout != "" {
		if _, err := hidreport.LayoutByName(c.Layout); err != nil {
			return c, err
		}
	}
	if c.Framer.Kind == "" {
		c.Framer = DefaultFramer(c.Decoder, keyboard, c.Framer)
	}
	if _, err := frame.New(c.Framer); err != nil {
		return c, err
	}
	if c.Rule.Source == "" {
		c.Rule = DefaultRule(c.Decoder, c.Rule)
	}
	if err := c.Rule.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// DefaultFramer is the framing a decoder's readers usually use: STX/ETX
// for EM4100 (RDM6300) modules, PN532 frames for PN532, otherwise a
// terminator. Card swipes and Parallax readers (LF, 10 hex digits, CR) end
// at CR or LF; scanners and keyboard wedges ship with a CR, LF, CR LF or
// TAB suffix (Enter or Tab), so barcode and UID reads also end at TAB. A
// swipe keeps TAB out of its terminators: it is no suffix of a card reader
// and must not cut a swipe in two. Tuning fields already set in base (Gap,
// MaxFrame) are kept.
func DefaultFramer(decoder string, keyboard bool, base frame.Config) frame.Config {
	name, _, _ := strings.Cut(strings.ToLower(decoder), ":")
	switch {
	case name == "msr" || name == "parallax":
		base.Kind, base.Terminator = "terminator", "CR"
	case keyboard:
		base.Kind, base.Terminator = "terminator", "ANY"
	case name == "em4100" || name == "rdm6300":
		base.Kind = "stx_etx"
	case name == "pn532":
		base.Kind = "pn532"
	default:
		base.Kind, base.Terminator = "terminator", "ANY"
	}
	return base
}

// DefaultRule is the token rule a decoder usually needs: the track-2 PAN
// for swipes, the whole text for barcodes, the UID (in the wedge's own
// format for uid:<format>, hex otherwise) for RFID.
func DefaultRule(decoder string, base token.Rule) token.Rule {
	name, arg, _ := strings.Cut(strings.ToLower(decoder), ":")
	switch name {
	case "msr":
		base.Source = token.SourceTrack2PAN
	case "barcode":
		base.Source = token.SourceBarcodeRegex
	default:
		base.Source = token.SourceUID
		if base.UIDFormat == "" && name == "uid" {
			base.UIDFormat = arg
		}
	}
	return base
}

func normID(field, s string) (string, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "0x")
	if s == "" {
		return "", nil
	}
	v, err := strconv.ParseUint(s, 16, 16)
	if err != nil {
		return "", fmt.Errorf("%s %q is not a 16-bit hex USB id (e.g. 0801)", field, s)
	}
	return fmt.Sprintf("%04x", v), nil
}

func hexID(s string) uint16 {
	v, _ := strconv.ParseUint(s, 16, 16) // validated in normalize
	return uint16(v)
}

func (c Config) serialConfig(path string) serialdev.Config {
	return serialdev.Config{Path: path, Baud: c.Baud, DataBits: c.DataBits, Parity: c.Parity, StopBits: c.StopBits, FlowControl: c.FlowControl}
}

// permanent reports errors retrying cannot fix.
func permanent(err error) bool {
	return errors.Is(err, hiddev.ErrNotCompiled) || errors.Is(err, evdev.ErrNotSupported)
}
