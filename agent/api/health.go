package api

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Check is one readiness check.
type Check struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Readiness is the /readyz body.
type Readiness struct {
	Ready   bool           `json:"ready"`
	Ledger  Check          `json:"ledger"`
	Disk    Check          `json:"disk"`
	FreeMB  uint64         `json:"free_mb"`
	Devices []DeviceStatus `json:"devices"`
	// DevicesOnline is informative: a reader that is unplugged does not make
	// the agent unready, because cards can still be typed on the page.
	DevicesOnline bool        `json:"devices_online"`
	Sync          *SyncStatus `json:"sync,omitempty"`
}

// readyz really writes: an fsync'd probe file beside the ledger proves the
// disk takes writes, the ledger answers a read, and free space is above the
// threshold. 503 when any of those fails.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := Readiness{Ready: true, DevicesOnline: true}
	if err := s.probeWrite(); err != nil {
		rd.Ledger = Check{Error: "the data directory does not take writes: " + err.Error()}
	} else if _, _, err := s.o.Ledger.Backlog(); err != nil {
		rd.Ledger = Check{Error: "the ledger does not answer: " + err.Error()}
	} else {
		rd.Ledger = Check{OK: true}
	}
	if free, err := freeBytes(s.o.DataDir); err != nil {
		rd.Disk = Check{Error: "cannot read free space: " + err.Error()}
	} else {
		rd.FreeMB = free >> 20
		rd.Disk = Check{OK: free >= s.o.MinFreeBytes,
			Detail: strconv.FormatUint(free>>20, 10) + " MB free, need " + strconv.FormatUint(s.o.MinFreeBytes>>20, 10) + " MB"}
		if !rd.Disk.OK {
			rd.Disk.Error = "disk almost full: free space on the till before sales fail"
		}
	}
	if s.o.Devices != nil {
		rd.Devices = s.o.Devices()
	}
	if rd.Devices == nil {
		rd.Devices = []DeviceStatus{}
	}
	for _, d := range rd.Devices {
		rd.DevicesOnline = rd.DevicesOnline && d.Online
	}
	if s.o.Sync != nil {
		st := s.o.Sync()
		rd.Sync = &st
	}
	rd.Ready = rd.Ledger.OK && rd.Disk.OK
	code := http.StatusOK
	if !rd.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rd)
}

func (s *Server) probeWrite() error {
	p := filepath.Join(s.o.DataDir, ".readyz-probe")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
	serr := f.Sync()
	cerr := f.Close()
	for _, e := range []error{werr, serr, cerr} {
		if e != nil {
			return e
		}
	}
	return nil
}

// Status is the /v1/status body.
type Status struct {
	Store   string         `json:"store"`
	Till    string         `json:"till"`
	Tills   []string       `json:"tills"`
	Time    time.Time      `json:"time"`
	Devices []DeviceStatus `json:"devices"`
	Sync    SyncStatus     `json:"sync"`
	Program int            `json:"program_version"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := Status{Store: s.o.Store, Till: s.o.Till, Tills: s.tillList(), Time: s.o.Now().In(s.o.Location), Devices: []DeviceStatus{}}
	if s.o.Devices != nil {
		if d := s.o.Devices(); d != nil {
			st.Devices = d
		}
	}
	if s.o.Sync != nil {
		st.Sync = s.o.Sync()
	} else if n, oldest, err := s.o.Ledger.Backlog(); err == nil {
		st.Sync = SyncStatus{Backlog: n, OldestPending: oldest}
	}
	if p, err := s.o.Ledger.Programs().At(s.o.Now()); err == nil {
		st.Program = p.Version
	}
	writeJSON(w, http.StatusOK, st)
}
