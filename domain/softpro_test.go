package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestSoftProConnectionValidate(t *testing.T) {
	t.Parallel()
	key := SoftProConnection{IntegrationID: "a", BaseURL: "https://softpro.example.com/api", Auth: AuthAPIKey, APIKey: "k"}
	oauth := SoftProConnection{IntegrationID: "a", BaseURL: "http://127.0.0.1:8080", Auth: AuthOAuth,
		ClientID: "c", ClientSecret: "s", TokenURL: "https://id.example.com/oauth/token?aud=x"}
	with := func(c SoftProConnection, f func(*SoftProConnection)) SoftProConnection { f(&c); return c }
	for _, tc := range []struct {
		name string
		c    SoftProConnection
		want []string // substrings of the problems; none for a valid connection
	}{
		{name: "api key", c: key},
		{name: "oauth with a token URL", c: oauth},
		{name: "upper-case scheme", c: with(key, func(c *SoftProConnection) { c.BaseURL = "HTTPS://softpro.example.com" })},
		{name: "ftp base URL", c: with(key, func(c *SoftProConnection) { c.BaseURL = "ftp://x" }), want: []string{"baseUrl must be an http or https URL"}},
		{name: "no scheme", c: with(key, func(c *SoftProConnection) { c.BaseURL = "softpro.example.com" }), want: []string{"baseUrl must be an http or https URL"}},
		{name: "host:port without scheme", c: with(key, func(c *SoftProConnection) { c.BaseURL = "localhost:8080" }), want: []string{"baseUrl must be an http or https URL"}},
		{name: "no host", c: with(key, func(c *SoftProConnection) { c.BaseURL = "http:///v1" }), want: []string{"baseUrl must be an http or https URL"}},
		{name: "port only", c: with(key, func(c *SoftProConnection) { c.BaseURL = "http://:80" }), want: []string{"baseUrl must be an http or https URL"}},
		{name: "unparsable", c: with(key, func(c *SoftProConnection) { c.BaseURL = "http://a b" }), want: []string{"baseUrl must be an http or https URL"}},
		{name: "base URL with a query", c: with(key, func(c *SoftProConnection) { c.BaseURL = "https://h/api?x=1" }), want: []string{"baseUrl must not have a query"}},
		{name: "ftp token URL", c: with(oauth, func(c *SoftProConnection) { c.TokenURL = "ftp://x" }), want: []string{"tokenUrl must be an http or https URL"}},
		{name: "a password in a bad URL is not repeated", c: with(key, func(c *SoftProConnection) { c.BaseURL = "ftp://user:hunter2@x" }),
			want: []string{`baseUrl must be an http or https URL with a host, such as https://softpro.example.com/api: got "ftp://user:…@x"`}},
		{name: "a password in the base URL", c: with(key, func(c *SoftProConnection) { c.BaseURL = "https://user:hunter2@softpro.example.com" }),
			want: []string{`baseUrl must not carry a user or password`}},
		{name: "a user in the token URL", c: with(oauth, func(c *SoftProConnection) { c.TokenURL = "https://client@id.example.com/token" }),
			want: []string{`tokenUrl must not carry a user or password`}},
		{name: "masked api key", c: with(key, func(c *SoftProConnection) { c.APIKey = MaskedSecret }), want: []string{`apiKey must be the credential itself, not "***"`}},
		{name: "masked client secret", c: with(oauth, func(c *SoftProConnection) { c.ClientSecret = MaskedSecret }), want: []string{`clientSecret must be the credential itself`}},
		{name: "every problem at once", c: SoftProConnection{BaseURL: "ftp://x", TokenURL: "x", Auth: AuthAPIKey, APIKey: MaskedSecret},
			want: []string{"baseUrl must be", "tokenUrl must be", "apiKey must be the credential itself"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) != len(tc.want) {
				t.Fatalf("Validate() = %v, want %d problems like %q", err, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if strings.Contains(verr.Problems[i], "hunter2") || !strings.Contains(verr.Problems[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, verr.Problems[i], w)
				}
			}
		})
	}
}
