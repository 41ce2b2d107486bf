//go:build !windows

package agent

import (
	"fmt"
	"log/slog"
	"os"

	"posagent/agent/config"
)

// warnSecretPerms logs a warning, with the chmod that fixes it, for every
// secret file that users other than its owner may read or change: anyone
// who can read the API token can take points and stored value through the
// API. Start-up goes on; the file may be shared on purpose.
func warnSecretPerms(cfg config.Config, log *slog.Logger) {
	for _, f := range secretFiles(cfg) {
		fi, err := os.Stat(f.path)
		if err != nil || !fi.Mode().IsRegular() {
			continue // a missing file fails where it is read
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			log.Warn("secret file is open to other users; restrict it to the agent's user",
				"key", f.key, "path", f.path, "mode", fmt.Sprintf("%04o", perm), "fix", "chmod 600 "+f.path)
		}
	}
}
