package hostsconf

import "fmt"

// The TOML decoder's cost grows with the square of a key's depth (every
// key records its whole path, and every level of an inline table its
// context): a 1 MiB file of nested inline tables takes minutes and
// gigabytes. A hosts.toml needs a depth of four (host."URL".header.name,
// client = [[cert, key]]), so the bytes are checked first, cheaply.
const (
	maxNesting  = 16 // open [ and { at once
	maxKeyParts = 16 // dots in one key
)

// checkLimits scans data as TOML just enough to tell strings and comments
// from the rest, and refuses nesting or dotted keys past the limits. It
// never refuses a hosts.toml the limits allow; on malformed input it
// resynchronises at the next line and leaves the errors to the decoder.
func checkLimits(data []byte) error {
	line, depth, dots := 1, 0, 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch c {
		case '\n':
			line++
			dots = 0
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			multi := i+2 < len(data) && data[i+1] == c && data[i+2] == c
			if multi {
				i += 2
			}
			for i++; i < len(data); i++ {
				d := data[i]
				if d == '\\' && c == '"' && i+1 < len(data) && data[i+1] != '\n' {
					i++ // an escaped character; an escaped newline is a newline
					continue
				}
				if d == '\n' {
					if !multi {
						i-- // the newline is the outer loop's
						break
					}
					line++
				}
				if d == c && (!multi || i+2 < len(data) && data[i+1] == c && data[i+2] == c) {
					if multi {
						i += 2
					}
					break
				}
			}
		case '[', '{':
			depth++
			dots = 0
			if depth > maxNesting {
				return fmt.Errorf("line %d: nested deeper than %d", line, maxNesting)
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
			dots = 0
		case '=', ',':
			dots = 0
		case '.':
			dots++
			if dots >= maxKeyParts {
				return fmt.Errorf("line %d: a key of more than %d parts", line, maxKeyParts)
			}
		}
	}
	return nil
}
