// Command testsum reads `go test -json` on stdin and prints what a person needs from it: one
// line per package, the whole output of each failed test, and at the end every skipped
// test with the reason it gave, so that a skip never goes unnoticed in `make test`. It
// exits 1 when a test or a build failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// event is one line of test2json.
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

type skip struct {
	pkg, test, reason string
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()

	buffered := map[string][]string{} // package + test → its output
	var skips []skip
	failed := false
	for in.Scan() {
		line := in.Bytes()
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil || ev.Action == "" {
			// Not test2json (a message from the go command itself): show it as it is.
			fmt.Fprintln(out, string(line))
			continue
		}
		key := ev.Package + " " + ev.Test
		switch {
		case ev.Action == "build-output":
			fmt.Fprint(out, ev.Output)
		case ev.Action == "build-fail":
			failed = true
		case ev.Test == "" && ev.Action == "output":
			if o := ev.Output; o != "PASS\n" && o != "FAIL\n" && !strings.HasPrefix(o, "testing: warning: no tests to run") {
				fmt.Fprint(out, o)
			}
		case ev.Test == "" && ev.Action == "fail":
			failed = true
		case ev.Action == "output":
			buffered[key] = append(buffered[key], ev.Output)
		case ev.Action == "fail":
			failed = true
			for _, o := range buffered[key] {
				fmt.Fprint(out, o)
			}
			delete(buffered, key)
		case ev.Test == "" && ev.Action == "skip":
			// A package without tests: go test said so ("?") already.
		case ev.Action == "skip":
			var reason []string
			for _, o := range buffered[key] {
				o = strings.TrimSpace(o)
				if o == "" || strings.HasPrefix(o, "=== ") || strings.HasPrefix(o, "--- SKIP") {
					continue
				}
				reason = append(reason, o)
			}
			skips = append(skips, skip{pkg: ev.Package, test: ev.Test, reason: strings.Join(reason, " ")})
			delete(buffered, key)
		case ev.Action == "pass":
			delete(buffered, key)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(out, "testsum: reading the test output: %v\n", err)
		failed = true
	}
	if len(skips) > 0 {
		fmt.Fprintf(out, "\nSKIPPED: %d tests did not run:\n", len(skips))
		for _, s := range skips {
			fmt.Fprintf(out, "  %s %s: %s\n", strings.TrimPrefix(s.pkg, "github.com/scimbridge/scimbridge/"), s.test, s.reason)
		}
	} else {
		fmt.Fprintln(out, "\nno test was skipped")
	}
	if failed {
		out.Flush()
		os.Exit(1)
	}
}
