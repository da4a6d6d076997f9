package integration

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRenamedScopeGroupDeprovisionsNobody: renaming the provisioner's scope group with
// ldapmodify (its configured DN no longer exists) disables nobody on the target; status,
// the CLI, the metrics and the log say why, and a user created in the meantime through
// another scope group still arrives. Renamed back, the provisioner goes on as before.
func TestRenamedScopeGroupDeprovisionsNobody(t *testing.T) {
	o := newOutEnv(t, "scoperename")
	target := strictTarget(t)
	o.addUser("ada", "Ada", "Lovelace")
	o.addUser("bob", "Bob", "Builder")
	o.addUser("eve", "Eve", "Other")
	o.addGroup("app", "ada", "bob")
	o.addGroup("extra", "eve")
	o.start(o.provisioner("app", target.URL, `groups = ["`+o.groupDN("app")+`", "`+o.groupDN("extra")+`"]`))
	waitFor(t, "ada, bob and eve on the target", func() bool { return len(target.Users()) == 3 })

	o.ldif("dn: " + o.groupDN("app") + "\nchangetype: modrdn\nnewrdn: cn=app-renamed\ndeleteoldrdn: 1\n")
	waitFor(t, "status naming the missing group", func() bool {
		sc, _ := o.provStatus("app")["scope"].(map[string]any)
		return sc != nil && sc["error"] != nil
	})
	sc := o.provStatus("app")["scope"].(map[string]any)
	require.Equal(t, []any{o.groupDN("app")}, sc["missing_groups"])
	require.Contains(t, sc["error"], "deprovisioning is held")

	// Creates through the other scope group continue meanwhile.
	o.addUser("fay", "Fay", "Later")
	o.modify(o.groupDN("extra"), "add: member", "member: "+o.userDN("fay"))
	waitFor(t, "fay on the target", func() bool { _, ok := target.UserByName("fay"); return ok })
	for _, u := range target.Users() {
		require.True(t, active(u), "%s stays active", u["userName"])
	}
	for _, r := range target.Requests() {
		require.NotEqual(t, "DELETE", r.Method)
	}
	out, errOut, code := o.cli("status")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "scope group")
	require.Contains(t, out, o.groupDN("app"))
	_, metrics := o.d.get("/metrics")
	require.Contains(t, metrics, `scimbridge_outbound_scope_groups_missing{provisioner="app"} 1`)
	require.Contains(t, o.d.stderr.String(), "scope group not found")

	// Back under its configured name: the error clears, nobody was deprovisioned.
	o.ldif("dn: cn=app-renamed," + o.groups + "\nchangetype: modrdn\nnewrdn: cn=app\ndeleteoldrdn: 1\n")
	waitFor(t, "the scope error cleared", func() bool { return o.provStatus("app")["scope"] == nil })
	for _, u := range target.Users() {
		require.True(t, active(u), "%s stays active", u["userName"])
	}
	require.Equal(t, 0, o.d.stop())
}
