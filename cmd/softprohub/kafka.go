package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
)

func newKafkaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "kafka",
		Short: "Run the embedded Kafka-protocol broker standalone (DATA_DIR/kafka, KAFKA_EMBEDDED_PORT)",
		Long: "Run the embedded broker on its own so several softprohub processes can share it: start\n" +
			"`softprohub kafka`, then run each process with KAFKA_BROKERS=127.0.0.1:$KAFKA_EMBEDDED_PORT.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.LoadConfig()
			if err != nil {
				return err
			}
			log := app.NewLogger(cfg.LogLevel, true)
			b, err := kafka.StartBroker(kafka.BrokerConfig{
				DataDir: filepath.Join(cfg.DataDir, "kafka"), Port: cfg.KafkaEmbeddedPort,
				Partitions: int32(cfg.KafkaPartitions), Logger: log,
			})
			if err != nil {
				return err
			}
			defer b.Close()
			created, err := kafka.EnsureTopics(cmd.Context(), b.Addrs(), domain.AllTopics,
				kafka.TopicSpec{Partitions: int32(cfg.KafkaPartitions), Replication: -1})
			if err != nil {
				return err
			}
			log.Info("embedded broker running", "addrs", b.Addrs(), "topicsCreated", created)
			fmt.Fprintf(cmd.OutOrStdout(), "KAFKA_BROKERS=%s\n", strings.Join(b.Addrs(), ","))
			<-cmd.Context().Done()
			return nil
		},
	}
}

func newLogCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "log", Short: "Read the event log"}
	var topics []string
	var integration, from string
	var types []string
	var follow bool
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Print envelopes from the log as JSON lines",
		Long: "Print envelopes from the event topics, one JSON line each with topic, partition and offset.\n" +
			"--from takes an RFC 3339 time or a duration back from now (e.g. 1h).\n" +
			"A --topic the broker does not have is an error unless it is one of the service's,\n" +
			"not created yet (skipped). -f follows until interrupted (Ctrl-C), which exits 0.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.LoadConfig()
			if err != nil {
				return err
			}
			var since time.Time
			if from != "" {
				if d, err := time.ParseDuration(from); err == nil {
					since = time.Now().Add(-d)
				} else if since, err = time.Parse(time.RFC3339, from); err != nil {
					return fmt.Errorf("--from: want RFC 3339 or a duration, got %q", from)
				}
			}
			var ts []domain.EventType
			for _, t := range types {
				ts = append(ts, domain.EventType(t))
			}
			enc := json.NewEncoder(jsonOut(cmd.OutOrStdout()))
			return kafka.Tail(cmd.Context(), kafka.TailConfig{
				Brokers: cfg.Brokers(), Topics: topics, IntegrationID: integration, Types: ts, From: since, Follow: follow,
			}, func(r kafka.Record) error {
				line := map[string]any{"topic": r.Topic, "partition": r.Partition, "offset": r.Offset, "key": r.Key}
				if r.Err != nil {
					line["error"] = r.Err.Error()
				} else {
					line["envelope"] = json.RawMessage(mustEncode(r.Envelope))
				}
				return enc.Encode(line)
			})
		},
	}
	tail.Flags().StringSliceVar(&topics, "topic", nil, "topics (default: every event topic)")
	tail.Flags().StringVar(&integration, "integration", "", "only this integration")
	tail.Flags().StringSliceVar(&types, "type", nil, "only these event types")
	tail.Flags().StringVar(&from, "from", "", "start time (RFC 3339) or duration back from now; default the start of the log")
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	cmd.AddCommand(tail)
	return cmd
}

func mustEncode(e domain.Envelope) []byte {
	b, err := e.Encode()
	if err != nil {
		return []byte("null")
	}
	return b
}
