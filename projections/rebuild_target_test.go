package projections

import (
	"errors"
	"strings"
	"testing"
)

func TestValidTarget(t *testing.T) {
	t.Parallel()
	b := &Rebuilder{cfg: RebuildConfig{LiveSchema: "live"}}
	for _, tc := range []struct {
		schema string
		ok     bool
	}{
		{"asof_feb", true},
		{"_copy2", true},
		{"public", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{"live", false},
		{"live_rebuild_12", false},
		{"live_rebuild_12_retired", false},
		{"pg_copy", false},
		{"information_schema", false},
		{"AsOf", false},
		{"as-of", false},
		{"2024_copy", false},
		{"copy\x00", false},
		{"cöpy", false},
		{strings.Repeat("a", 64), false},
	} {
		err := b.validTarget(tc.schema)
		if tc.ok && err != nil {
			t.Errorf("%q: %v", tc.schema, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("%q: %v, want ErrInvalidTarget", tc.schema, err)
		}
	}
}
