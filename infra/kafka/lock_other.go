//go:build !unix

package kafka

// lockDir is a no-op where flock is unavailable: the caller must make sure
// that only one broker uses a data dir.
func lockDir(string) (unlock func() error, err error) {
	return func() error { return nil }, nil
}
