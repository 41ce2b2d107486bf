package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

const (
	wxsFile = "scripts/packaging/posagent.wxs"
	// upgradeCode is the Product UpgradeCode in the .wxs: every posagent
	// MSI replaces any earlier one.
	upgradeCode = "{6C2E4B1A-6F0D-4C7E-9B8A-2F51D3A7C9E4}"
)

// msi builds posagent-VERSION-windows-amd64.msi with wixl, then sets with
// msibuild what wixl cannot express: the data directory's component is
// Permanent and NeverOverwrite (uninstall keeps the ledger and the config,
// an upgrade keeps the edited config), and a build of the same version
// replaces an installed one (dev builds are all 0.0.0).
func msi(ctx context.Context, root, out string, b built, st stamp) (string, error) {
	stage := filepath.Join(b.dir, "msi")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return "", err
	}
	// wixl takes sources relative to its working directory only.
	for dst, src := range map[string]string{
		"posagent.exe":  b.bin,
		"posagent.yaml": filepath.Join(root, "scripts/packaging/posagent.yaml"),
		"README.md":     filepath.Join(root, "README.md"),
		"posagent.wxs":  filepath.Join(root, wxsFile),
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(stage, dst), data, 0o644); err != nil {
			return "", err
		}
	}
	name := fmt.Sprintf("posagent-%s-windows-%s.msi", st.pkgVersion, b.arch)
	tmp := filepath.Join(stage, "posagent.msi")
	if err := runIn(ctx, stage, "wixl", "-a", "x64", "-D", "Version="+st.msiVersion, "-D", "Exe=posagent.exe",
		"-D", "Config=posagent.yaml", "-D", "Readme=README.md", "-o", tmp, "posagent.wxs"); err != nil {
		return "", err
	}
	const (
		attr64bit          = 256
		attrPermanent      = 16
		attrNeverOverwrite = 128
		upgradeMigrate     = 1   // msidbUpgradeAttributesMigrateFeatures
		upgradeMaxIncl     = 512 // msidbUpgradeAttributesVersionMaxInclusive
	)
	// Attributes is part of the Upgrade table's key, which libmsi does not
	// update: the row is replaced instead.
	for _, q := range []string{
		fmt.Sprintf("UPDATE `Component` SET `Attributes` = %d WHERE `Component` = 'DataDir'", attr64bit|attrPermanent|attrNeverOverwrite),
		"DELETE FROM `Upgrade` WHERE `ActionProperty` = 'WIX_UPGRADE_DETECTED'",
		fmt.Sprintf("INSERT INTO `Upgrade` (`UpgradeCode`, `VersionMax`, `Attributes`, `ActionProperty`) VALUES ('%s', '%s', %d, 'WIX_UPGRADE_DETECTED')",
			upgradeCode, st.msiVersion, upgradeMigrate|upgradeMaxIncl),
	} {
		if err := runIn(ctx, stage, "msibuild", tmp, "-q", q); err != nil {
			return "", err
		}
	}
	data, err := os.ReadFile(tmp)
	if err != nil {
		return "", err
	}
	return name, os.WriteFile(filepath.Join(out, name), data, 0o644)
}

func runIn(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, outb.String())
	}
	return nil
}
