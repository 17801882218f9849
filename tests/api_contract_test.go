package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"

	httpapi "github.com/roisystems/softprohub/handlers/http"
)

var (
	specOnce sync.Once
	spec     *openapi3.T
	specErr  error
)

// openAPISpec loads and validates the served OpenAPI document once.
func openAPISpec(t *testing.T) *openapi3.T {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		spec, specErr = loader.LoadFromData(httpapi.OpenAPI())
		if specErr == nil {
			specErr = spec.Validate(context.Background())
		}
	})
	if specErr != nil {
		t.Fatalf("openapi document: %v", specErr)
	}
	return spec
}

// specPath turns a chi route pattern into the document's path.
func specPath(pattern string) string {
	p := strings.ReplaceAll(pattern, "/*/", "/")
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

// call is e.do whose answer must validate against the OpenAPI document:
// status documented for the route, body matching its schema.
func (e *Env) call(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	status, raw := e.do(method, path, token, body)
	e.checkContract(method, path, status, raw)
	return status, raw
}

func (e *Env) checkContract(method, path string, status int, raw []byte) {
	e.t.Helper()
	checkContract(e.t, e.App.Handler(), method, path, status, raw)
}

// checkContract fails t unless h's answer (status, raw) to method and path
// is documented in the OpenAPI document for the route h serves it with.
func checkContract(t *testing.T, h http.Handler, method, path string, status int, raw []byte) {
	t.Helper()
	doc := openAPISpec(t)
	u, err := url.Parse(path)
	if err != nil {
		t.Fatalf("contract: %s: %v", path, err)
	}
	mux, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("contract: the handler is not a chi router")
	}
	rctx := chi.NewRouteContext()
	if !mux.Match(rctx, method, u.Path) {
		t.Fatalf("contract: no route serves %s %s", method, u.Path)
	}
	pattern := specPath(rctx.RoutePattern())
	item := doc.Paths.Value(pattern)
	if item == nil || item.GetOperation(method) == nil {
		t.Fatalf("contract: %s %s (route %s) is not in the OpenAPI document", method, u.Path, pattern)
	}
	params := map[string]string{}
	for i, k := range rctx.URLParams.Keys {
		params[k] = rctx.URLParams.Values[i]
	}
	req, _ := http.NewRequest(method, "http://softprohub"+path, nil)
	route := &routers.Route{Spec: doc, Path: pattern, PathItem: item, Method: method, Operation: item.GetOperation(method)}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 http.Header{"Content-Type": {"application/json"}},
		Body:                   io.NopCloser(bytes.NewReader(raw)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("contract: %s %s answered %d, not as documented: %v\nbody: %s", method, path, status, err, raw)
	}
}

func TestOpenAPIDocumentCoversEveryRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := openAPISpec(t)
	mux := e.App.Handler().(chi.Routes)
	n := 0
	err := chi.Walk(mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		n++
		p := specPath(route)
		if item := doc.Paths.Value(p); item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s %s is served but not in the OpenAPI document", method, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("walked only %d routes", n)
	}
	// Token-free routes say so; every /api/v1 route needs the bearer token.
	for p, item := range doc.Paths.Map() {
		for m, op := range item.Operations() {
			public := op.Security != nil && len(*op.Security) == 0
			if strings.HasPrefix(p, "/api/v1/") == public {
				t.Errorf("%s %s: public=%v", m, p, public)
			}
		}
	}

	// The document is served, without a token, as it is embedded.
	status, raw := e.call(http.MethodGet, "/api/openapi.json", "", nil)
	if status != http.StatusOK || !bytes.Equal(raw, httpapi.OpenAPI()) {
		t.Fatalf("GET /api/openapi.json: %d", status)
	}
	var served map[string]any
	if err := json.Unmarshal(raw, &served); err != nil || served["openapi"] != "3.0.3" {
		t.Fatalf("served document: %v %v", err, served["openapi"])
	}
}

func TestExistingRoutesAnswerAsDocumented(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("doc", nil)
	e.call(http.MethodGet, "/healthz", "", nil)
	e.call(http.MethodGet, "/readyz", "", nil)
	e.call(http.MethodGet, "/api/webhooks/health", "", nil)
	e.call(http.MethodGet, "/api/v1/integrations/softpro", e.Token, nil)
	e.call(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil)
	e.call(http.MethodGet, "/api/v1/integrations/softpro/"+e.id("nope"), e.Token, nil)
	e.call(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token, map[string]any{"integrationId": id, "enabled": true})
	e.call(http.MethodPost, "/api/v1/integrations/softpro", e.Token, map[string]any{"organizationId": "org", "webhookSecret": "0123456789"})
	e.call(http.MethodGet, "/api/v1/integrations/softpro", "", nil)
	r := e.send(signedWebhook(id, secret, payload("evt_doc", "task.created", `{"id":"t1"}`)))
	e.checkContract(http.MethodPost, "/api/webhooks/softpro/"+id, r.Status, r.Raw)
	r = e.send(signedWebhook(id, "wrong-secret", payload("evt_doc2", "task.created", `{"id":"t1"}`)))
	e.checkContract(http.MethodPost, "/api/webhooks/softpro/"+id, r.Status, r.Raw)
}
