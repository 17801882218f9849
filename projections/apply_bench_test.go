package projections

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// benchValues renders n encoded envelopes shaped like SoftPro webhooks:
// transactions, documents, contacts and tasks of 10 integrations, their
// ids drawn from a universe of 500 per kind, so later events find state.
func benchValues(b *testing.B, n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	types := []domain.EventType{domain.TransactionUpdated, domain.TransactionStatusChanged, domain.DocumentUploaded,
		domain.ContactUpdated, domain.TaskCreated, domain.ClosingScheduled}
	out := make([][]byte, n)
	for i := range out {
		typ := types[rng.IntN(len(types))]
		at := t0.Add(time.Duration(i) * time.Second)
		id := fmt.Sprintf("%s_%06d", typ.Entity()[:3], rng.IntN(500))
		txn := fmt.Sprintf("txn_%06d", rng.IntN(500))
		var data string
		switch typ.Entity() {
		case "transaction":
			data = fmt.Sprintf(`{"id":%q,"file_number":"F-%s","status":"open","transaction_type":"purchase",`+
				`"property":{"address":"%d Oak St","city":"Austin","state":"TX","zip":"78701","parcel_number":"01-02-003-004",`+
				`"property_type":"single_family","legal_description":"Lot 4, Block 2, Smith Subdivision, Travis County"},`+
				`"parties":[{"role":"buyer","name":"Ann Lee","email":"ann.lee@example.com","phone":"+1-512-555-0101"},`+
				`{"role":"seller","name":"Bob Park","email":"bob.park@example.com"}],`+
				`"amounts":{"purchase_price":450000,"loan_amount":360000,"earnest_money":5000,"currency":"USD"},"updated_at":%q}`,
				id, id, 100+i%9000, at.Format(time.RFC3339))
		case "closing":
			data = fmt.Sprintf(`{"id":%q,"transaction_id":%q,"closing_date":%q,"closing_time":"10:30","location":"Main office"}`,
				id, txn, at.AddDate(0, 0, 14).Format(time.DateOnly))
		default:
			data = fmt.Sprintf(`{"id":%q,"transaction_id":%q,"name":"Deed of trust","document_type":"deed","first_name":"Ann",`+
				`"last_name":"Lee","email":"ann.lee@example.com","title":"Record deed","status":"open","url":"https://files.example.com/%s",`+
				`"size":123456,"version":2,"created_at":%q}`, id, txn, id, at.Format(time.RFC3339))
		}
		env := domain.Envelope{
			Schema: domain.SchemaV1, EventID: fmt.Sprintf("evt_%d", i), IntegrationID: fmt.Sprintf("int_%02d", i%10),
			Type: typ, OccurredAt: at, ReceivedAt: at.Add(time.Millisecond), Source: domain.SourceWebhook,
			Priority: typ.Priority(), SignatureScheme: domain.SchemeSoftPro,
			Payload: []byte(fmt.Sprintf(`{"id":"evt_%d","type":%q,"timestamp":%q,"data":%s}`, i, typ, at.Format(time.RFC3339Nano), data)),
		}
		v, err := env.Encode()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = v
	}
	return out
}

// BenchmarkDecodeAndApply measures the Go side of a rebuild per record:
// decoding the log's record values and applying them in batches of 1000
// through the projector's rules into a store that keeps them in maps.
func BenchmarkDecodeAndApply(b *testing.B) {
	const batch = 1000
	values := benchValues(b, 20*batch)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		b.StopTimer()
		p := NewProjector("bench", newMemStore(), nil)
		b.StartTimer()
		for lo := 0; lo < len(values) && i < b.N; lo += batch {
			recs := make([]Record, 0, batch)
			for off, v := range values[lo : lo+batch] {
				env, err := domain.DecodeEnvelope(v)
				if err != nil {
					b.Fatal(err)
				}
				recs = append(recs, Record{Partition: Partition{Topic: env.Type.Topic()}, Offset: int64(lo + off), Envelope: env})
			}
			if _, err := p.Apply(ctx, recs...); err != nil {
				b.Fatal(err)
			}
			i += batch
		}
	}
}
