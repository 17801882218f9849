package projections

import "math"

// LatencyBucketsMs are the upper bounds, in milliseconds, of the processing
// time histogram kept per integration, event type and hour; a last bucket
// holds everything slower. Changing them invalidates stored histograms.
var LatencyBucketsMs = [...]int64{10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}

// LatencyHistogram counts processing times in the buckets of
// LatencyBucketsMs, the slower ones last.
type LatencyHistogram [len(LatencyBucketsMs) + 1]int64

// latencyBucket is the histogram index for a processing time.
func latencyBucket(ms int64) int {
	for i, b := range LatencyBucketsMs {
		if ms <= b {
			return i
		}
	}
	return len(LatencyBucketsMs)
}

// Percentile estimates the q-quantile (0 < q <= 1) in milliseconds from a
// histogram laid out as LatencyBucketsMs, interpolating linearly within the
// bucket. It returns 0 for an empty histogram and +Inf when the quantile
// falls in the overflow bucket.
func Percentile(buckets []int64, q float64) float64 {
	var total int64
	for _, n := range buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen int64
	for i, n := range buckets {
		if n <= 0 {
			continue
		}
		if float64(seen+n) >= rank {
			if i >= len(LatencyBucketsMs) {
				return math.Inf(1)
			}
			lo := 0.0
			if i > 0 {
				lo = float64(LatencyBucketsMs[i-1])
			}
			hi := float64(LatencyBucketsMs[i])
			return lo + (hi-lo)*(rank-float64(seen))/float64(n)
		}
		seen += n
	}
	return math.Inf(1)
}
