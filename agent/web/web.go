// Package web is the cashier page, embedded in the binary (the till works
// without internet).
//
// The page holds no credential. A cashier signs in with their id and PIN
// (POST /v1/session); the agent answers with an HttpOnly, SameSite=Strict
// session cookie, which scripts cannot read, and a CSRF token the page keeps
// in memory and sends as X-CSRF-Token on every write. Anyone who fetches
// the page, another local user included, gets static files only.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the page at "/" and its assets under /static/.
func Handler() http.Handler {
	sub, _ := fs.Sub(static, "static")
	index, _ := fs.ReadFile(sub, "index.html")
	assets := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		_, _ = w.Write(index)
	})
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	}))
	return mux
}
