package ldaptest

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

var (
	sharedMu     sync.Mutex
	shared       *Server
	sharedErr    error
	sharedOpts   Options
	sharedCalled bool
)

// RunMain runs a test package's tests with one private slapd shared by all of them (started
// on first use by Shared, stopped afterwards). Call it from TestMain: os.Exit(ldaptest.RunMain(m, opts)).
// When slapd is not installed the LDAP tests skip with InstallHint — never silently: the
// hint is printed once for the package too. Once the tests passed and the slapd stopped, a
// goroutine still running fails the package (goleak): whatever a test started must end
// with it.
func RunMain(m *testing.M, opts Options) int {
	sharedOpts = opts
	if !Installed() {
		fmt.Fprintln(os.Stderr, "SKIP LDAP integration tests: "+InstallHint)
	}
	code := m.Run()
	sharedMu.Lock()
	if shared != nil {
		_ = shared.Close()
	}
	sharedMu.Unlock()
	return VerifyNoLeaks(code)
}

// VerifyNoLeaks returns code, or 1 when it is 0 and goroutines are still running (they are
// printed): the end of a TestMain that checks for leaks, os.Exit(ldaptest.VerifyNoLeaks(m.Run())).
func VerifyNoLeaks(code int, opts ...goleak.Option) int {
	if code != 0 {
		return code
	}
	if err := goleak.Find(opts...); err != nil {
		fmt.Fprintf(os.Stderr, "goroutines still running after the tests passed: %v\n", err)
		return 1
	}
	return 0
}

// Shared returns the package's slapd, starting it on first use. It skips t when slapd is not
// installed and fails t when slapd cannot start.
func Shared(t testing.TB) *Server {
	t.Helper()
	if !Installed() {
		t.Skip(InstallHint)
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if !sharedCalled {
		sharedCalled = true
		shared, sharedErr = Start(sharedOpts)
	}
	if sharedErr != nil {
		t.Fatalf("starting slapd: %v", sharedErr)
	}
	return shared
}

// Private starts a slapd owned by t alone (for tests that stop, purge or restart it) and
// closes it at cleanup.
func Private(t testing.TB, opts Options) *Server {
	t.Helper()
	if !Installed() {
		t.Skip(InstallHint)
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("starting slapd: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// OU creates an OU owned by t in the shared slapd (see Server.NewOU) and returns the server and
// the OU's DN.
func OU(t testing.TB, name string) (*Server, string) {
	t.Helper()
	s := Shared(t)
	dn, err := s.NewOU(name)
	if err != nil {
		t.Fatal(err)
	}
	return s, dn
}
