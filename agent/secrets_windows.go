package agent

import (
	"log/slog"

	"posagent/agent/config"
)

// warnSecretPerms does nothing on Windows: access there is by ACL, and the
// mode bits Go reports (0666 for any writable file) say nothing about who
// may read a file.
func warnSecretPerms(config.Config, *slog.Logger) {}
