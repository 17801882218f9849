package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/roisystems/softprohub/domain"
)

var (
	streets      = []string{"Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Pine Ridge Rd", "Lakeview Blvd", "Washington Ave", "Sunset Ter", "Highland Ct", "River Rd", "Park Pl"}
	cities       = []struct{ city, state string }{{"Springfield", "IL"}, {"Austin", "TX"}, {"Raleigh", "NC"}, {"Columbus", "OH"}, {"Phoenix", "AZ"}, {"Tampa", "FL"}, {"Denver", "CO"}, {"Nashville", "TN"}}
	firstNames   = []string{"James", "Maria", "Robert", "Linda", "Michael", "Patricia", "David", "Jennifer", "William", "Elizabeth", "Carlos", "Aisha", "Wei", "Priya"}
	lastNames    = []string{"Smith", "Johnson", "Garcia", "Brown", "Miller", "Davis", "Martinez", "Wilson", "Anderson", "Thomas", "Nguyen", "Patel", "Kim", "Lopez"}
	companies    = []string{"Keller Williams Realty", "RE/MAX Premier", "Coldwell Banker", "Compass", "First National Bank", "Guild Mortgage"}
	txnStatuses  = []string{"open", "in_progress", "pending_signing", "clear_to_close", "closed", "cancelled"}
	txnTypes     = []string{"purchase", "refinance", "commercial_purchase", "equity_loan", "cash_purchase"}
	contactRoles = []string{"buyer", "seller", "borrower", "listing_agent", "selling_agent", "loan_officer", "attorney"}
	docKinds     = []struct{ name, mime, kind string }{{"Closing Disclosure.pdf", "application/pdf", "closing_disclosure"}, {"Title Commitment.pdf", "application/pdf", "title_commitment"}, {"Purchase Agreement.pdf", "application/pdf", "purchase_agreement"}, {"Survey.tif", "image/tiff", "survey"}, {"Wire Instructions.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "wire_instructions"}, {"Payoff Letter.pdf", "application/pdf", "payoff"}}
	taskTitles   = []string{"Order title search", "Request payoff statement", "Schedule closing", "Review survey", "Send wire instructions", "Record deed", "Collect earnest money", "Clear title exceptions", "Disburse funds"}
	taskStatuses = []string{"open", "in_progress", "completed"}
	closers      = []string{"closer1@title.example.com", "closer2@title.example.com", "processor@title.example.com", "escrow@title.example.com"}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// txnRef is the transaction a child record belongs to: one of the tenant's
// transactions, so the read models join.
func txnRef(rng *rand.Rand, n int) string { return fmt.Sprintf("txn_%06d", 1+rng.IntN(max(n, 1))) }

// generate makes record i of type typ. Every record of a type has the same
// keys (absent values are null), so a later version never leaves a stale
// field behind in the projected payload.
func generate(rng *rand.Rand, typ string, i, n int, at time.Time) map[string]any {
	created := at.Add(-time.Duration(rng.IntN(30*24)) * time.Hour).UTC().Format(time.RFC3339)
	switch typ {
	case domain.SyncTransactions:
		c := pick(rng, cities)
		price := 150_000 + rng.IntN(1_350)*1000
		return map[string]any{
			"file_number":      fmt.Sprintf("%d-%06d", at.Year(), i),
			"status":           pick(rng, txnStatuses),
			"transaction_type": pick(rng, txnTypes),
			"property": map[string]any{
				"address": fmt.Sprintf("%d %s", 100+rng.IntN(9800), pick(rng, streets)),
				"city":    c.city, "state": c.state, "zip": fmt.Sprintf("%05d", 10000+rng.IntN(89999)),
			},
			"closing_date":   at.AddDate(0, 0, 1+rng.IntN(60)).Format(time.DateOnly),
			"purchase_price": price,
			"loan_amount":    price * (60 + rng.IntN(37)) / 100,
			"escrow_officer": pick(rng, closers),
			"created_at":     created,
		}
	case domain.SyncContacts:
		first, last := pick(rng, firstNames), pick(rng, lastNames)
		role := pick(rng, contactRoles)
		var company any
		if strings.HasSuffix(role, "agent") || role == "loan_officer" {
			company = pick(rng, companies)
		}
		return map[string]any{
			"transaction_id": txnRef(rng, n),
			"first_name":     first, "last_name": last,
			"email":      strings.ToLower(first+"."+last) + fmt.Sprintf("%d@example.com", rng.IntN(100)),
			"phone":      fmt.Sprintf("+1-%03d-555-%04d", 200+rng.IntN(700), rng.IntN(10000)),
			"role":       role,
			"company":    company,
			"created_at": created,
		}
	case domain.SyncDocuments:
		k := pick(rng, docKinds)
		return map[string]any{
			"transaction_id": txnRef(rng, n),
			"name":           k.name, "document_type": k.kind, "mime_type": k.mime,
			"url":        fmt.Sprintf("https://files.softpro.example.com/d/%016x", rng.Uint64()),
			"size":       20_000 + rng.IntN(4_000_000),
			"version":    1,
			"created_at": created,
		}
	default:
		status := pick(rng, taskStatuses)
		var completed any
		if status == "completed" {
			completed = at.UTC().Format(time.RFC3339)
		}
		return map[string]any{
			"transaction_id": txnRef(rng, n),
			"title":          pick(rng, taskTitles),
			"status":         status,
			"assigned_to":    pick(rng, closers),
			"due_date":       at.AddDate(0, 0, 1+rng.IntN(21)).Format(time.DateOnly),
			"completed_at":   completed,
			"created_at":     created,
		}
	}
}

// mutate changes a record the way an office's day changes it and returns
// the webhook event type SoftPro would send.
func mutate(rng *rand.Rand, r *Record) domain.EventType {
	f := r.fields
	switch r.Type {
	case domain.SyncTransactions:
		if rng.IntN(2) == 0 {
			cur, _ := f["status"].(string)
			next := pick(rng, txnStatuses)
			for next == cur {
				next = pick(rng, txnStatuses)
			}
			f["status"] = next
			return domain.TransactionStatusChanged
		}
		f["closing_date"] = time.Now().AddDate(0, 0, 1+rng.IntN(60)).Format(time.DateOnly)
		f["escrow_officer"] = pick(rng, closers)
		return domain.TransactionUpdated
	case domain.SyncContacts:
		f["phone"] = fmt.Sprintf("+1-%03d-555-%04d", 200+rng.IntN(700), rng.IntN(10000))
		f["email"] = strings.ToLower(fmt.Sprint(f["first_name"])+"."+fmt.Sprint(f["last_name"])) + fmt.Sprintf("%d@example.com", rng.IntN(100))
		return domain.ContactUpdated
	case domain.SyncDocuments:
		v, _ := f["version"].(int)
		f["version"] = v + 1
		f["url"] = fmt.Sprintf("https://files.softpro.example.com/d/%016x", rng.Uint64())
		return domain.DocumentUpdated
	default:
		if f["status"] != "completed" && rng.IntN(2) == 0 {
			f["status"] = "completed"
			f["completed_at"] = time.Now().UTC().Format(time.RFC3339)
			return domain.TaskCompleted
		}
		f["assigned_to"] = pick(rng, closers)
		f["due_date"] = time.Now().AddDate(0, 0, 1+rng.IntN(21)).Format(time.DateOnly)
		return domain.TaskCreated
	}
}
