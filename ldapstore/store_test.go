package ldapstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

func TestMain(m *testing.M) { os.Exit(ldaptest.RunMain(m, ldaptest.Options{})) }

func storeFor(t *testing.T, s *ldaptest.Server, mut ...func(*ldapstore.Config)) *ldapstore.Store {
	t.Helper()
	cfg := ldapstore.Config{
		URLs: []string{s.URL}, BindDN: s.ServiceDN, BindPassword: s.ServicePW,
		PoolSize: 4, DialTimeout: 2 * time.Second, Timeout: 5 * time.Second, PageSize: 50,
	}
	for _, m := range mut {
		m(&cfg)
	}
	st, err := ldapstore.Open(context.Background(), cfg, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

func person(uid string) map[string][]string {
	return map[string][]string{
		"objectClass": {"inetOrgPerson"}, "uid": {uid}, "cn": {uid}, "sn": {uid},
	}
}

func TestDialectDetectedAsOpenLDAP(t *testing.T) {
	s := ldaptest.Shared(t)
	st := storeFor(t, s)
	d, err := st.Dialect(context.Background())
	require.NoError(t, err)
	require.Equal(t, ldapstore.DialectOpenLDAP, d)
	require.Equal(t, "entryUUID", d.IDAttribute())
	dse, err := st.RootDSE(context.Background())
	require.NoError(t, err)
	require.True(t, dse.Supports(ldapstore.OIDAssertion), "slapd advertises the assertion control")
	require.True(t, dse.Supports(ldapstore.OIDPasswordModify))
	require.True(t, dse.Supports(ldapstore.OIDVLV), "sssvlv is loaded")
}

func TestDialectForcedByConfig(t *testing.T) {
	s := ldaptest.Shared(t)
	st := storeFor(t, s, func(c *ldapstore.Config) { c.Dialect = ldapstore.DialectGeneric })
	d, err := st.Dialect(context.Background())
	require.NoError(t, err)
	require.Equal(t, ldapstore.DialectGeneric, d)
}

func TestDetectDialectFromRecordedRootDSEs(t *testing.T) {
	for name, tc := range map[string]struct {
		raw  map[string][]string
		want ldapstore.Dialect
	}{
		"openldap": {map[string][]string{"objectClass": {"top", "OpenLDAProotDSE"}}, ldapstore.DialectOpenLDAP},
		"389ds":    {map[string][]string{"vendorName": {"389 Project"}, "vendorVersion": {"389-Directory/2.3.1 B2023.123.1234"}}, ldapstore.Dialect389DS},
		"ad":       {map[string][]string{"supportedCapabilities": {"1.2.840.113556.1.4.800", "1.2.840.113556.1.4.1670"}, "forestFunctionality": {"7"}}, ldapstore.DialectAD},
		"generic":  {map[string][]string{"vendorName": {"Example Corp"}}, ldapstore.DialectGeneric},
	} {
		t.Run(name, func(t *testing.T) { require.Equal(t, tc.want, ldapstore.DetectDialect(tc.raw)) })
	}
}

func TestCRUDAndErrorClasses(t *testing.T) {
	s, ou := ldaptest.OU(t, "crud")
	st := storeFor(t, s)
	ctx := context.Background()
	dn := "uid=ada,ou=people," + ou

	require.NoError(t, st.Add(ctx, dn, person("ada")))
	require.ErrorIs(t, st.Add(ctx, dn, person("ada")), ldapstore.ErrAlreadyExists)

	e, err := st.Get(ctx, dn, []string{"uid", "entryUUID"})
	require.NoError(t, err)
	require.Equal(t, "ada", e.First("uid"))
	require.NotEmpty(t, e.First("entryuuid"), "attribute names are case-insensitive")

	require.NoError(t, st.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModAdd, Attr: "mail", Values: []string{"a@x"}}}, ldapstore.ModifyOptions{}))
	err = st.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModAdd, Attr: "mail", Values: []string{"a@x"}}}, ldapstore.ModifyOptions{})
	require.ErrorIs(t, err, ldapstore.ErrValueExists)
	err = st.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModDelete, Attr: "mail", Values: []string{"nope@x"}}}, ldapstore.ModifyOptions{})
	require.ErrorIs(t, err, ldapstore.ErrNoSuchAttribute)
	err = st.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "noSuchAttr", Values: []string{"x"}}}, ldapstore.ModifyOptions{})
	require.ErrorIs(t, err, ldapstore.ErrInvalid)
	err = st.Modify(ctx, "uid=ghost,ou=people,"+ou, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "cn", Values: []string{"x"}}}, ldapstore.ModifyOptions{})
	require.ErrorIs(t, err, ldapstore.ErrNotFound)

	// All changes of one Modify apply or none does.
	err = st.Modify(ctx, dn, []ldapstore.Change{
		{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"Engineer"}},
		{Op: ldapstore.ModReplace, Attr: "sn", Values: nil}, // removing a required attribute fails
	}, ldapstore.ModifyOptions{})
	require.ErrorIs(t, err, ldapstore.ErrInvalid)
	e, err = st.Get(ctx, dn, []string{"title"})
	require.NoError(t, err)
	require.False(t, e.Has("title"), "a failed Modify applied nothing")

	require.NoError(t, st.ModifyDN(ctx, dn, "uid=ada2", true, ""))
	_, err = st.Get(ctx, dn, nil)
	require.ErrorIs(t, err, ldapstore.ErrNotFound)
	require.NoError(t, st.Delete(ctx, "uid=ada2,ou=people,"+ou))
	require.ErrorIs(t, st.Delete(ctx, "uid=ada2,ou=people,"+ou), ldapstore.ErrNotFound)
}

func TestAssertionControlMakesModifyConditional(t *testing.T) {
	s, ou := ldaptest.OU(t, "assert")
	st := storeFor(t, s)
	ctx := context.Background()
	dn := "uid=bob,ou=people," + ou
	require.NoError(t, st.Add(ctx, dn, person("bob")))
	e, err := st.Get(ctx, dn, []string{"entryCSN"})
	require.NoError(t, err)
	csn := e.First("entryCSN")
	require.NotEmpty(t, csn)

	cond := ldapstore.ModifyOptions{Assertion: "(entryCSN=" + ldapstore.EscapeFilter(csn) + ")"}
	require.NoError(t, st.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"one"}}}, cond))
	// The entry changed: the same assertion now fails and nothing is written.
	err = st.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"two"}}}, cond)
	require.ErrorIs(t, err, ldapstore.ErrAssertionFailed)
	e, err = st.Get(ctx, dn, []string{"title"})
	require.NoError(t, err)
	require.Equal(t, "one", e.First("title"))
}

func TestSetPasswordThenBind(t *testing.T) {
	s, ou := ldaptest.OU(t, "pw")
	st := storeFor(t, s)
	ctx := context.Background()
	dn := "uid=carol,ou=people," + ou
	require.NoError(t, st.Add(ctx, dn, person("carol")))
	require.NoError(t, st.SetPassword(ctx, dn, "S3cret!pass"))

	user, err := ldapstore.Open(ctx, ldapstore.Config{URLs: []string{s.URL}, BindDN: dn, BindPassword: "S3cret!pass"}, zerolog.Nop())
	require.NoError(t, err, "the user binds with the new password")
	user.Close()
	_, err = ldapstore.Open(ctx, ldapstore.Config{URLs: []string{s.URL}, BindDN: dn, BindPassword: "wrong"}, zerolog.Nop())
	require.ErrorIs(t, err, ldapstore.ErrDenied)
	require.NotContains(t, err.Error(), "wrong")
}

func TestWalkPagesPastTheSizeLimit(t *testing.T) {
	s, ou := ldaptest.OU(t, "walk")
	st := storeFor(t, s)
	ctx := context.Background()
	const n = 620 // above slapd's default sizelimit of 500
	for i := range n {
		require.NoError(t, st.Add(ctx, fmt.Sprintf("uid=u%04d,ou=people,%s", i, ou), person(fmt.Sprintf("u%04d", i))))
	}
	seen := map[string]bool{}
	err := st.Walk(ctx, ldapstore.Search{Base: "ou=people," + ou, Scope: ldapstore.ScopeOne, Filter: "(objectClass=inetOrgPerson)", Attrs: []string{"uid"}},
		func(e mapping.Entry) error {
			seen[e.First("uid")] = true
			return nil
		})
	require.NoError(t, err)
	require.Len(t, seen, n)

	stop := errors.New("stop")
	count := 0
	err = st.Walk(ctx, ldapstore.Search{Base: "ou=people," + ou, Scope: ldapstore.ScopeOne, Attrs: []string{"uid"}}, func(mapping.Entry) error {
		count++
		if count == 10 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 10, count)

	_, err = st.FindOne(ctx, ldapstore.Search{Base: "ou=people," + ou, Scope: ldapstore.ScopeOne, Filter: "(uid=u00*)"})
	require.ErrorIs(t, err, ldapstore.ErrInvalid, "more than one match is an error, not the first one")
	_, err = st.FindOne(ctx, ldapstore.Search{Base: "ou=people," + ou, Scope: ldapstore.ScopeOne, Filter: "(uid=" + ldapstore.EscapeFilter("*)(uid=*") + ")"})
	require.ErrorIs(t, err, ldapstore.ErrNotFound)
}

// TestRedialAfterRestart stops slapd under an open pool: callers get ErrUnavailable promptly
// while it is down, and the next operation after it is back succeeds on a fresh connection.
func TestRedialAfterRestart(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{})
	st := storeFor(t, s)
	ctx := context.Background()
	require.NoError(t, st.Ping(ctx))
	_, err := st.Get(ctx, s.PeopleDN, nil)
	require.NoError(t, err)

	require.NoError(t, s.Stop())
	start := time.Now()
	_, err = st.Get(ctx, s.PeopleDN, nil)
	require.ErrorIs(t, err, ldapstore.ErrUnavailable)
	require.Less(t, time.Since(start), 10*time.Second, "a down directory is an error, not a hang")
	require.ErrorIs(t, st.Add(ctx, "uid=x,"+s.PeopleDN, person("x")), ldapstore.ErrUnavailable)

	require.NoError(t, s.Start())
	_, err = st.Get(ctx, s.PeopleDN, nil)
	require.NoError(t, err, "the pool redials and rebinds")
	require.NoError(t, st.Add(ctx, "uid=x,"+s.PeopleDN, person("x")))
}

// TestUnresponsiveServerTimesOut: a server that accepts TCP but never answers costs the
// dial timeout, not forever.
func TestUnresponsiveServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	st, err := ldapstore.New(ldapstore.Config{URLs: []string{"ldap://" + l.Addr().String()}, BindDN: "cn=x", BindPassword: "y", DialTimeout: 300 * time.Millisecond}, zerolog.Nop())
	require.NoError(t, err)
	start := time.Now()
	err = st.Ping(context.Background())
	require.ErrorIs(t, err, ldapstore.ErrUnavailable)
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestFailoverToSecondURL(t *testing.T) {
	s := ldaptest.Shared(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "ldap://" + l.Addr().String()
	l.Close() // nothing listens there now
	st := storeFor(t, s, func(c *ldapstore.Config) { c.URLs = []string{dead, s.URL} })
	require.NoError(t, st.Ping(context.Background()))
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]ldapstore.Config{
		"no url":         {},
		"bad scheme":     {URLs: []string{"http://x"}},
		"ldaps+starttls": {URLs: []string{"ldaps://x"}, StartTLS: true},
		"missing ca":     {URLs: []string{"ldap://x"}, CAFile: "/nonexistent/ca.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ldapstore.New(cfg, zerolog.Nop())
			require.Error(t, err)
		})
	}
}

func TestGUIDRoundTrip(t *testing.T) {
	wire := []byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78}
	text := ldapstore.FormatGUID(wire)
	require.Equal(t, "12345678-1234-5678-9abc-def012345678", text)
	back, err := ldapstore.ParseGUID(text)
	require.NoError(t, err)
	require.Equal(t, wire, back)
	_, err = ldapstore.ParseGUID("nope")
	require.Error(t, err)
}

// TestTLS connects over ldaps:// and with StartTLS, verifying the server with a CA file, and
// refuses a server the CA did not sign.
func TestTLS(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{TLS: true})
	ctx := context.Background()
	for name, mut := range map[string]func(*ldapstore.Config){
		"ldaps":    func(c *ldapstore.Config) { c.URLs = []string{s.LDAPSURL}; c.CAFile = s.CAFile },
		"starttls": func(c *ldapstore.Config) { c.StartTLS = true; c.CAFile = s.CAFile },
	} {
		t.Run(name, func(t *testing.T) {
			st := storeFor(t, s, mut)
			require.NoError(t, st.Ping(ctx))
			_, err := st.Get(ctx, s.PeopleDN, nil)
			require.NoError(t, err)
		})
	}
	t.Run("unknown CA", func(t *testing.T) {
		// Another private directory's CA signed nothing this server presents.
		other := ldaptest.Private(t, ldaptest.Options{TLS: true})
		st, err := ldapstore.New(ldapstore.Config{URLs: []string{s.LDAPSURL}, CAFile: other.CAFile, BindDN: s.ServiceDN, BindPassword: s.ServicePW, DialTimeout: 2 * time.Second}, zerolog.Nop())
		require.NoError(t, err)
		err = st.Ping(ctx)
		require.ErrorIs(t, err, ldapstore.ErrUnavailable)
		require.ErrorContains(t, err, "certificate")
	})
}

// TestSharesKeepRoomForEachOther: two views of one pool, each bounded below the pool size: one
// holding its whole share never keeps the other from a connection, and waits itself for a
// share of its own rather than taking the other's.
func TestSharesKeepRoomForEachOther(t *testing.T) {
	s := ldaptest.Shared(t)
	st := storeFor(t, s) // a pool of 4
	busy, other := st.Share(3), st.Share(3)
	require.Equal(t, 3, busy.ShareSize())
	entered, release := make(chan struct{}, 3), make(chan struct{})
	done := make(chan error, 3)
	for range 3 {
		go func() {
			done <- busy.Walk(context.Background(), ldapstore.Search{Base: s.Suffix, Scope: ldapstore.ScopeBase}, func(mapping.Entry) error {
				entered <- struct{}{}
				<-release
				return nil
			})
		}()
	}
	for range 3 {
		<-entered
	}
	// busy holds its share: its next request waits (and here gives up) …
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := busy.Get(ctx, s.Suffix, []string{"1.1"})
	cancel()
	require.ErrorIs(t, err, ldapstore.ErrUnavailable, "a view waits for its own share")
	// … while the other view still gets a connection at once.
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	_, err = other.Get(ctx, s.Suffix, []string{"1.1"})
	cancel()
	require.NoError(t, err, "the other view is not starved")
	close(release)
	for range 3 {
		require.NoError(t, <-done)
	}
}

// TestLDAPI: the store reaches slapd over its Unix socket (ldapi://), which counts as a
// protected transport: nothing crosses a network.
func TestLDAPI(t *testing.T) {
	s := ldaptest.Shared(t)
	st := storeFor(t, s, func(c *ldapstore.Config) { c.URLs = []string{s.LDAPIURL} })
	e, err := st.Get(context.Background(), s.ServiceDN, []string{"cn"})
	require.NoError(t, err)
	require.Equal(t, "scimbridge", e.First("cn"))
	_, err = ldapstore.New(ldapstore.Config{URLs: []string{s.LDAPIURL}, StartTLS: true}, zerolog.Nop())
	require.Error(t, err, "start_tls goes with ldap:// only")
}
