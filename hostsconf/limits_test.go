package hostsconf

import (
	"strings"
	"testing"
	"time"
)

func TestCheckLimits(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	ok := []string{
		"",
		"a = " + deep(maxNesting),
		"[host.\"https://m\"]\nclient = [[\"a\", \"b\"]]\n[host.\"https://m\".header]\nx = [\"1\"]",
		"host = { \"a\" = { header = { x = [\"1\"] } } }",
		strings.Repeat("a.", maxKeyParts-1) + "a = 1",
		"a = \"" + strings.Repeat("[", 100) + "\"",
		"a = '" + strings.Repeat("{", 100) + "'",
		"a = \"\"\"\n" + strings.Repeat("[.", 100) + "\n\"\"\"",
		"a = '''\n" + strings.Repeat("[.", 100) + "\n'''",
		"a = \"\\\"" + strings.Repeat("[", 100) + "\"",
		"# " + strings.Repeat("[.", 100) + "\na = 1",
		"a = 1.5\nb = [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5, 13.5, 14.5, 15.5, 16.5, 17.5," +
			" 18.5, 19.5, 20.5, 21.5, 22.5, 23.5, 24.5, 25.5, 26.5, 27.5, 28.5, 29.5, 30.5, 31.5, 32.5, 33.5]",
		// an unterminated string ends at its line
		"a = \"" + strings.Repeat("[", 100) + "\nb = 1",
	}
	for _, s := range ok {
		if err := checkLimits([]byte(s)); err != nil {
			t.Errorf("%.60q: %v", s, err)
		}
	}
	bad := map[string]string{
		"a = 1\nb = " + deep(maxNesting+1):                   "line 2: nested deeper than 16",
		"a = " + strings.Repeat("{b=", maxNesting+1):         "line 1: nested deeper",
		"\n\n" + strings.Repeat("a.", maxKeyParts) + "a = 1": "line 3: a key of more than 16 parts",
		"[" + strings.Repeat("a.", maxKeyParts) + "a]":       "line 1: a key of more",
		"a = \"\"\"\n\n\"\"\"\nb = " + deep(40):              "line 4: nested",
		"a = \"x\\\ny\"\nb = " + deep(40):                    "line 3: nested",
	}
	for s, want := range bad {
		err := checkLimits([]byte(s))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60q: %v, want %q", s, err, want)
		}
	}
	if _, err := Parse([]byte("a = "+strings.Repeat("{b=", 1000)), "/d", "docker.io"); err == nil ||
		!strings.Contains(err.Error(), "/d/hosts.toml: line 1: nested deeper than 16") {
		t.Errorf("Parse: %v", err)
	}
}

// The worst a file within the limits can do stays cheap: nesting and key
// depth at the limits, repeated to the size limit.
func TestParseWorstCaseCost(t *testing.T) {
	inline := "x = " + strings.Repeat("{b=", maxNesting-1) + "1" + strings.Repeat("}", maxNesting-1) + "\n"
	dotted := strings.Repeat("a.", maxKeyParts-2) + "k%d = 1\n"
	var in, dk strings.Builder
	for i := 0; in.Len() < maxFileSize-len(inline)-20; i++ {
		in.WriteString("[t" + strings.Repeat("x", 1+i%7) + itoa(i) + "]\n" + inline)
	}
	for i := 0; dk.Len() < maxFileSize-len(dotted)-20; i++ {
		dk.WriteString(strings.Replace(dotted, "%d", itoa(i), 1))
	}
	for name, doc := range map[string]string{"inline tables": in.String(), "dotted keys": dk.String()} {
		start := time.Now()
		if _, err := Parse([]byte(doc), "/d", "docker.io"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s: %d bytes took %v", name, len(doc), d)
		} else {
			t.Logf("%s: %d bytes in %v", name, len(doc), d)
		}
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
