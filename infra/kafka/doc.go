// Package kafka is the event log adapter of softprohub, built on franz-go.
//
// It provides the Producer, the only writer of the event topics (it
// satisfies ingest.Appender); topic administration (EnsureTopics) and end
// offset listing (EndOffsets); Tail, a direct partition reader without a
// consumer group that is the basis of `softprohub log tail` and replay; and
// StartBroker, an embedded Kafka-protocol broker (franz-go's kfake) that
// persists to a local folder for single-process runs and tests.
//
// Every producer of the event topics must hash keys the same way, so the
// Producer always uses franz-go's sticky key partitioner with murmur2, the
// hash of Kafka's Java client: one integration's events stay on one
// partition of each topic.
package kafka
