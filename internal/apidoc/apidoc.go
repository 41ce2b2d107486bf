// Package apidoc serves an OpenAPI document kept in the repository as YAML
// (easier to read and review than JSON) as the JSON that clients and code
// generators expect.
package apidoc

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"gopkg.in/yaml.v3"
)

// JSON converts a YAML OpenAPI document to JSON. Mapping keys must be
// strings (quote response codes: "200").
func JSON(src []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, fmt.Errorf("apidoc: the OpenAPI YAML does not parse: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("apidoc: the OpenAPI YAML holds a value JSON cannot (a non-string key, an unquoted date?): %w", err)
	}
	return append(b, '\n'), nil
}

// Doc is an embedded YAML document, converted to JSON once on first use.
type Doc struct {
	once sync.Once
	src  []byte
	json []byte
	err  error
}

// New wraps the YAML source of a document.
func New(src []byte) *Doc { return &Doc{src: src} }

// JSON is the document as JSON.
func (d *Doc) JSON() ([]byte, error) {
	d.once.Do(func() { d.json, d.err = JSON(d.src) })
	return d.json, d.err
}

// ServeHTTP answers the document as application/json.
func (d *Doc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := d.JSON()
	if err != nil {
		// Only a broken build gets here; the tests load every document.
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"code":"internal","message":"the API description in this build is broken; report this to support"}` + "\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}
