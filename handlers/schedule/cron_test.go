package schedule

import "testing"

// The sync frequencies the README lists convert to the original system's
// cron schedules; 60 minutes is every hour on the hour.
func TestCronSpecOfTheListedFrequencies(t *testing.T) {
	for _, tt := range []struct {
		frequency int
		want      string
	}{
		{5, "*/5 * * * *"},
		{15, "*/15 * * * *"},
		{60, "0 * * * *"},
		{120, "0 */2 * * *"},
		{45, "@every 45m"},
		{90, "@every 90m"},
	} {
		if got := CronSpec(tt.frequency, 5); got != tt.want {
			t.Errorf("CronSpec(%d) = %q, want %q", tt.frequency, got, tt.want)
		}
	}
}
