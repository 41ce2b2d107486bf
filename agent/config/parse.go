package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse decodes a config file, rejects unknown keys, fills defaults and
// validates. Errors name the key and the line.
func Parse(src []byte) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return Config{}, fmt.Errorf("not valid YAML: %w", err)
	}
	var c Config
	c.lines = map[string]int{}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return Config{}, &Error{Key: "(top)", Line: root.Line, Msg: "the config must be a mapping of keys such as store, till, devices"}
		}
		var errs []error
		walk(root, reflect.TypeOf(c), "", c.lines, &errs)
		if len(errs) > 0 {
			return Config{}, errors.Join(errs...)
		}
		if err := root.Decode(&c); err != nil {
			return Config{}, typeError(err, c.lines)
		}
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// walk records the line of every key and reports keys the struct lacks,
// with the keys that are allowed there.
func walk(n *yaml.Node, t reflect.Type, path string, lines map[string]int, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			*errs = append(*errs, &Error{Key: orTop(path), Line: n.Line, Msg: "expected a mapping of keys"})
			return
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			fields[name] = f
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if path != "" {
				key = path + "." + k.Value
			}
			f, ok := fields[k.Value]
			if !ok {
				names := make([]string, 0, len(fields))
				for name := range fields {
					names = append(names, name)
				}
				sort.Strings(names)
				*errs = append(*errs, &Error{Key: key, Line: k.Line,
					Msg: "unknown key; the keys allowed here are " + strings.Join(names, ", ")})
				continue
			}
			lines[key] = k.Line
			walk(v, f.Type, key, lines, errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			*errs = append(*errs, &Error{Key: orTop(path), Line: n.Line, Msg: "expected a list"})
			return
		}
		for i, item := range n.Content {
			key := fmt.Sprintf("%s[%d]", path, i)
			lines[key] = item.Line
			walk(item, t.Elem(), key, lines, errs)
		}
	}
}

func orTop(p string) string {
	if p == "" {
		return "(top)"
	}
	return p
}

// typeError rewrites yaml.v3's "line N: cannot unmarshal ..." into errors
// that name the key found on that line.
func typeError(err error, lines map[string]int) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	byLine := map[int]string{}
	for k, l := range lines {
		if cur, ok := byLine[l]; !ok || len(k) > len(cur) {
			byLine[l] = k
		}
	}
	var out []error
	for _, msg := range te.Errors {
		var line int
		if _, e := fmt.Sscanf(msg, "line %d:", &line); e == nil {
			key := byLine[line]
			if key == "" {
				key = "(unknown key)"
			}
			_, rest, _ := strings.Cut(msg, ": ")
			rest = strings.Replace(rest, "cannot unmarshal", "wrong type: cannot read", 1)
			out = append(out, &Error{Key: key, Line: line, Msg: rest})
			continue
		}
		out = append(out, errors.New(msg))
	}
	return errors.Join(out...)
}

const redacted = "<redacted>"

// Show writes the effective configuration as YAML with every secret
// replaced by <redacted>, so it can be pasted into a support ticket.
func (c Config) Show(w io.Writer) error {
	r := c
	if r.TokenKey != "" {
		r.TokenKey = redacted
	}
	if r.HQ.Token != "" {
		r.HQ.Token = redacted
	}
	if r.API.Token != "" {
		r.API.Token = redacted
	}
	r.Devices = append([]Device(nil), c.Devices...)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(r); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// String is Show into a string.
func (c Config) String() string {
	var b strings.Builder
	if err := c.Show(&b); err != nil {
		return "config: " + err.Error()
	}
	return b.String()
}
