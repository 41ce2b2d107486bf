package scripts

import (
	"strings"
	"testing"
)

func TestUnitHasTheSettingsTheServiceRelies(t *testing.T) {
	unit := string(SystemdUnit())
	for _, want := range []string{
		"Type=notify", "Restart=on-failure", "User=posagent", "SupplementaryGroups=dialout",
		"ProtectSystem=strict", "ReadWritePaths=-/var/lib/posagent", "ProtectHome=yes",
		"NoNewPrivileges=yes", "PrivateTmp=yes", "DevicePolicy=closed",
		"DeviceAllow=char-ttyS rw", "DeviceAllow=char-ttyUSB rw", "DeviceAllow=char-ttyACM rw",
		"DeviceAllow=char-hidraw rw", "DeviceAllow=char-input rw",
		"ExecStart=/usr/local/bin/posagent run",
	} {
		if !strings.Contains(unit, want+"\n") && !strings.Contains(unit, want+" ") {
			t.Errorf("unit lacks %q", want)
		}
	}
	if !strings.Contains(string(Sysusers()), "u posagent ") {
		t.Errorf("sysusers entry does not create the posagent user:\n%s", Sysusers())
	}
}

func TestUdevRulesAreRules(t *testing.T) {
	rules := UdevRules()
	if len(rules) == 0 {
		t.Fatal("no udev rules embedded")
	}
	for _, f := range rules {
		if !strings.Contains(string(f.Data), `GROUP="posagent"`) {
			t.Errorf("%s does not give readers to the posagent group the service runs as", f.Name)
		}
		if !strings.HasSuffix(f.Name, ".rules") || len(f.Data) == 0 {
			t.Errorf("bad udev file %q (%d bytes)", f.Name, len(f.Data))
		}
	}
}
