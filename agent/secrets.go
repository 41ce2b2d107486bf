package agent

import (
	"path/filepath"

	"posagent/agent/config"
)

// secretFile is a file that holds one of the agent's secrets, by the config
// key that names it.
type secretFile struct{ key, path string }

// secretFiles lists the files the agent reads secrets from under cfg: the
// API token (api.token_file, or the generated <data_dir>/api.token), the
// card token hash key, the store's HQ token and its client certificate key.
func secretFiles(cfg config.Config) []secretFile {
	var out []secretFile
	if cfg.API.Token == "" {
		key := "api.token_file"
		if cfg.API.TokenFile == "" {
			key = "api.token" // generated
		}
		out = append(out, secretFile{key, cfg.APITokenPath()})
	}
	if cfg.TokenKey == "" {
		path := cfg.TokenKeyFile
		if path == "" {
			path = filepath.Join(cfg.DataDir, "token.key") // generated, as config.TokenKeyBytes does
		}
		out = append(out, secretFile{"token_key_file", path})
	}
	if cfg.HQ.URL != "" {
		if cfg.HQ.Token == "" && cfg.HQ.TokenFile != "" {
			out = append(out, secretFile{"hq.token_file", cfg.HQ.TokenFile})
		}
		if cfg.HQ.KeyFile != "" {
			out = append(out, secretFile{"hq.key_file", cfg.HQ.KeyFile})
		}
	}
	return out
}
