// Package web is the cashier page, embedded in the binary (the till works
// without internet).
//
// The page needs an API token. A page loaded from a loopback client gets
// the agent's per-start session token written into a <meta> tag; the page
// then sends it as a Bearer token on every call, including the event stream
// (read with fetch, not EventSource, so the token never goes in a URL). A
// page loaded from another machine (only possible with api.allow_remote)
// gets no token and asks the cashier for the API token instead. The session
// token changes at every start, so a copy of the page saved to disk stops
// working when the agent restarts.
package web

import (
	"bytes"
	"embed"
	"html"
	"io/fs"
	"net"
	"net/http"
)

//go:embed static
var static embed.FS

const placeholder = "{{SESSION_TOKEN}}"

// Handler serves the page at "/" and its assets under /static/.
func Handler(sessionToken string) http.Handler {
	sub, _ := fs.Sub(static, "static")
	index, _ := fs.ReadFile(sub, "index.html")
	withToken := bytes.Replace(index, []byte(placeholder), []byte(html.EscapeString(sessionToken)), 1)
	without := bytes.Replace(index, []byte(placeholder), nil, 1)
	assets := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		body := without
		if loopbackClient(r) {
			body = withToken
		}
		_, _ = w.Write(body)
	})
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	}))
	return mux
}

// loopbackClient reports whether the request comes from this machine.
func loopbackClient(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
