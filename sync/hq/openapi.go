package hq

import (
	_ "embed"

	"posagent/internal/apidoc"
)

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI is the HQ API's OpenAPI 3.1 document (sync/hq/openapi.yaml),
// served at GET /v1/openapi.json without a token: it describes the calls
// and holds no secrets.
var OpenAPI = apidoc.New(openapiYAML)
