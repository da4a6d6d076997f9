package ldaptest

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// sharedServer is one kind's server shared by a test package's tests, started on first use.
type sharedServer struct {
	once sync.Once
	s    *Server
	err  error
}

// sharedKey names a shared server: its kind, and whether it has scimbridge's optional schema.
type sharedKey struct {
	kind   Kind
	schema bool
}

var (
	sharedMu   sync.Mutex
	shared     = map[sharedKey]*sharedServer{}
	sharedOpts Options
	skipSaid   sync.Map // Kind → true once its install hint was printed
)

// RunMain runs a test package's tests with one private server of each kind they use, shared by
// all of them (each started on first use by Shared, SharedKind or OU, stopped afterwards). Call
// it from TestMain: os.Exit(ldaptest.RunMain(m, opts)); opts configure the slapd. When slapd is
// not installed the LDAP tests skip with InstallHint — never silently: the hint is printed once
// for the package too. Once the tests passed and the servers stopped, a goroutine still running
// fails the package (goleak): whatever a test started must end with it.
func RunMain(m *testing.M, opts Options) int {
	sharedOpts = opts
	if !Installed() {
		fmt.Fprintln(os.Stderr, "SKIP LDAP integration tests: "+InstallHint)
	}
	code := m.Run()
	sharedMu.Lock()
	for _, sh := range shared {
		if sh.s != nil {
			_ = sh.s.Close()
		}
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
	return SharedKind(t, KindOpenLDAP)
}

// SharedKind returns the package's server of kind k, starting it on first use (a 389-DS takes
// some 15 s to create, a Samba AD DC some 10 s to provision). It skips t with the kind's
// install hint when the server is not installed (or the tests do not run as root, which 389-DS
// and Samba need) and fails t when the server cannot start.
func SharedKind(t testing.TB, k Kind) *Server {
	t.Helper()
	return sharedServerOf(t, sharedKey{kind: k})
}

// SharedWithSchema returns the package's server of kind k that has scimbridge's optional schema
// (etc/schema), loaded as the README says (Options.OptionalSchema, ADOptions.OptionalSchema),
// starting it on first use. It is another server than SharedKind's, whose schema stays stock:
// a schema is the whole directory's, and an AD schema extension cannot be undone.
func SharedWithSchema(t testing.TB, k Kind) *Server {
	t.Helper()
	return sharedServerOf(t, sharedKey{kind: k, schema: true})
}

func sharedServerOf(t testing.TB, key sharedKey) *Server {
	t.Helper()
	k := key.kind
	if ok, hint := KindInstalled(k); !ok {
		if _, said := skipSaid.LoadOrStore(k, true); !said {
			// Once per package on stderr too, so that a run without -v says it.
			fmt.Fprintf(os.Stderr, "SKIP %s tests: %s\n", k, hint)
		}
		t.Skip(hint)
	}
	sharedMu.Lock()
	sh := shared[key]
	if sh == nil {
		sh = &sharedServer{}
		shared[key] = sh
	}
	sharedMu.Unlock()
	sh.once.Do(func() {
		opts := sharedOpts
		opts.OptionalSchema = opts.OptionalSchema || key.schema
		sh.s, sh.err = StartKind(k, opts)
	})
	if sh.err != nil {
		what := "the " + string(k) + " server"
		if key.schema {
			what += " with the optional schema"
		}
		t.Fatalf("starting %s: %v", what, sh.err)
	}
	return sh.s
}

// KindInstalled reports whether servers of kind k can run here, and if not, what to do.
func KindInstalled(k Kind) (bool, string) {
	switch k {
	case Kind389DS:
		return Installed389(), Install389Hint
	case KindAD:
		return InstalledAD(), InstallADHint
	}
	return Installed(), InstallHint
}

// StartKind starts a private server of kind k. opts configure a slapd; of them, Suffix also
// applies to a 389-DS, and OptionalSchema to every kind.
func StartKind(k Kind, opts Options) (*Server, error) {
	switch k {
	case Kind389DS:
		return Start389(Options{Suffix: opts.Suffix, OptionalSchema: opts.OptionalSchema})
	case KindAD:
		return StartAD(ADOptions{OptionalSchema: opts.OptionalSchema})
	}
	return Start(opts)
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
	return OUIn(t, KindOpenLDAP, name)
}

// OUIn creates an OU owned by t in the package's server of kind k and returns the server and
// the OU's DN.
func OUIn(t testing.TB, k Kind, name string) (*Server, string) {
	t.Helper()
	s := SharedKind(t, k)
	return s, NewOU(t, s, name)
}

// NewOU creates an OU owned by t on s (see Server.NewOU) and returns its DN. On Active
// Directory it deletes the OU at cleanup: a sAMAccountName is unique in the whole domain, not
// in the OU, so a second run of the same test (go test -count=2) would find its accounts'
// names taken. Deleting frees them (a deleted object keeps its name, but not in the
// uniqueness check).
func NewOU(t testing.TB, s *Server, name string) string {
	t.Helper()
	dn, err := s.NewOU(name)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind == KindAD {
		t.Cleanup(func() {
			if err := s.DeleteTree(dn); err != nil {
				t.Logf("leaving %s behind: %v", dn, err)
			}
		})
	}
	return dn
}

// Kinds are every kind of server, OpenLDAP first: the end-to-end suites run against each.
var Kinds = []Kind{KindOpenLDAP, Kind389DS, KindAD}
