package postgres

import (
	"encoding/binary"
	"math"
	"time"
)

// copyWriter renders rows in PostgreSQL's binary COPY format for tables
// whose column types are known here, so the bulk load of audit rows skips
// the per-value type lookups of a generic encoder. Each method appends one
// field; a row starts with row(n) for its n fields.
type copyWriter struct {
	buf []byte
}

// pgEpochMicros is 2000-01-01 UTC, PostgreSQL's zero for timestamps, in
// microseconds since the Unix epoch.
const pgEpochMicros = 946684800 * 1_000_000

func newCopyWriter(buf []byte) *copyWriter {
	buf = append(buf[:0], "PGCOPY\n\377\r\n\000"...)
	buf = binary.BigEndian.AppendUint32(buf, 0) // flags
	buf = binary.BigEndian.AppendUint32(buf, 0) // header extension length
	return &copyWriter{buf: buf}
}

// bytes ends the data and returns it.
func (w *copyWriter) bytes() []byte {
	return binary.BigEndian.AppendUint16(w.buf, math.MaxUint16) // -1: no more rows
}

func (w *copyWriter) row(fields int) {
	w.buf = binary.BigEndian.AppendUint16(w.buf, uint16(fields))
}

func (w *copyWriter) length(n int) {
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(int32(n)))
}

func (w *copyWriter) null() { w.length(-1) }

func (w *copyWriter) text(s string) {
	w.length(len(s))
	w.buf = append(w.buf, s...)
}

// textOrNull writes NULL for "".
func (w *copyWriter) textOrNull(s string) {
	if s == "" {
		w.null()
		return
	}
	w.text(s)
}

// jsonb writes doc, which must be JSON text, as jsonb (format version 1).
func (w *copyWriter) jsonb(doc []byte) {
	w.length(len(doc) + 1)
	w.buf = append(w.buf, 1)
	w.buf = append(w.buf, doc...)
}

func (w *copyWriter) uuid(id [16]byte) {
	w.length(16)
	w.buf = append(w.buf, id[:]...)
}

func (w *copyWriter) int4(v int32) {
	w.length(4)
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(v))
}

func (w *copyWriter) int8(v int64) {
	w.length(8)
	w.buf = binary.BigEndian.AppendUint64(w.buf, uint64(v))
}

// int4OrNull writes *v, which must fit an integer column, or NULL.
func (w *copyWriter) int4OrNull(v *int64) {
	if v == nil {
		w.null()
		return
	}
	w.int4(int32(max(min(*v, math.MaxInt32), math.MinInt32)))
}

func (w *copyWriter) boolOrNull(v *bool) {
	if v == nil {
		w.null()
		return
	}
	w.length(1)
	if *v {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}

// timestamptz writes t to the microsecond, as PostgreSQL keeps it.
func (w *copyWriter) timestamptz(t time.Time) {
	w.int8(t.UnixMicro() - pgEpochMicros)
}

func (w *copyWriter) timestamptzOrNull(t *time.Time) {
	if t == nil {
		w.null()
		return
	}
	w.timestamptz(*t)
}

// timestamptzOrNullIfZero writes NULL for the zero time.
func (w *copyWriter) timestamptzOrNullIfZero(t time.Time) {
	if t.IsZero() {
		w.null()
		return
	}
	w.timestamptz(t)
}
