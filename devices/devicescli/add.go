package devicescli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// addTarget is the config file list --add edits and how to check it.
type addTarget struct {
	file  func() string
	check func([]byte) error
}

type addFlags struct {
	row                      int
	name, decoder, hidReport string
}

// addToConfig appends the reader r, by its identity (VID:PID and serial,
// or the path of a fixed serial port), to the devices of the config file.
// The file is edited as a YAML node tree, so its comments stay; the result
// is checked before it replaces the file.
func addToConfig(out io.Writer, t *addTarget, r row, f addFlags) error {
	if t == nil || t.file == nil {
		return errors.New("--add needs the agent's config file")
	}
	path := t.file()
	if path == "" {
		return errors.New("--add: no config file; create one with `posagent config init --output FILE`, then pass --config FILE")
	}
	if f.decoder == "" {
		return errors.New("--add: name the reader's decoder with --decoder (msr, msr:lrc, em4100, parallax, pn532, barcode or uid:<format>)")
	}
	if r.configured != "" {
		return fmt.Errorf("--add %d: this device is already configured as %s", f.row, r.configured)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--add: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return fmt.Errorf("--add: %s: %w", path, err)
	}
	if doc.Kind == 0 { // empty file
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("--add: %s: the top level is not a mapping of keys", path)
	}
	var seq *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "devices" {
			seq = root.Content[i+1]
		}
	}
	if seq == nil {
		seq = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "devices"}, seq)
	} else if seq.Kind == yaml.ScalarNode && (seq.Tag == "!!null" || seq.Value == "") {
		*seq = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", HeadComment: seq.HeadComment, LineComment: seq.LineComment}
	} else if seq.Kind != yaml.SequenceNode {
		return fmt.Errorf("--add: %s: devices is not a list", path)
	}
	seq.Style = 0 // block style, even if it was written as []
	name := f.name
	if name == "" {
		name = fmt.Sprintf("reader%d", len(seq.Content)+1)
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	kv := func(k, v string) {
		m.Content = append(m.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
			// Quoted, so "0801" stays a string and not a number.
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle})
	}
	kv("name", name)
	kv("transport", r.transport)
	switch {
	case r.vid != "" && r.pid != "":
		kv("vid", r.vid)
		kv("pid", r.pid)
		if r.serial != "" {
			kv("serial", r.serial)
		}
		if r.transport == "evdev" {
			kv("path", r.path) // evdev opens a path; vid/pid pick it out for udev
		}
	case r.transport == "serial" && kernelName(r.path) != "":
		kv("path", r.path)
	default:
		return fmt.Errorf("--add %d: %s has no USB identity (VID:PID); add it by hand with a stable path", f.row, r.path)
	}
	if r.transport == "hid" {
		rep := f.hidReport
		if rep == "" && r.posScanner {
			rep = "pos"
		}
		if rep == "" {
			return errors.New("--add: a HID device needs --hid-report pos, msr or keyboard")
		}
		kv("hid_report", rep)
	}
	kv("decoder", f.decoder)
	seq.Content = append(seq.Content, m)

	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("--add: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("--add: %w", err)
	}
	if t.check != nil {
		if err := t.check(b.Bytes()); err != nil {
			return fmt.Errorf("--add: the config would not be valid, left unchanged: %w", err)
		}
	}
	if err := replaceFile(path, b.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(out, "added %s (%s %s) to %s; regenerate the udev rules: posagent devices udev --config %s\n",
		name, r.transport, strings.TrimSpace(r.vid+":"+r.pid+" "+r.serial), path, path)
	return nil
}

// replaceFile writes data over path through a rename, keeping its mode.
func replaceFile(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--add: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("--add: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(st.Mode().Perm())
	}
	if err == nil {
		err = keepOwner(tmp, st)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("--add: write %s: %w", path, err)
	}
	return nil
}
