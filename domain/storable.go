package domain

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// storable returns payload, a JSON document, in a form PostgreSQL's jsonb
// and text accept: a \u0000 escape, an unpaired UTF-16 surrogate escape and
// an invalid UTF-8 byte, all valid JSON yet refused by the database, each
// become U+FFFD. Without this, one such webhook could be neither projected
// nor marked failed, and would stop every rebuild of its log. The log keeps
// the bytes as they came; only what is read from it changes. payload is
// returned as it is (not copied) when it holds none of them.
func storable(payload json.RawMessage) json.RawMessage {
	if utf8.Valid(payload) && !hasUnstorableEscape(payload) {
		return payload
	}
	p := bytes.ToValidUTF8(payload, []byte("\uFFFD"))
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); {
		c := p[i]
		if c != '\\' || i+1 >= len(p) {
			out = append(out, c)
			i++
			continue
		}
		if p[i+1] != 'u' || i+6 > len(p) {
			out = append(out, p[i], p[i+1])
			i += 2
			continue
		}
		v, ok := hex4(p[i+2 : i+6])
		switch {
		case !ok:
			out = append(out, p[i:i+6]...)
		case v == 0, isLowSurrogate(v):
			out = append(out, `\ufffd`...)
		case isHighSurrogate(v):
			if w, ok := followingEscape(p, i+6); ok && isLowSurrogate(w) {
				out = append(out, p[i:i+12]...)
				i += 12
				continue
			}
			out = append(out, `\ufffd`...)
		default:
			out = append(out, p[i:i+6]...)
		}
		i += 6
	}
	return out
}

// hasUnstorableEscape reports whether p may hold a \u0000 or a surrogate
// escape (a cheap test; storable looks closer).
func hasUnstorableEscape(p []byte) bool {
	for i := 0; ; {
		j := bytes.Index(p[i:], []byte(`\u`))
		if j < 0 {
			return false
		}
		i += j
		// An escaped backslash before "u" is no escape, but the test only
		// needs to be cautious.
		if i+6 <= len(p) {
			if v, ok := hex4(p[i+2 : i+6]); ok && (v == 0 || isHighSurrogate(v) || isLowSurrogate(v)) {
				return true
			}
		}
		i += 2
	}
}

func followingEscape(p []byte, i int) (rune, bool) {
	if i+6 > len(p) || p[i] != '\\' || p[i+1] != 'u' {
		return 0, false
	}
	return hex4(p[i+2 : i+6])
}

func hex4(h []byte) (rune, bool) {
	var v rune
	for _, c := range h {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func isHighSurrogate(v rune) bool { return 0xD800 <= v && v < 0xDC00 }
func isLowSurrogate(v rune) bool  { return 0xDC00 <= v && v < 0xE000 }
