// Package apidoctest checks an HTTP API against its OpenAPI document while
// the API's own tests run: a handler wrapper validates every request the
// tests send and every answer the server gives, so the document cannot
// drift from the code. Only tests import it.
package apidoctest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Contract is a loaded document with a router over its operations.
type Contract struct {
	Name   string // where the document lives, for messages
	Doc    *openapi3.T
	router routers.Router
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*Contract{}
)

// Load parses and checks an OpenAPI 3.1 document (JSON) once per process.
// name says where it lives (e.g. agent/api/openapi.yaml). Answers are then
// checked strictly: an object property the document does not name fails,
// although the document itself lets clients meet new fields.
func Load(t testing.TB, name string, doc []byte) *Contract {
	t.Helper()
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if c := cache[name]; c != nil {
		return c
	}
	c, err := load(name, doc)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cache[name] = c
	return c
}

func load(name string, raw []byte) (*Contract, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("the document does not load: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		return nil, fmt.Errorf("the document is OpenAPI %s; it must be 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("the document is not valid OpenAPI: %w", err)
	}
	tighten(doc)
	// Route by path alone: tests serve on a random loopback port, and the
	// wrong-host case sends a foreign Host on purpose.
	doc.Servers = nil
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("no router over the document: %w", err)
	}
	return &Contract{Name: name, Doc: doc, router: r}, nil
}

// tighten closes every object schema that names its properties, so a
// field the server sends and the document does not describe fails the
// tests. A schema made of allOf is closed with unevaluatedProperties (which
// sees through allOf); a part of it that lacks names the whole adds stays
// open, as closing it would refuse them.
func tighten(doc *openapi3.T) {
	no := false
	seen := map[*openapi3.Schema]bool{}
	var all []*openapi3.Schema
	var walk func(*openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		all = append(all, s)
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
		walk(s.Not)
		for _, l := range [][]*openapi3.SchemaRef{s.AllOf, s.AnyOf, s.OneOf, s.PrefixItems} {
			for _, r := range l {
				walk(r)
			}
		}
	}
	content := func(c openapi3.Content) {
		for _, mt := range c {
			walk(mt.Schema)
		}
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
	for _, pi := range doc.Paths.Map() {
		for _, op := range pi.Operations() {
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				content(op.RequestBody.Value.Content)
			}
			for _, r := range op.Responses.Map() {
				if r.Value != nil {
					content(r.Value.Content)
				}
			}
			for _, p := range op.Parameters {
				if p.Value != nil {
					walk(p.Value.Schema)
				}
			}
		}
	}
	open := map[*openapi3.Schema]bool{}
	for _, s := range all {
		if len(s.AllOf) == 0 {
			continue
		}
		names := map[string]bool{}
		for n := range s.Properties {
			names[n] = true
		}
		for _, m := range s.AllOf {
			for n := range m.Value.Properties {
				names[n] = true
			}
		}
		for _, m := range s.AllOf {
			for n := range names {
				if _, ok := m.Value.Properties[n]; !ok {
					open[m.Value] = true
				}
			}
		}
		if s.UnevaluatedProperties.Has == nil && s.UnevaluatedProperties.Schema == nil {
			s.UnevaluatedProperties.Has = &no
		}
	}
	for _, s := range all {
		if open[s] || len(s.Properties) == 0 || len(s.AllOf) > 0 {
			continue
		}
		if s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			s.AdditionalProperties.Has = &no
		}
	}
}

// maxCapture bounds what is kept of a body for checking; a longer one is
// checked for status and headers only.
const maxCapture = 8 << 20

// Handler wraps h so every request through it, and its answer, is checked
// against the document; a mismatch fails t. Bodies pass through unchanged
// and unbuffered (streams stream, read deadlines still apply), and are
// checked after the handler returns.
//
// A request the document refuses may be answered with an error (the tests
// send bad requests on purpose), but not with success. A path and method
// the document does not list must be answered 404 or 405. Every answer
// must be one the document lists for the operation, body included.
func (c *Contract) Handler(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, params, rerr := c.router.FindRoute(r)
		var reqBody *capture
		if r.Body != nil && r.Body != http.NoBody {
			reqBody = &capture{}
			r.Body = &teeBody{ReadCloser: r.Body, c: reqBody}
		}
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if err := c.check(r, route, params, rerr, reqBody, rec); err != nil {
			t.Errorf("%s: %s %s answered %d, against the document: %v\nanswer: %s", c.Name, r.Method, r.URL.RequestURI(), rec.code(), err, snippet(rec.body.b))
		}
	})
}

func (c *Contract) check(r *http.Request, route *routers.Route, params map[string]string, rerr error, reqBody *capture, rec *recorder) error {
	status := rec.code()
	if rerr != nil {
		if errors.Is(rerr, routers.ErrPathNotFound) || errors.Is(rerr, routers.ErrMethodNotAllowed) {
			if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
				return nil // the server does not serve it either
			}
			return fmt.Errorf("the document has no operation %s %s: add it", r.Method, r.URL.Path)
		}
		return rerr
	}
	ctx := context.Background()
	req := r.Clone(ctx)
	reqOpts := &openapi3filter.Options{AuthenticationFunc: bearerPresent, MultiError: true}
	if reqBody != nil {
		if reqBody.over || !reqBody.eof {
			reqOpts.ExcludeRequestBody = true // the server stopped reading early
		}
		b := reqBody.b
		if strings.EqualFold(req.Header.Get("Content-Encoding"), "gzip") && !reqOpts.ExcludeRequestBody {
			var err error
			if b, err = gunzip(b); err != nil {
				if status < 400 {
					return fmt.Errorf("the server accepted a gzip body that does not inflate: %w", err)
				}
				reqOpts.ExcludeRequestBody = true
			}
			req.Header.Del("Content-Encoding")
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		if req.Header.Get("Content-Type") == "" && len(b) > 0 {
			// The servers read a body as what the call takes whatever it
			// is labelled (curl -d sends none), as their documents say.
			req.Header.Set("Content-Type", defaultType(route.Operation))
		}
	} else {
		req.Body = http.NoBody
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: reqOpts}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && status < 400 {
		return fmt.Errorf("the document refuses the request the server accepted: %w", err)
	}
	respOpts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	body := rec.body.b
	if rec.body.over || !decodable(rec.Header().Get("Content-Type")) {
		// Too long to keep, or a stream or binary form no decoder reads:
		// status and Content-Type are still checked.
		respOpts.ExcludeResponseBody = true
	} else if strings.EqualFold(rec.Header().Get("Content-Encoding"), "gzip") {
		var err error
		if body, err = gunzip(body); err != nil {
			return fmt.Errorf("the answer says gzip but does not inflate: %w", err)
		}
	}
	if err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                respOpts,
	}); err != nil {
		return fmt.Errorf("the answer is not one the document gives: %w", err)
	}
	return nil
}

// bearerPresent passes a request that carries bearer credentials, or the
// cookie of a cookie scheme; whether they are right is the server's call.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if ss := in.SecurityScheme; ss != nil && ss.Type == "apiKey" && ss.In == "cookie" {
		if _, err := in.RequestValidationInput.Request.Cookie(ss.Name); err != nil {
			return in.NewError(fmt.Errorf("no %s cookie", ss.Name))
		}
		return nil
	}
	if in.SecurityScheme == nil || in.SecurityScheme.Type != "http" || !strings.EqualFold(in.SecurityScheme.Scheme, "bearer") {
		return in.NewError(fmt.Errorf("the tests only know bearer credentials, not %q", in.SecuritySchemeName))
	}
	scheme, tok, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return in.NewError(errors.New("no bearer token"))
	}
	return nil
}

// Operations lists the document's operations as "METHOD /path", sorted.
func (c *Contract) Operations() []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(c.Doc.Paths.Map())) {
		for m := range c.Doc.Paths.Value(p).Operations() {
			out = append(out, m+" "+p)
		}
	}
	slices.Sort(out)
	return out
}

// defaultType is the media type an unlabelled request body is read as:
// JSON when the operation takes it, else the first it takes.
func defaultType(op *openapi3.Operation) string {
	if op == nil || op.RequestBody == nil || op.RequestBody.Value == nil || len(op.RequestBody.Value.Content) == 0 {
		return "application/json"
	}
	c := op.RequestBody.Value.Content
	if _, ok := c["application/json"]; ok {
		return "application/json"
	}
	return slices.Sorted(maps.Keys(c))[0]
}

// decodable reports whether kin-openapi has a body decoder for the media
// type (newline-delimited JSON is added below). An event stream is left
// out: it is cut, not ended, when the test closes it.
func decodable(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	if mt == "" || mt == "text/event-stream" {
		return mt == "" // an empty body is checked against "no content"
	}
	return openapi3filter.RegisteredBodyDecoder(mt) != nil
}

func init() {
	// A stream of JSON lines is checked as the array of its lines.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		dec := json.NewDecoder(r)
		dec.UseNumber()
		out := []any{}
		for {
			var v any
			err := dec.Decode(&v)
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", len(out)+1, err)
			}
			out = append(out, v)
		}
	})
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return io.ReadAll(io.LimitReader(zr, 4*maxCapture))
}

func snippet(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// capture keeps up to maxCapture bytes.
type capture struct {
	mu   sync.Mutex
	b    []byte
	over bool
	eof  bool
}

func (c *capture) write(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.b)+len(p) > maxCapture {
		c.over = true
		return
	}
	c.b = append(c.b, p...)
}

type teeBody struct {
	io.ReadCloser
	c *capture
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	t.c.write(p[:n])
	if err == io.EOF {
		t.c.mu.Lock()
		t.c.eof = true
		t.c.mu.Unlock()
	}
	return n, err
}

// recorder passes an answer through and keeps a copy. Unwrap lets
// http.ResponseController reach the connection (deadlines, flushes).
type recorder struct {
	http.ResponseWriter
	status int
	body   capture
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.write(p)
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
