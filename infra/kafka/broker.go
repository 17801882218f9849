package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// ErrDataDirInUse is returned by StartBroker when another broker, in this
// process or another, holds the data dir.
var ErrDataDirInUse = errors.New("data dir in use by another broker")

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// DataDir is where the broker keeps its log and metadata; it is created
	// if missing and reloaded if it holds a previous run. Empty keeps
	// everything in memory, lost on Close.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one. Clients keep
	// the address they were given, so a broker that restarts must come
	// back on the same Port for them to reconnect.
	Port int
	// Partitions is the partition count of topics created without an
	// explicit count (auto-created, or CreateTopics with -1). Default 12.
	Partitions int32
	// SyncWrites fsyncs every produced batch before it is acknowledged.
	// Without it, writes reach the OS page cache (they survive a crash of
	// the process, not of the machine), like Kafka's default.
	SyncWrites bool
	// Logger receives the broker's logs; nil discards them. kfake's
	// request-level info logs are logged at debug.
	Logger *slog.Logger
}

func (c *BrokerConfig) setDefaults() {
	if c.Partitions == 0 {
		c.Partitions = 12
	}
}

// Validate reports every problem with the configuration.
func (c BrokerConfig) Validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", c.Port))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions must be positive, got %d", c.Partitions))
	}
	return errors.Join(errs...)
}

// Broker is an embedded single-node Kafka-protocol broker (franz-go's kfake)
// listening on 127.0.0.1. It is meant for single-process runs and tests, not
// for production: there is no replication, and only one process may use a
// DataDir at a time (StartBroker takes a lock on it).
//
// Topics that are created without configs get infinite retention from the
// broker defaults (log.retention.ms and log.retention.bytes are -1): kfake
// otherwise applies Kafka's 7-day default to them as soon as any topic has
// an explicit retention config.
//
// Methods are safe for concurrent use.
type Broker struct {
	cluster *kfake.Cluster
	unlock  func() error
	once    sync.Once
}

// StartBroker starts the broker and returns once it accepts connections.
// With a DataDir that holds a previous run, every record, topic, producer id
// and committed offset of that run is loaded first.
//
// Restarting on the same DataDir and Port is how a test simulates a broker
// outage: clients reconnect to the same address and see the same log.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}

	opts := []kfake.Opt{
		// One broker: kfake defaults to three, each with its own port,
		// and a restart on a single port would then move partition
		// leaders.
		kfake.Ports(cfg.Port),
		kfake.ClusterID("softprohub"),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(cfg.Partitions)),
		kfake.BrokerConfigs(map[string]string{
			"log.retention.ms":    "-1",
			"log.retention.bytes": "-1",
		}),
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{cfg.Logger}))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}

	unlock := func() error { return nil }
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("start broker: %w", err)
		}
		var err error
		unlock, err = lockDir(filepath.Join(cfg.DataDir, "softprohub.lock"))
		if err != nil {
			return nil, fmt.Errorf("start broker: data dir %s: %w", cfg.DataDir, err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		_ = unlock()
		return nil, fmt.Errorf("start broker: %w", err)
	}
	return &Broker{cluster: c, unlock: unlock}, nil
}

// Addrs are the broker's host:port addresses, for ProducerConfig.Brokers
// and the other functions of this package.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Cluster exposes the kfake cluster for fault injection in tests
// (ControlKey, SleepControl, ...). Do not close it directly.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker. It stops accepting connections, drops the open
// ones (in-flight requests get no answer; clients retry), writes the full
// state to DataDir and releases the lock. A later StartBroker with the same
// DataDir sees every record that was acknowledged. Close is idempotent.
func (b *Broker) Close() {
	b.once.Do(func() {
		b.cluster.Close()
		_ = b.unlock()
	})
}

// kfakeLogger adapts slog to kfake.Logger.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	case kfake.LogLevelInfo:
		lvl = slog.LevelDebug // kfake logs every request at info
	default:
		lvl = slog.LevelDebug - 4
	}
	ctx := context.Background()
	if !k.l.Enabled(ctx, lvl) {
		return
	}
	k.l.Log(ctx, lvl, fmt.Sprintf(format, args...), "component", "kfake")
}
