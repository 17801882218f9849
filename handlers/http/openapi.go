package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3 contract of the whole HTTP API. The
// tests check that every route the router serves is in it and that the
// answers of the integration tests validate against it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3 document served at GET /api/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

// serveOpenAPI is GET /api/openapi.json (public).
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDocument)
}
