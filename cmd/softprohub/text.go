package main

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// listText is s as a text listing prints it: as it is when it is valid
// UTF-8 of printable characters (spaces included) that does not start
// with a double quote; otherwise quoted in Go syntax, with its control
// and other unprintable characters escaped (strconv.Quote). A stored
// value, such as an organizationId from before control characters were
// refused, then cannot pass for more lines or columns of the listing,
// nor for another value.
func listText(s string) string {
	if utf8.ValidString(s) && !strings.HasPrefix(s, `"`) &&
		!strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) {
		return s
	}
	return strconv.Quote(s)
}

// jsonOut wraps w for a json.Encoder: it escapes the control characters
// encoding/json writes raw (DEL and the C1 controls U+0080-U+009F) as
// \u escapes, which mean the same in a JSON string, so stored text
// cannot send a terminal control sequences. The encoder writes each value
// whole in one Write, so no character is split between two.
func jsonOut(w io.Writer) io.Writer { return c1Escaper{w} }

type c1Escaper struct{ w io.Writer }

func isC1OrDEL(r rune) bool { return r == 0x7f || (r >= 0x80 && r <= 0x9f) }

func (e c1Escaper) Write(p []byte) (int, error) {
	if !bytes.ContainsFunc(p, isC1OrDEL) {
		return e.w.Write(p)
	}
	var b bytes.Buffer
	for rest := p; len(rest) > 0; {
		r, n := utf8.DecodeRune(rest)
		if isC1OrDEL(r) {
			b.WriteString(`\u00`)
			b.WriteString(strconv.FormatUint(uint64(r), 16))
		} else {
			b.Write(rest[:n])
		}
		rest = rest[n:]
	}
	if _, err := e.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}
