package mapping_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/scimbridge/scimbridge/mapping"
)

var fuzzLDAPName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// decodeBody decodes a request body as the inbound server does (numbers stay json.Number);
// ok is false for what the server refuses before mapping (not JSON, not an object).
func decodeBody(data []byte) (map[string]any, bool) {
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// FuzzUserToLDAP turns arbitrary request bodies into LDAP entries, as a SCIM POST or PUT of a
// user does. No panic; every error is a SCIM error; every attribute written has a valid name
// and valid, non-blank UTF-8 values, cn, sn and the userName's attribute are always there;
// and the conversion is stable: the entry read back as a resource and converted again gives
// the same attributes.
func FuzzUserToLDAP(f *testing.F) {
	seed, err := os.ReadFile("testdata/entra_post_user.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		`{"userName":"u"}`,
		`{"userName":"OMalley","name":{"familyName":"OMalley"}}`,
		`{"USERNAME":"u","Emails":[{"value":"a@b","type":"OTHER"},{"value":"c@d","primary":"true"}],"active":"False"}`,
		`{"userName":"u","addresses":[{"type":"work","formatted":"a\nb$c\\d","country":"X"},{"type":"other","formatted":"o"}]}`,
		`{"userName":"u","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"D","phoneNumbers":[{"value":"+1 (555) 1","type":"fax"}]}`,
		`{"userName":" spaced ","displayName":"  ","name":{"givenName":"G"},"title":["a"]}`,
		`{"userName":"u","schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"meta":{"version":"x"},"id":"i","password":"p"}`,
	} {
		f.Add([]byte(s))
	}
	um := mapping.DefaultUserMap()
	rich, err := mapping.NewUserMap(mapping.ProfileFor(mapping.DialectOpenLDAP).Schema.UserAttributes)
	if err != nil {
		f.Fatal(err)
	}
	marker := mapping.DefaultActiveMarker()
	noManager := func(string) (string, error) { return "", nil }
	f.Fuzz(func(t *testing.T, body []byte) {
		res, ok := decodeBody(body)
		if !ok {
			return
		}
		for _, m := range []mapping.UserMap{um, rich} {
			w, err := mapping.UserToLDAP(res, m, marker, noManager)
			if err != nil {
				var se *mapping.Error
				if !errors.As(err, &se) {
					t.Fatalf("not a SCIM error: %v", err)
				}
				continue
			}
			checkAttrs(t, w.Attrs)
			for _, must := range []string{"cn", "sn", "uid"} {
				if len(w.Attrs[must]) == 0 {
					t.Fatalf("no %s in %v", must, w.Attrs)
				}
			}
			// Stable: what is stored, read back and written again, is what was stored.
			e := mapping.Entry{DN: "uid=x,ou=people,dc=example,dc=org", Attrs: w.Attrs}
			again, err := mapping.UserToLDAP(mapping.UserFromLDAP(e, m, marker, "", nil), m, marker, noManager)
			if err != nil {
				t.Fatalf("the stored user does not convert again: %v\n%v", err, w.Attrs)
			}
			if diff := cmp.Diff(lowerKeys(w.Attrs), lowerKeys(again.Attrs)); diff != "" {
				t.Fatalf("not stable (-first +again):\n%s", diff)
			}
		}
	})
}

// FuzzGroupToLDAP does the same for groups: the members' ids resolve to DNs built from them.
func FuzzGroupToLDAP(f *testing.F) {
	for _, s := range []string{
		`{"displayName":"g","members":[{"value":"a"},{"value":"b","display":"B"}]}`,
		`{"displayName":"g","externalId":"e","members":[]}`,
		`{"DISPLAYNAME":"g","Members":[{"value":"a"},{"value":"A"}]}`,
		`{"displayName":"","members":[{"value":""}]}`,
	} {
		f.Add([]byte(s))
	}
	gm := mapping.DefaultGroupMap()
	resolve := func(id string) (string, error) { return "uid=" + id + ",ou=people,dc=example,dc=org", nil }
	f.Fuzz(func(t *testing.T, body []byte) {
		res, ok := decodeBody(body)
		if !ok {
			return
		}
		w, err := mapping.GroupToLDAP(res, gm, resolve)
		if err != nil {
			var se *mapping.Error
			if !errors.As(err, &se) {
				t.Fatalf("not a SCIM error: %v", err)
			}
			return
		}
		checkAttrs(t, w.Attrs)
		if len(w.Attrs["cn"]) == 0 {
			t.Fatalf("no cn in %v", w.Attrs)
		}
		seen := map[string]bool{}
		for _, dn := range w.MemberDNs {
			k := strings.ToLower(dn)
			if seen[k] {
				t.Fatalf("member %q twice", dn)
			}
			seen[k] = true
		}
	})
}

func checkAttrs(t *testing.T, attrs map[string][]string) {
	t.Helper()
	for name, vals := range attrs {
		if !fuzzLDAPName.MatchString(name) {
			t.Fatalf("attribute name %q", name)
		}
		if len(vals) == 0 {
			t.Fatalf("%s has no value", name)
		}
		for _, v := range vals {
			if !utf8.ValidString(v) || strings.TrimSpace(v) == "" || strings.ContainsRune(v, 0) {
				t.Fatalf("%s: value %q", name, v)
			}
		}
	}
}

func lowerKeys(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
