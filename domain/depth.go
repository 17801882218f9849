package domain

import (
	"bytes"

	"github.com/valyala/fastjson"
)

// MaxPayloadDepth is how deeply the values of a payload may nest: the
// payload itself is at level 1, and each value inside an object or array
// one level deeper than that object or array (so a payload object holding
// a "data" object holding a number nests 3 levels). It is the limit of the
// parser ChangeOf reads payloads with, which refuses anything deeper: ingest
// refuses a webhook nested deeper (TooDeep), and ChangeOf finds an event
// nested deeper unprojectable, saying so.
const MaxPayloadDepth = fastjson.MaxDepth

// TooDeep reports whether the JSON text b holds a value nested deeper than
// MaxPayloadDepth levels, counted as MaxPayloadDepth says. It reads b once,
// looking only at the brackets and values outside strings (a string's
// contents, escaped quotes included, are passed over), so for valid JSON it
// agrees with the parser, and for text that is not JSON it only says
// whether its brackets nest too deep.
func TooDeep(b []byte) bool {
	const max = MaxPayloadDepth
	if len(b) <= max {
		// Each level but the innermost value's takes a bracket.
		return false
	}
	open := 0 // objects and arrays open at i
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			open++
			if open > max {
				return true
			}
		case '}', ']':
			open--
		case ' ', '\t', '\n', '\r', ',', ':':
		case '"':
			// A string (a value, or a key, which sits at its value's
			// level) at level open+1; then past its closing quote, the
			// first not escaped by an odd run of backslashes.
			if open+1 > max {
				return true
			}
			j := i + 1
			for {
				k := bytes.IndexByte(b[j:], '"')
				if k < 0 {
					return false // unterminated: no more values
				}
				j += k
				esc := 0
				for p := j - 1; p > i && b[p] == '\\'; p-- {
					esc++
				}
				if esc%2 == 0 {
					break
				}
				j++
			}
			i = j
		default:
			// A number, true, false or null at level open+1.
			if open+1 > max {
				return true
			}
		}
	}
	return false
}
