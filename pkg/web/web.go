// Package web serves the orchestrator's web page: choose, drop or
// photograph an image, see every detection drawn over it, the timeline of
// its tasks (concurrent and serial) and the worker pools. It is plain HTML,
// CSS and JavaScript embedded in the binary; there is no build step.
//
// The page talks to the HTTP API only (POST /v1/analyze, GET /v1/workers),
// so it shows exactly what any other client gets.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// files is the static directory as the root of the served tree.
var files = mustSub(static, "static")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Routes are the patterns Handler serves, for a net/http.ServeMux: the page
// at exactly / and its assets under /web/.
var Routes = []string{"GET /{$}", "GET /web/"}

// Handler serves the page (GET /) and its assets (GET /web/...).
func Handler() http.Handler {
	assets := http.StripPrefix("/web/", http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Everything the page loads comes from here; uploaded images are
		// shown from blob: URLs. No inline script or style is allowed.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; "+
			"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The files are small and change with the binary: revalidate.
		h.Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, files, "index.html")
			return
		case r.URL.Path[len(r.URL.Path)-1] == '/':
			http.NotFound(w, r) // no directory listings
			return
		}
		assets.ServeHTTP(w, r)
	})
}
