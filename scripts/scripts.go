// Package scripts embeds the files an installation puts in place (the systemd
// unit, the sysusers entry and the udev rules for card readers), so a single
// binary can install itself with `posagent service install`.
package scripts

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed systemd udev
var files embed.FS

// UnitName is the systemd unit's file name.
const UnitName = "posagent.service"

// SystemdUnit returns scripts/systemd/posagent.service.
func SystemdUnit() []byte { return mustRead("systemd/" + UnitName) }

// Sysusers returns the systemd-sysusers entry that creates the service account.
func Sysusers() []byte { return mustRead("systemd/posagent.sysusers") }

// UdevRules returns every scripts/udev/*.rules file by base name, sorted by name.
func UdevRules() []File { return glob("udev", ".rules") }

// File is one embedded file.
type File struct {
	Name string
	Data []byte
}

func glob(dir, suffix string) []File {
	ents, err := fs.ReadDir(files, dir)
	if err != nil {
		return nil // the directory is not embedded in this build
	}
	var out []File
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		out = append(out, File{Name: e.Name(), Data: mustRead(path.Join(dir, e.Name()))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// mustRead reads an embedded file; the names are fixed at build time, so a
// failure is a packaging bug caught by the package tests, not bad input.
func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("scripts: embedded file missing: " + name)
	}
	return b
}
