package httpapi

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/roisystems/softprohub/domain"
)

func TestOutage(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("list: %w", refused), true},
		{fmt.Errorf("update: %w", &pgconn.PgError{Code: "57P01"}), true}, // admin shutdown
		{&pgconn.PgError{Code: "08006"}, true},                           // connection failure
		{&pgconn.PgError{Code: "53300"}, true},                           // too many connections
		{&pgconn.PgError{Code: "25006"}, true},                           // read-only transaction
		{&pgconn.PgError{Code: "23505"}, false},                          // unique violation: a bug or a race, not an outage
		{&pgconn.PgError{Code: "42P01"}, false},                          // undefined table
		{fmt.Errorf("create: %w", domain.ErrConflict), false},
		{errors.New("boom"), false},
	} {
		if got := outage(tt.err); got != tt.want {
			t.Errorf("outage(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
