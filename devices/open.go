package devices

import (
	"errors"
	"strings"
	"time"

	"posagent/devices/evdev"
	"posagent/devices/hiddev"
	"posagent/devices/hiddev/hidreport"
	"posagent/devices/serialdev"
	"posagent/devices/token"
)

func tokenHash(key []byte, tok string) string { return token.Hash(key, tok) }

// open resolves the device (path or VID:PID[+serial]), opens and claims it.
func (d *device) open() (source, string, error) {
	c := d.cfg
	switch c.Transport {
	case TransportSerial:
		path := c.Path
		if path == "" {
			ports, err := d.m.opts.enumSerial()
			if err != nil {
				return nil, "", err
			}
			p, err := serialdev.Match(ports, c.VID, c.PID, c.Serial)
			if err != nil {
				return nil, "", err
			}
			path = p.Path
		}
		p, err := serialdev.Open(c.serialConfig(path))
		if err != nil {
			return nil, "", err
		}
		if name, _, _ := strings.Cut(strings.ToLower(c.Decoder), ":"); name == "pn532" {
			// A PN532 answers only when driven: the source sends the commands.
			s, err := newPN532Source(p, path, c.Framer, d.m.opts.pn532, d.m.log.With("device", c.Name, "till", c.Till))
			if err != nil {
				p.Close()
				return nil, "", err
			}
			return s, path, nil
		}
		return &streamSource{r: p, c: p, buf: make([]byte, 512)}, path, nil
	case TransportEvdev:
		if err := evdev.Supported(); err != nil {
			return nil, "", err
		}
		path := c.Path
		if path == "" {
			devs, err := evdev.List()
			if err != nil {
				return nil, "", err
			}
			in, err := evdev.Match(devs, c.VID, c.PID, c.Serial)
			if err != nil {
				return nil, "", err
			}
			path = in.Path
		}
		l, err := hidreport.LayoutByName(c.Layout)
		if err != nil {
			return nil, "", err
		}
		dev, err := evdev.Open(path)
		if err != nil {
			return nil, "", err
		}
		return &streamSource{r: evdev.NewTextReader(dev, l), c: dev, buf: make([]byte, 256)}, path, nil
	case TransportHID:
		if d.m.opts.hidErr != nil {
			return nil, "", d.m.opts.hidErr
		}
		devs, err := d.m.opts.hid.Enumerate()
		if err != nil {
			return nil, "", err
		}
		var vid, pid uint16
		if c.Path == "" {
			vid, pid = hexID(c.VID), hexID(c.PID)
		}
		info, err := hiddev.Match(devs, c.Path, vid, pid, c.Serial)
		if err != nil {
			return nil, "", err
		}
		var l *hidreport.Layout
		if c.HIDReport == hiddev.ModeKeyboard {
			if l, err = hidreport.LayoutByName(c.Layout); err != nil {
				return nil, "", err
			}
		}
		rs, err := d.m.opts.hid.Open(info)
		if err != nil {
			return nil, "", err
		}
		r, err := hiddev.NewReader(rs, c.HIDReport, l)
		if err != nil {
			rs.Close()
			return nil, "", err
		}
		return &hidSource{r: r}, info.Path, nil
	}
	return nil, "", errors.New("unknown transport " + c.Transport)
}

type closer interface{ Close() error }

// streamSource reads chunks from a byte stream: a serial port, or the text
// an evdev keyboard types.
type streamSource struct {
	r   interface{ Read([]byte) (int, error) }
	c   closer
	buf []byte
}

func (s *streamSource) next() (chunk, error) {
	for {
		n, err := s.r.Read(s.buf)
		if n > 0 {
			// A chunk with data is delivered even if err is set; the
			// error comes back on the next call.
			return chunk{data: append([]byte(nil), s.buf[:n]...), at: time.Now()}, nil
		}
		if err != nil {
			return chunk{}, err
		}
	}
}

func (s *streamSource) Close() error { return s.c.Close() }

type hidSource struct{ r *hiddev.Reader }

func (h *hidSource) next() (chunk, error) {
	c, err := h.r.Next()
	if err != nil {
		var re *hiddev.ReportError
		if errors.As(err, &re) {
			return chunk{}, reportError{re}
		}
		return chunk{}, err
	}
	return chunk{data: c.Data, at: c.At, framed: c.Framed, symbology: c.Symbology}, nil
}

func (h *hidSource) Close() error { return h.r.Close() }
