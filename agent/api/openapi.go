package api

import (
	_ "embed"

	"posagent/internal/apidoc"
)

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI is this API's OpenAPI 3.1 document (agent/api/openapi.yaml),
// served at GET /v1/openapi.json without a token: it describes the calls
// and holds no secrets.
var OpenAPI = apidoc.New(openapiYAML)
