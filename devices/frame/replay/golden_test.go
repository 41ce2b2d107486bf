package replay_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"posagent/devices"
	"posagent/devices/decode"
	"posagent/devices/frame"
	"posagent/devices/frame/replay"
	"posagent/devices/token"
)

var update = flag.Bool("update", false, "rewrite testdata/reads/*.golden from the current output")

const readsDir = "../../../testdata/reads"

// goldenKey is the token hash key of the golden files (test only).
var goldenKey = []byte("golden-test-key")

// kv parses "a=1 b=2" metadata.
func kv(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not key=value", f)
		}
		m[k] = v
	}
	return m, nil
}

// framerConfig parses "@framer kind=… terminator=…"; "@framer default …"
// takes the framer a device with this decoder gets when its config names
// none (devices.DefaultFramer), with any tuning keys that follow.
func framerConfig(s, decoder string) (frame.Config, error) {
	rest, dflt := strings.CutPrefix(strings.TrimSpace(s), "default")
	if !dflt {
		rest = s
	}
	m, err := kv(rest)
	if err != nil {
		return frame.Config{}, err
	}
	c := frame.Config{Kind: m["kind"], Terminator: m["terminator"]}
	if v := m["gap"]; v != "" {
		if c.Gap, err = time.ParseDuration(v); err != nil {
			return c, err
		}
	}
	if v := m["length"]; v != "" {
		if c.Length, err = strconv.Atoi(v); err != nil {
			return c, err
		}
	}
	if v := m["max_frame"]; v != "" {
		if c.MaxFrame, err = strconv.Atoi(v); err != nil {
			return c, err
		}
	}
	if dflt {
		c = devices.DefaultFramer(decoder, false, c)
	}
	return c, nil
}

func rule(s string) (*token.Rule, error) {
	if s == "" {
		return nil, nil
	}
	m, err := kv(s)
	if err != nil {
		return nil, err
	}
	r := &token.Rule{Source: m["source"], Regex: m["regex"], UIDFormat: m["uid_format"], Prefix: m["prefix"], Luhn: m["luhn"] == "true"}
	if v := m["group"]; v != "" {
		if r.Group, err = strconv.Atoi(v); err != nil {
			return nil, err
		}
	}
	return r, r.Validate()
}

// run replays one recording through its framer, decoder and rule and
// renders the outcome (card data masked, tokens shown with their hash).
func run(path string) ([]byte, error) {
	rec, err := replay.LoadRecording(path)
	if err != nil {
		return nil, err
	}
	fc, err := framerConfig(rec.Meta["framer"], rec.Meta["decoder"])
	if err != nil {
		return nil, fmt.Errorf("@framer: %v", err)
	}
	f, err := frame.New(fc)
	if err != nil {
		return nil, err
	}
	dec, err := decode.ByName(rec.Meta["decoder"])
	if err != nil {
		return nil, err
	}
	rl, err := rule(rec.Meta["rule"])
	if err != nil {
		return nil, fmt.Errorf("@rule: %v", err)
	}
	var b bytes.Buffer
	for _, fr := range replay.Replay(f, rec.Chunks) {
		fmt.Fprintf(&b, "+%d ", fr.Offset.Microseconds())
		if fr.Err != nil {
			fmt.Fprintf(&b, "framing error: %v\n", fr.Err)
			continue
		}
		fmt.Fprintf(&b, "frame %d bytes\n", len(fr.Data))
		rd, err := dec(fr.Data)
		if err != nil {
			var de *decode.Error
			if !errors.As(err, &de) {
				return nil, fmt.Errorf("decoder returned a %T, want *decode.Error: %v", err, err)
			}
			fmt.Fprintf(&b, "  %s: %s", de.Code, de.Message)
			if len(rd.Tracks) > 0 {
				fmt.Fprintf(&b, " [%v]", rd)
			}
			b.WriteString("\n")
			continue
		}
		if pc, ok := decode.PayCodeOf(rd); ok {
			// As the device manager does: no card rule, no digits.
			fmt.Fprintf(&b, "  %v symbology=%q, not a member code\n", pc, rd.Symbology)
			continue
		}
		fmt.Fprintf(&b, "  read %v\n", rd)
		if rl == nil {
			continue
		}
		tok, err := rl.Token(rd)
		if err != nil {
			fmt.Fprintf(&b, "  rule: %v\n", err)
			continue
		}
		fmt.Fprintf(&b, "  token %s hash %s\n", tok, token.Hash(goldenKey, tok)[:16])
	}
	return b.Bytes(), nil
}

func TestGolden(t *testing.T) {
	recs, err := filepath.Glob(filepath.Join(readsDir, "*.rec"))
	if err != nil || len(recs) == 0 {
		t.Fatalf("no recordings in %s: %v", readsDir, err)
	}
	for _, path := range recs {
		name := strings.TrimSuffix(filepath.Base(path), ".rec")
		t.Run(name, func(t *testing.T) {
			got, err := run(path)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(path, ".rec") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./devices/frame/replay -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (check, then rerun with -update):\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	rec, err := replay.Parse(strings.NewReader("# c\n@framer kind=fixed length=2\n+0 0203 \"ab\\r\" ff\n\n+1500 41\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Meta["framer"] != "kind=fixed length=2" || len(rec.Chunks) != 2 {
		t.Fatalf("%+v", rec)
	}
	if c := rec.Chunks[0]; c.Offset != 0 || string(c.Data) != "\x02\x03ab\r\xff" {
		t.Fatalf("%+v", c)
	}
	if c := rec.Chunks[1]; c.Offset != 1500*time.Microsecond || string(c.Data) != "A" {
		t.Fatalf("%+v", c)
	}
	var out bytes.Buffer
	if err := replay.Format(&out, rec.Chunks); err != nil {
		t.Fatal(err)
	}
	back, err := replay.Parse(&out)
	if err != nil || len(back.Chunks) != 2 || string(back.Chunks[0].Data) != string(rec.Chunks[0].Data) || back.Chunks[1].Offset != rec.Chunks[1].Offset {
		t.Fatalf("round trip %+v %v", back, err)
	}
	for _, bad := range []string{"x", "+a 00", "+-1 00", "+10 00\n+5 00", "+1 zz", "+1 \"open", "+1"} {
		if _, err := replay.Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := replay.Load(filepath.Join(t.TempDir(), "missing.rec")); err == nil {
		t.Error("missing file accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("@framer kind=fixed\n+0 0203 \"ab\" ff\n+1500 41\n")
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := replay.Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		var last time.Duration
		for _, c := range rec.Chunks {
			if c.Offset < last || len(c.Data) == 0 {
				t.Fatalf("bad chunk %+v", c)
			}
			last = c.Offset
		}
	})
}
