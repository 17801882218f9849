package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// typeWeights is the event-type mix of generated load, in percent: status
// and document traffic dominate a title office's day, deletions are rare.
// Every webhook type has a non-zero weight.
var typeWeights = []struct {
	t domain.EventType
	w int
}{
	{domain.TransactionCreated, 8},
	{domain.TransactionUpdated, 20},
	{domain.TransactionStatusChanged, 10},
	{domain.DocumentUploaded, 15},
	{domain.DocumentUpdated, 6},
	{domain.DocumentDeleted, 2},
	{domain.ContactCreated, 6},
	{domain.ContactUpdated, 8},
	{domain.ContactDeleted, 1},
	{domain.ClosingScheduled, 4},
	{domain.ClosingCompleted, 3},
	{domain.TaskCreated, 10},
	{domain.TaskCompleted, 7},
}

// pickType draws an event type from typeWeights.
func pickType(rng *rand.Rand) domain.EventType {
	total := 0
	for _, tw := range typeWeights {
		total += tw.w
	}
	n := rng.IntN(total)
	for _, tw := range typeWeights {
		if n < tw.w {
			return tw.t
		}
		n -= tw.w
	}
	return typeWeights[len(typeWeights)-1].t
}

// webhookBody is a SoftPro webhook as it arrives on the wire; field order
// matches SoftPro's.
type webhookBody struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

// entityUniverse bounds the entity ids a generator draws from, so events of
// one run keep touching the same transactions, contacts and tasks the way a
// real office's traffic does.
const entityUniverse = 5000

// makeBody renders one SoftPro webhook body of type t. rng decides the
// content; the same rng state gives the same bytes.
func makeBody(rng *rand.Rand, t domain.EventType, eventID string, ts time.Time) ([]byte, error) {
	var data any
	switch t.Entity() {
	case "transaction":
		data = transactionData(rng, t, ts)
	case "document":
		data = documentData(rng, t, ts)
	case "contact":
		data = contactData(rng, t, ts)
	case "closing":
		data = closingData(rng, t, ts)
	case "task":
		data = taskData(rng, t, ts)
	default:
		return nil, fmt.Errorf("make body: unknown event type %q", t)
	}
	b, err := json.Marshal(webhookBody{ID: eventID, Type: string(t), Timestamp: ts.UTC().Format(time.RFC3339Nano), Data: data})
	if err != nil {
		return nil, fmt.Errorf("make body %s: %w", eventID, err)
	}
	return b, nil
}

type address struct {
	Street string `json:"address"`
	City   string `json:"city"`
	State  string `json:"state"`
	Zip    string `json:"zip"`
	County string `json:"county,omitempty"`
}

type person struct {
	Role  string `json:"role,omitempty"`
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
}

type property struct {
	address
	ParcelNumber string `json:"parcel_number"`
	PropertyType string `json:"property_type"`
	LegalDesc    string `json:"legal_description"`
}

type amounts struct {
	PurchasePrice float64 `json:"purchase_price"`
	LoanAmount    float64 `json:"loan_amount"`
	EarnestMoney  float64 `json:"earnest_money"`
	Currency      string  `json:"currency"`
}

type transaction struct {
	ID              string   `json:"id"`
	FileNumber      string   `json:"file_number"`
	Status          string   `json:"status"`
	PreviousStatus  string   `json:"previous_status,omitempty"`
	TransactionType string   `json:"transaction_type"`
	Property        property `json:"property"`
	Parties         []person `json:"parties"`
	Amounts         amounts  `json:"amounts"`
	ClosingDate     string   `json:"closing_date"`
	EscrowOfficer   person   `json:"escrow_officer"`
	UpdatedAt       string   `json:"updated_at"`
}

type document struct {
	ID            string  `json:"id"`
	TransactionID string  `json:"transaction_id"`
	FileNumber    string  `json:"file_number"`
	Name          string  `json:"name"`
	MimeType      string  `json:"mime_type"`
	Size          int     `json:"size"`
	Category      string  `json:"category"`
	Version       int     `json:"version"`
	Checksum      string  `json:"checksum"`
	UploadedBy    person  `json:"uploaded_by"`
	UploadedAt    string  `json:"uploaded_at"`
	DeletedAt     *string `json:"deleted_at,omitempty"`
}

type contact struct {
	ID             string   `json:"id"`
	FirstName      string   `json:"first_name"`
	LastName       string   `json:"last_name"`
	Email          string   `json:"email"`
	Phone          string   `json:"phone"`
	Company        string   `json:"company,omitempty"`
	ContactType    string   `json:"contact_type"`
	Address        address  `json:"address"`
	TransactionIDs []string `json:"transaction_ids"`
	UpdatedAt      string   `json:"updated_at"`
	Deleted        bool     `json:"deleted,omitempty"`
}

type closing struct {
	ID              string   `json:"id"`
	TransactionID   string   `json:"transaction_id"`
	FileNumber      string   `json:"file_number"`
	Status          string   `json:"status"`
	ClosingDate     string   `json:"closing_date"`
	ClosingTime     string   `json:"closing_time"`
	Location        address  `json:"location"`
	SettlementAgent person   `json:"settlement_agent"`
	Parties         []person `json:"parties"`
	Amounts         amounts  `json:"amounts"`
	CompletedAt     string   `json:"completed_at,omitempty"`
	FundsDisbursed  bool     `json:"funds_disbursed,omitempty"`
	Recorded        bool     `json:"recorded,omitempty"`
}

type task struct {
	ID            string `json:"id"`
	TransactionID string `json:"transaction_id"`
	FileNumber    string `json:"file_number"`
	Title         string `json:"title"`
	Description   string `json:"description"`
	Status        string `json:"status"`
	Priority      string `json:"priority"`
	DueDate       string `json:"due_date"`
	Assignee      person `json:"assignee"`
	CreatedAt     string `json:"created_at"`
	CompletedAt   string `json:"completed_at,omitempty"`
	CompletedBy   string `json:"completed_by,omitempty"`
}

var (
	streets        = []string{"Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Pine Ridge Rd", "Lakeview Blvd", "Washington Ave", "Sunset Ter", "Highland Ct", "River Rd", "Park Pl"}
	cities         = []struct{ city, state, county string }{{"Springfield", "IL", "Sangamon"}, {"Austin", "TX", "Travis"}, {"Raleigh", "NC", "Wake"}, {"Columbus", "OH", "Franklin"}, {"Phoenix", "AZ", "Maricopa"}, {"Tampa", "FL", "Hillsborough"}, {"Denver", "CO", "Denver"}, {"Nashville", "TN", "Davidson"}}
	firstNames     = []string{"James", "Maria", "Robert", "Linda", "Michael", "Patricia", "David", "Jennifer", "William", "Elizabeth", "Carlos", "Aisha", "Wei", "Priya"}
	lastNames      = []string{"Smith", "Johnson", "Garcia", "Brown", "Miller", "Davis", "Martinez", "Wilson", "Anderson", "Thomas", "Nguyen", "Patel", "Kim", "Lopez"}
	lenders        = []string{"First National Bank", "Wells Fargo Home Mortgage", "Rocket Mortgage", "Guild Mortgage", "Chase Home Lending", "Movement Mortgage"}
	companies      = []string{"Keller Williams Realty", "RE/MAX Premier", "Coldwell Banker", "Compass", "eXp Realty", "Century 21 Elite"}
	txnStatuses    = []string{"open", "in_progress", "pending_signing", "clear_to_close", "closed", "cancelled"}
	txnTypes       = []string{"purchase", "refinance", "commercial_purchase", "equity_loan", "cash_purchase"}
	propTypes      = []string{"single_family", "condominium", "townhouse", "multi_family", "vacant_land"}
	contactTypes   = []string{"buyer", "seller", "borrower", "listing_agent", "selling_agent", "loan_officer", "attorney"}
	docKinds       = []struct{ name, mime, category string }{{"Closing Disclosure.pdf", "application/pdf", "closing"}, {"Title Commitment.pdf", "application/pdf", "title"}, {"Purchase Agreement.pdf", "application/pdf", "contract"}, {"Survey.tif", "image/tiff", "survey"}, {"Settlement Statement.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "closing"}, {"Wire Instructions.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "funding"}, {"Photo ID.jpg", "image/jpeg", "identity"}, {"Payoff Letter.pdf", "application/pdf", "payoff"}}
	taskTitles     = []string{"Order title search", "Request payoff statement", "Schedule closing", "Review survey", "Send wire instructions", "Record deed", "Collect earnest money", "Prepare closing disclosure", "Clear title exceptions", "Disburse funds"}
	taskPriorities = []string{"low", "normal", "high", "urgent"}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func entityID(rng *rand.Rand, prefix string) string {
	return fmt.Sprintf("%s_%06d", prefix, rng.IntN(entityUniverse))
}

func fileNumber(txnID string, ts time.Time) string {
	return fmt.Sprintf("%d-%s", ts.Year(), strings.TrimPrefix(txnID, "txn_"))
}

func randAddress(rng *rand.Rand) address {
	c := pick(rng, cities)
	return address{
		Street: fmt.Sprintf("%d %s", 100+rng.IntN(9800), pick(rng, streets)),
		City:   c.city, State: c.state, County: c.county,
		Zip: fmt.Sprintf("%05d", 10000+rng.IntN(89999)),
	}
}

func randPerson(rng *rand.Rand, role string) person {
	first, last := pick(rng, firstNames), pick(rng, lastNames)
	return person{
		Role: role, Name: first + " " + last,
		Email: strings.ToLower(first+"."+last) + fmt.Sprintf("%d@example.com", rng.IntN(100)),
		Phone: fmt.Sprintf("+1-%03d-555-%04d", 200+rng.IntN(700), rng.IntN(10000)),
	}
}

func randAmounts(rng *rand.Rand) amounts {
	price := float64(150_000 + rng.IntN(1_350_000)/1000*1000)
	return amounts{
		PurchasePrice: price,
		LoanAmount:    price * float64(60+rng.IntN(37)) / 100,
		EarnestMoney:  float64(1000 + rng.IntN(30)*500),
		Currency:      "USD",
	}
}

func dateAfter(rng *rand.Rand, ts time.Time, maxDays int) string {
	return ts.AddDate(0, 0, 1+rng.IntN(maxDays)).Format(time.DateOnly)
}

func transactionData(rng *rand.Rand, t domain.EventType, ts time.Time) transaction {
	id := entityID(rng, "txn")
	prop := property{
		address:      randAddress(rng),
		ParcelNumber: fmt.Sprintf("%02d-%02d-%03d-%03d", rng.IntN(100), rng.IntN(100), rng.IntN(1000), rng.IntN(1000)),
		PropertyType: pick(rng, propTypes),
	}
	prop.LegalDesc = fmt.Sprintf("Lot %d, Block %d, %s Subdivision, %s County", 1+rng.IntN(60), 1+rng.IntN(20), pick(rng, lastNames), prop.County)
	tx := transaction{
		ID: id, FileNumber: fileNumber(id, ts), Status: pick(rng, txnStatuses),
		TransactionType: pick(rng, txnTypes), Property: prop,
		Parties: []person{
			randPerson(rng, "buyer"), randPerson(rng, "seller"),
			{Role: "lender", Name: pick(rng, lenders), Email: "closings@lender.example.com"},
		},
		Amounts:       randAmounts(rng),
		ClosingDate:   dateAfter(rng, ts, 60),
		EscrowOfficer: randPerson(rng, "escrow_officer"),
		UpdatedAt:     ts.UTC().Format(time.RFC3339),
	}
	switch t {
	case domain.TransactionCreated:
		tx.Status = "open"
	case domain.TransactionStatusChanged:
		tx.PreviousStatus = pick(rng, txnStatuses)
	}
	return tx
}

func documentData(rng *rand.Rand, t domain.EventType, ts time.Time) document {
	txn := entityID(rng, "txn")
	kind := pick(rng, docKinds)
	d := document{
		ID: entityID(rng, "doc"), TransactionID: txn, FileNumber: fileNumber(txn, ts),
		Name: kind.name, MimeType: kind.mime, Category: kind.category,
		Size: 20_000 + rng.IntN(4_000_000), Version: 1,
		Checksum:   fmt.Sprintf("sha256:%016x%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()),
		UploadedBy: randPerson(rng, "processor"),
		UploadedAt: ts.UTC().Format(time.RFC3339),
	}
	switch t {
	case domain.DocumentUpdated:
		d.Version = 2 + rng.IntN(4)
	case domain.DocumentDeleted:
		at := ts.UTC().Format(time.RFC3339)
		d.DeletedAt = &at
	}
	return d
}

func contactData(rng *rand.Rand, t domain.EventType, ts time.Time) contact {
	p := randPerson(rng, "")
	first, last, _ := strings.Cut(p.Name, " ")
	c := contact{
		ID: entityID(rng, "con"), FirstName: first, LastName: last, Email: p.Email, Phone: p.Phone,
		ContactType: pick(rng, contactTypes), Address: randAddress(rng),
		TransactionIDs: []string{entityID(rng, "txn")},
		UpdatedAt:      ts.UTC().Format(time.RFC3339),
	}
	if strings.HasSuffix(c.ContactType, "agent") || c.ContactType == "loan_officer" {
		c.Company = pick(rng, companies)
	}
	if rng.IntN(3) == 0 {
		c.TransactionIDs = append(c.TransactionIDs, entityID(rng, "txn"))
	}
	c.Deleted = t == domain.ContactDeleted
	return c
}

func closingData(rng *rand.Rand, t domain.EventType, ts time.Time) closing {
	txn := entityID(rng, "txn")
	c := closing{
		ID: entityID(rng, "cls"), TransactionID: txn, FileNumber: fileNumber(txn, ts),
		Status: "scheduled", ClosingDate: dateAfter(rng, ts, 30),
		ClosingTime: fmt.Sprintf("%02d:%02d", 9+rng.IntN(8), 30*rng.IntN(2)),
		Location:    randAddress(rng), SettlementAgent: randPerson(rng, "settlement_agent"),
		Parties: []person{randPerson(rng, "buyer"), randPerson(rng, "seller")},
		Amounts: randAmounts(rng),
	}
	if t == domain.ClosingCompleted {
		c.Status = "completed"
		c.ClosingDate = ts.UTC().Format(time.DateOnly)
		c.CompletedAt = ts.UTC().Format(time.RFC3339)
		c.FundsDisbursed = true
		c.Recorded = rng.IntN(2) == 0
	}
	return c
}

func taskData(rng *rand.Rand, t domain.EventType, ts time.Time) task {
	txn := entityID(rng, "txn")
	title := pick(rng, taskTitles)
	k := task{
		ID: entityID(rng, "tsk"), TransactionID: txn, FileNumber: fileNumber(txn, ts),
		Title: title, Description: title + " for file " + fileNumber(txn, ts) + " before the scheduled closing.",
		Status: "open", Priority: pick(rng, taskPriorities), DueDate: dateAfter(rng, ts, 21),
		Assignee:  randPerson(rng, "closer"),
		CreatedAt: ts.Add(-time.Duration(rng.IntN(72)) * time.Hour).UTC().Format(time.RFC3339),
	}
	if t == domain.TaskCompleted {
		k.Status = "completed"
		k.CompletedAt = ts.UTC().Format(time.RFC3339)
		k.CompletedBy = k.Assignee.Name
	}
	return k
}
