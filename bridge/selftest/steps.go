package selftest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Step names. Each step's comment quotes the Microsoft documentation it follows: the
// tutorial "Develop and plan provisioning for a SCIM endpoint in Microsoft Entra ID"
// ("tutorial") or "Known issues and resolutions with SCIM 2.0 protocol compliance of the
// Microsoft Entra user provisioning service" ("known issues").
const (
	// Tutorial: "Accept a single bearer token for authentication and authorization of
	// Microsoft Entra ID to your application." A request without it, or with another
	// token, must be refused.
	StepNoToken    = "auth: no token is rejected with 401"
	StepWrongToken = "auth: wrong token is rejected with 401"
	// Tutorial: "Microsoft Entra ID makes requests to fetch a random user and group to
	// ensure that the endpoint and the credentials are valid. It's also done as a part of
	// the Test Connection flow", and "Get User by query - Zero results": 200 with a
	// ListResponse of totalResults 0.
	StepTestConnectionUsers  = "test connection: Users query for a random userName"
	StepTestConnectionGroups = "test connection: Groups query for a random displayName"
	// Tutorial "Create User": POST /Users answered 201 with the resource and its id.
	StepCreateUser  = "create user"
	StepCreateUser2 = "create second user"
	StepCreateUser3 = "create third user"
	// Tutorial "Get User", and: values sent should be stored in the same format they were
	// sent.
	StepGetUser = "get user"
	// Tutorial "Get User by query": "By default, users are retrieved with their id and
	// queried with their username and externalId." Exactly the one user must come back.
	StepQueryUserName   = "get user by query: userName eq"
	StepQueryExternalID = "get user by query: externalId eq"
	// Tutorial /Schemas example: userName is "caseExact": false, "uniqueness": "server".
	StepQueryUserNameCase = "get user by query: userName eq in other case"
	StepDuplicateUser     = "create duplicate userName: 409 uniqueness"
	StepDuplicateUserCase = "create duplicate userName in other case: 409 uniqueness"
	// Tutorial: "Support listing users and paginating" (RFC 7644 §3.4.2.4).
	StepPaging = "paging: startIndex and count"
	// Tutorial "Update User [Multi-valued properties]": "Replace" of
	// emails[type eq "work"].value and name.familyName; known issues "Requests to replace
	// multiple attributes" (without the flag).
	StepPatchMultiValued = "update user: multi-valued attributes"
	// Known issues "Requests to add a single-value string attribute" (capitalised "Add"):
	// Entra ID sends Add with a type filter path when a typed value is new.
	StepPatchAddTyped = "update user: add a new typed value"
	// Tutorial "Update User [Single-valued properties]": Replace userName.
	StepPatchUserName = "update user: single-valued attribute (userName)"
	// Known issues "Requests to replace multiple attributes" with aadOptscim062020: one
	// path-less replace whose value has dotted and extension-URN keys.
	StepPatchNoPath = "update user: replace without path, dotted keys"
	// Tutorial "Disable User" (Replace active false), and on soft-deleting a user
	// (active=false) and restoring it (active=true): the user object should be returned in
	// a request whether or not the user is active.
	StepDisable  = "disable user: active false"
	StepEnable   = "re-enable user: active true"
	StepDisableS = `disable user: active "False" as a string`
	// Tutorial "Create Group": groups are created with an empty members list.
	StepCreateGroup  = "create group"
	StepCreateGroup2 = "create second group"
	// Tutorial "Update Group [Add Members]".
	StepAddMember = "update group: add member"
	// Tutorial "Get Group": GET /Groups/{id}?excludedAttributes=members.
	StepGetGroup = "get group: excludedAttributes=members"
	// Tutorial "Get Group by displayName", and: use the displayName attribute to query groups.
	StepQueryGroup = "get group by query: displayName eq"
	// Tutorial "Update Group [Add Members]" again: an Add must add, not replace.
	StepAddMemberKeeps = "update group: add member keeps existing members"
	// Tutorial "Update Group [Remove Members]" and known issues "Requests made to remove a
	// group member" without the flag: path members with a value list.
	StepRemoveMember = "update group: remove member (path members, value list)"
	// Known issues "Requests made to remove a group member" with aadOptscim062020.
	StepRemoveMemberFilter = `update group: remove member (path members[value eq "…"])`
	// Tutorial "Update Group [Non-member attributes]": Replace displayName.
	StepRenameGroup = "update group: rename (displayName)"
	// Tutorial: "Groups must have uniqueness on the 'displayName' value.".
	StepDuplicateGroup = "create duplicate group displayName: 409 uniqueness"
	// Tutorial "Delete Group" / "Delete User": 204, and "The only time the user shouldn't
	// be returned is when it's hard deleted.".
	StepDeleteGroup     = "delete group"
	StepGetDeletedGroup = "get deleted group: 404"
	StepDeleteUser      = "delete user"
	StepGetDeletedUser  = "get deleted user: 404"
)

// Values the conversation sends and reads back.
const (
	phoneWork        = "+1 206 555 0100"
	phoneWorkUpdated = "+1 206 555 0142"
	phoneMobile      = "+1 206 555 0199"
	title            = "Selftest engineer"
	department       = "Selftest"
	employeeNumber   = "SELFTEST-1"
	employeeNumber2  = "SELFTEST-2"
)

func (r *runner) newUser(label, given string) *resource {
	return &resource{
		kind:       "Users",
		name:       fmt.Sprintf("%s-%s@example.com", r.prefix, label),
		externalID: r.prefix + "-" + label,
		given:      given,
	}
}

func (r *runner) newGroup(label string) *resource {
	return &resource{kind: "Groups", name: r.prefix + "-" + label, externalID: r.prefix + "-" + label}
}

// workEmail is the user's work email: not its userName, so that a server mixing the two
// up shows.
func (r *runner) workEmail(u *resource, version string) string {
	return fmt.Sprintf("%s.%s@example.com", u.externalID, version)
}

// userBody is what Entra ID POSTs to create a user (tutorial "Create User"); full adds the
// attributes its default mappings send besides (displayName, title, the work phone, the
// enterprise extension's employeeNumber and department).
func (r *runner) userBody(u *resource, full bool) map[string]any {
	body := map[string]any{
		"schemas":    []any{schemaUser, schemaEnterprise},
		"externalId": u.externalID,
		"userName":   u.name,
		"active":     true,
		"emails": []any{map[string]any{
			"primary": true, "type": "work", "value": r.workEmail(u, "work"),
		}},
		"meta": map[string]any{"resourceType": "User"},
		"name": map[string]any{
			"formatted": u.given + " Selftest", "familyName": "Selftest", "givenName": u.given,
		},
		"roles": []any{},
	}
	if full {
		body["displayName"] = u.externalID
		body["title"] = title
		body["phoneNumbers"] = []any{map[string]any{"type": "work", "value": phoneWork}}
		body[schemaEnterprise] = map[string]any{"employeeNumber": employeeNumber, "department": department}
	}
	return body
}

// groupBody is what Entra ID POSTs to create a group (tutorial "Create Group"), its
// Microsoft schema URN included.
func groupBody(g *resource) map[string]any {
	return map[string]any{
		"schemas":     []any{schemaGroup, schemaADGroup},
		"externalId":  g.externalID,
		"displayName": g.name,
		"meta":        map[string]any{"resourceType": "Group"},
	}
}

func op(name, path string, value any) map[string]any {
	m := map[string]any{"op": name, "value": value}
	if path != "" {
		m["path"] = path
	}
	return m
}

// conversation runs every step in order.
func (r *runner) conversation(ctx context.Context) {
	r.alice = r.newUser("alice", "Alice")
	r.bob = r.newUser("bob", "Bob")
	r.carol = r.newUser("carol", "Carol")
	r.group = r.newGroup("group")
	r.group2 = r.newGroup("group2")
	for _, d := range r.steps() {
		r.do(ctx, d)
	}
}

func (r *runner) steps() []stepDef {
	a, b, c, g, g2 := r.alice, r.bob, r.carol, r.group, r.group2
	user := []string{StepCreateUser}
	return []stepDef{
		{name: StepNoToken, fn: r.authStep(auth{none: true})},
		{name: StepWrongToken, fn: func(ctx context.Context) (string, error) {
			wrong, err := randomHex(16)
			if err != nil {
				return "", err
			}
			return r.authStep(auth{wrong: "selftest-wrong-" + wrong})(ctx)
		}},
		{name: StepTestConnectionUsers, fn: r.testConnection("Users", true)},
		{name: StepTestConnectionGroups, fn: r.testConnection("Groups", false)},

		{name: StepCreateUser, fn: func(ctx context.Context) (string, error) {
			return r.createStep(ctx, a, r.userBody(a, true))
		}},
		{name: StepGetUser, needs: user, fn: r.getUser},
		{name: StepCreateUser2, fn: func(ctx context.Context) (string, error) {
			return r.createStep(ctx, b, r.userBody(b, false))
		}},
		{name: StepCreateUser3, fn: func(ctx context.Context) (string, error) {
			return r.createStep(ctx, c, r.userBody(c, false))
		}},
		{name: StepQueryUserName, needs: []string{StepCreateUser, StepCreateUser2}, fn: func(ctx context.Context) (string, error) {
			_, err := r.findExactly(ctx, a, "userName", a.name, nil)
			return "200, exactly the one user", err
		}},
		{name: StepQueryExternalID, needs: []string{StepCreateUser, StepCreateUser2}, fn: func(ctx context.Context) (string, error) {
			_, err := r.findExactly(ctx, a, "externalId", a.externalID, nil)
			return "200, exactly the one user", err
		}},
		{name: StepQueryUserNameCase, needs: []string{StepCreateUser, StepCreateUser2}, fn: func(ctx context.Context) (string, error) {
			_, err := r.findExactly(ctx, a, "userName", strings.ToUpper(a.name), nil)
			return "200", err
		}},
		{name: StepDuplicateUser, needs: user, fn: func(ctx context.Context) (string, error) {
			dup := &resource{kind: "Users", name: a.name, externalID: a.externalID + "-duplicate", given: "Alice"}
			return r.duplicate(ctx, dup, r.userBody(dup, false))
		}},
		{name: StepDuplicateUserCase, needs: user, fn: func(ctx context.Context) (string, error) {
			dup := &resource{kind: "Users", name: strings.ToUpper(a.name), externalID: a.externalID + "-duplicate-case", given: "Alice"}
			return r.duplicate(ctx, dup, r.userBody(dup, false))
		}},
		{name: StepPaging, needs: []string{StepCreateUser, StepCreateUser2, StepCreateUser3}, fn: r.paging},

		{name: StepPatchMultiValued, needs: user, fn: r.patchMultiValued},
		{name: StepPatchAddTyped, needs: user, fn: r.patchAddTyped},
		{name: StepPatchUserName, needs: user, fn: r.patchUserName},
		{name: StepPatchNoPath, needs: user, fn: r.patchNoPath},
		{name: StepDisable, needs: user, fn: r.disable(op("Replace", "active", false), true)},
		{name: StepEnable, needs: user, fn: r.enable},
		// Only meaningful from an active user: it needs the re-enable to have worked.
		{name: StepDisableS, needs: []string{StepEnable}, fn: r.disable(op("Replace", "active", "False"), false)},

		{name: StepCreateGroup, fn: func(ctx context.Context) (string, error) {
			return r.createStep(ctx, g, groupBody(g))
		}},
		{name: StepCreateGroup2, fn: func(ctx context.Context) (string, error) {
			return r.createStep(ctx, g2, groupBody(g2))
		}},
		{name: StepAddMember, needs: []string{StepCreateGroup, StepCreateUser}, fn: func(ctx context.Context) (string, error) {
			return r.members(ctx, []*resource{a}, op("Add", "members", []any{map[string]any{"$ref": nil, "value": a.id}}))
		}},
		{name: StepGetGroup, needs: []string{StepCreateGroup}, fn: r.getGroup},
		{name: StepQueryGroup, needs: []string{StepCreateGroup, StepCreateGroup2}, fn: func(ctx context.Context) (string, error) {
			l, err := r.findExactly(ctx, g, "displayName", g.name, url.Values{"excludedAttributes": {"members"}})
			if err != nil {
				return "", err
			}
			if _, ok := getOK(l.resources[0], "members"); ok {
				return "", fmt.Errorf("the group came back with members although excludedAttributes=members")
			}
			return "200, exactly the one group", nil
		}},
		{name: StepAddMemberKeeps, needs: []string{StepAddMember, StepCreateUser2}, fn: func(ctx context.Context) (string, error) {
			return r.members(ctx, []*resource{a, b}, op("Add", "members", []any{map[string]any{"$ref": nil, "value": b.id}}))
		}},
		{name: StepRemoveMember, needs: []string{StepAddMemberKeeps}, fn: func(ctx context.Context) (string, error) {
			return r.members(ctx, []*resource{a}, op("Remove", "members", []any{map[string]any{"value": b.id}}))
		}},
		{name: StepRemoveMemberFilter, needs: []string{StepAddMemberKeeps}, fn: func(ctx context.Context) (string, error) {
			// From {a} (or {a, b} if the previous removal failed) to {a, b}, then remove a.
			if _, err := r.patch(ctx, g, op("Add", "members", []any{map[string]any{"$ref": nil, "value": b.id}})); err != nil {
				return "", fmt.Errorf("setting up (adding the second user back): %w", err)
			}
			return r.members(ctx, []*resource{b}, map[string]any{"op": "remove", "path": "members[" + eqFilter("value", a.id) + "]"})
		}},
		{name: StepRenameGroup, needs: []string{StepCreateGroup}, fn: r.renameGroup},
		{name: StepDuplicateGroup, needs: []string{StepCreateGroup2}, fn: func(ctx context.Context) (string, error) {
			dup := &resource{kind: "Groups", name: g2.name, externalID: g2.externalID + "-duplicate"}
			return r.duplicate(ctx, dup, groupBody(dup))
		}},

		{name: StepDeleteGroup, needs: []string{StepCreateGroup}, deletes: true, fn: func(ctx context.Context) (string, error) {
			return r.del(ctx, g)
		}},
		{name: StepGetDeletedGroup, needs: []string{StepDeleteGroup}, fn: func(ctx context.Context) (string, error) {
			return r.gone(ctx, g)
		}},
		{name: StepDeleteUser, needs: user, deletes: true, fn: func(ctx context.Context) (string, error) {
			return r.del(ctx, a)
		}},
		{name: StepGetDeletedUser, needs: []string{StepDeleteUser}, fn: func(ctx context.Context) (string, error) {
			return r.gone(ctx, a)
		}},
	}
}

// authStep sends the Test Connection query with a and expects 401.
func (r *runner) authStep(a auth) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		guid, err := randomGUID()
		if err != nil {
			return "", err
		}
		resp, err := r.send(ctx, http.MethodGet, "/Users", url.Values{"filter": {eqFilter("userName", guid)}}, nil, a)
		if err != nil {
			return "", err
		}
		if resp.status != http.StatusUnauthorized {
			return "", fmt.Errorf("%s: %s, want 401: %s", resp.label, statusText(resp.status), resp.excerpt())
		}
		return "401", nil
	}
}

// testConnection is Entra ID's Test Connection: a query for a random name answered 200 with
// no results. When gate is set and the endpoint does not answer 200, the rest of the
// conversation is skipped: without a working endpoint and token it would only repeat the
// same failure.
func (r *runner) testConnection(kind string, gate bool) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		guid, err := randomGUID()
		if err != nil {
			return "", err
		}
		q := url.Values{"filter": {eqFilter(nameAttr(kind), guid)}}
		if kind == "Groups" {
			q.Set("excludedAttributes", "members")
		}
		resp, err := r.send(ctx, http.MethodGet, "/"+kind, q, nil, auth{})
		if gate && (err != nil || resp.status != http.StatusOK) && ctx.Err() == nil {
			r.skipAll = "the endpoint failed Entra ID's Test Connection query"
		}
		if err != nil {
			return "", err
		}
		if err := resp.expect(http.StatusOK); err != nil {
			return "", err
		}
		l, err := parseList(resp)
		if err != nil {
			return "", err
		}
		if l.total != 0 || len(l.resources) != 0 {
			return "", fmt.Errorf("%s: totalResults %d, Resources with ids %v; want none (nothing has that %s)",
				resp.label, l.total, l.ids(), nameAttr(kind))
		}
		return "200, 0 results", nil
	}
}

func (r *runner) getUser(ctx context.Context) (string, error) {
	a := r.alice
	doc, resp, err := r.read(ctx, a, nil)
	if err != nil {
		return "", err
	}
	var c checks
	c.str("userName", get(doc, "userName"), a.name)
	c.str("externalId", get(doc, "externalId"), a.externalID)
	c.boolean("active", get(doc, "active"), true)
	c.str("displayName", get(doc, "displayName"), a.externalID)
	c.str("title", get(doc, "title"), title)
	c.str("name.givenName", getPath(doc, "name", "givenName"), "Alice")
	c.str("name.familyName", getPath(doc, "name", "familyName"), "Selftest")
	c.values(`emails[type eq "work"].value`, typedValues(doc, "emails", "work"), []string{r.workEmail(a, "work")})
	c.values(`phoneNumbers[type eq "work"].value`, typedValues(doc, "phoneNumbers", "work"), []string{phoneWork})
	c.str(schemaEnterprise+":employeeNumber", getPath(doc, schemaEnterprise, "employeeNumber"), employeeNumber)
	c.str(schemaEnterprise+":department", getPath(doc, schemaEnterprise, "department"), department)
	if err := c.err(resp.label + " (what was created does not read back as sent)"); err != nil {
		return "", err
	}
	return "200", nil
}

// duplicate POSTs a resource whose name another one has, expecting 409 uniqueness.
func (r *runner) duplicate(ctx context.Context, dup *resource, body map[string]any) (string, error) {
	resp, err := r.post(ctx, dup, body)
	if err != nil {
		return "", err
	}
	attr := nameAttr(dup.kind)
	if resp.status >= 200 && resp.status < 300 {
		id, _ := str(get(resp.doc, "id"))
		return "", fmt.Errorf("%s: %s (id %q): a second %s with %s %q was accepted; Entra ID relies on 409 to match instead of duplicating",
			resp.label, statusText(resp.status), id, dup.noun(), attr, dup.name)
	}
	if err := resp.expect(http.StatusConflict); err != nil {
		return "", err
	}
	if typ, _ := str(get(resp.doc, "scimType")); typ != "uniqueness" {
		return "", fmt.Errorf("%s: 409 with scimType %q, want \"uniqueness\"", resp.label, typ)
	}
	return "409 uniqueness", nil
}

// paging lists all users a page of one at a time: pages 1, 2 and 3 must be different users
// (this run created three), totalResults the same on every page, the page at totalResults
// one user and the page after it none.
func (r *runner) paging(ctx context.Context) (string, error) {
	page := func(start int64) (listResponse, string, error) {
		q := url.Values{"startIndex": {strconv.FormatInt(start, 10)}, "count": {"1"}}
		l, resp, err := r.query(ctx, "Users", q)
		if err != nil {
			return l, "", err
		}
		return l, resp.label, nil
	}
	var seen []string
	var total int64
	for start := int64(1); start <= 3; start++ {
		l, label, err := page(start)
		if err != nil {
			return "", err
		}
		ids := l.ids()
		switch {
		case len(ids) != 1:
			return "", fmt.Errorf("%s: %d Resources, want 1 (count ignored?)", label, len(ids))
		case start == 1 && l.total < 3:
			return "", fmt.Errorf("%s: totalResults %d, but this run alone created 3 users", label, l.total)
		case start > 1 && l.total != total:
			return "", fmt.Errorf("%s: totalResults %d, but %d with startIndex=1", label, l.total, total)
		case slices.Contains(seen, ids[0]):
			return "", fmt.Errorf("startIndex=%d returned the same user as startIndex=%d (startIndex ignored?)",
				start, slices.Index(seen, ids[0])+1)
		case l.startIndex != start:
			return "", fmt.Errorf("%s: startIndex %d in the answer, want %d", label, l.startIndex, start)
		}
		total = l.total
		seen = append(seen, ids[0])
	}
	l, label, err := page(total)
	if err != nil {
		return "", err
	}
	if len(l.resources) != 1 {
		return "", fmt.Errorf("%s: %d Resources, want 1: the last page by totalResults %d", label, len(l.resources), total)
	}
	l, label, err = page(total + 1)
	if err != nil {
		return "", err
	}
	if len(l.resources) != 0 {
		return "", fmt.Errorf("%s: %d Resources past the end, want 0: totalResults %d is wrong", label, len(l.resources), total)
	}
	return fmt.Sprintf("200, 5 pages of 1, totalResults %d", total), nil
}

// patchThenRead sends ops to res, reads it back and runs verify on it.
func (r *runner) patchThenRead(ctx context.Context, res *resource, q url.Values, verify func(doc map[string]any, c *checks), ops ...map[string]any) (string, error) {
	status, err := r.patch(ctx, res, ops...)
	if err != nil {
		return "", err
	}
	doc, resp, err := r.read(ctx, res, q)
	if err != nil {
		return "", fmt.Errorf("reading back: %w", err)
	}
	var c checks
	verify(doc, &c)
	if err := c.err("read back " + resp.label); err != nil {
		return "", err
	}
	return status + ", read back", nil
}

func (r *runner) patchMultiValued(ctx context.Context) (string, error) {
	a := r.alice
	email := r.workEmail(a, "updated")
	return r.patchThenRead(ctx, a, nil, func(doc map[string]any, c *checks) {
		c.values(`emails[type eq "work"].value`, typedValues(doc, "emails", "work"), []string{email})
		c.values(`phoneNumbers[type eq "work"].value`, typedValues(doc, "phoneNumbers", "work"), []string{phoneWorkUpdated})
		c.str("name.familyName", getPath(doc, "name", "familyName"), "Updated")
		c.str("name.givenName (not patched)", getPath(doc, "name", "givenName"), "Alice")
		c.str("userName (not patched)", get(doc, "userName"), a.name)
	},
		op("Replace", `emails[type eq "work"].value`, email),
		op("Replace", `phoneNumbers[type eq "work"].value`, phoneWorkUpdated),
		op("Replace", "name.familyName", "Updated"),
	)
}

func (r *runner) patchAddTyped(ctx context.Context) (string, error) {
	return r.patchThenRead(ctx, r.alice, nil, func(doc map[string]any, c *checks) {
		c.values(`phoneNumbers[type eq "mobile"].value`, typedValues(doc, "phoneNumbers", "mobile"), []string{phoneMobile})
		if n := len(typedValues(doc, "phoneNumbers", "work")); n != 1 {
			c.add(`phoneNumbers has %d values of type "work" after adding a mobile one, want 1`, n)
		}
	}, op("Add", `phoneNumbers[type eq "mobile"].value`, phoneMobile))
}

func (r *runner) patchUserName(ctx context.Context) (string, error) {
	a := r.alice
	old, renamed := a.name, fmt.Sprintf("%s-alice-renamed@example.com", r.prefix)
	status, err := r.patch(ctx, a, op("Replace", "userName", renamed))
	if err != nil {
		return "", err
	}
	doc, resp, err := r.read(ctx, a, nil)
	if err != nil {
		return "", fmt.Errorf("reading back: %w", err)
	}
	got, _ := str(get(doc, "userName"))
	if r.ours(got) {
		a.name = got // what later steps (and the cleanup) look it up by
	}
	var c checks
	c.str("userName", get(doc, "userName"), renamed)
	if err := c.err("read back " + resp.label); err != nil {
		return "", err
	}
	if _, err := r.findExactly(ctx, a, "userName", renamed, nil); err != nil {
		return "", fmt.Errorf("the new userName does not find the user: %w", err)
	}
	if err := r.findNone(ctx, "Users", "userName", old); err != nil {
		return "", fmt.Errorf("the old userName still finds a user: %w", err)
	}
	return status + ", read back, found by the new userName only", nil
}

func (r *runner) patchNoPath(ctx context.Context) (string, error) {
	a := r.alice
	display := a.externalID + "-updated"
	return r.patchThenRead(ctx, a, nil, func(doc map[string]any, c *checks) {
		c.str("displayName", get(doc, "displayName"), display)
		c.str("name.givenName", getPath(doc, "name", "givenName"), "Alicia")
		c.str("name.familyName", getPath(doc, "name", "familyName"), "Renamed")
		c.str(schemaEnterprise+":employeeNumber", getPath(doc, schemaEnterprise, "employeeNumber"), employeeNumber2)
	}, map[string]any{"op": "replace", "value": map[string]any{
		"displayName":                        display,
		"name.givenName":                     "Alicia",
		"name.familyName":                    "Renamed",
		schemaEnterprise + ":employeeNumber": employeeNumber2,
	}})
}

// disable sends patch (an active false in some style), and checks active reads back as the
// boolean false. With stillListed it also checks the disabled user is still found by its
// userName, as Entra ID requires.
func (r *runner) disable(patch map[string]any, stillListed bool) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		a := r.alice
		status, err := r.patchThenRead(ctx, a, nil, func(doc map[string]any, c *checks) {
			c.boolean("active", get(doc, "active"), false)
		}, patch)
		if err != nil || !stillListed {
			return status, err
		}
		l, err := r.findExactly(ctx, a, "userName", a.name, nil)
		if err != nil {
			return "", fmt.Errorf("the disabled user must still be returned: %w", err)
		}
		var c checks
		c.boolean("active", get(l.resources[0], "active"), false)
		if err := c.err("the disabled user found by userName"); err != nil {
			return "", err
		}
		return status + ", still found by userName", nil
	}
}

func (r *runner) enable(ctx context.Context) (string, error) {
	return r.patchThenRead(ctx, r.alice, nil, func(doc map[string]any, c *checks) {
		c.boolean("active", get(doc, "active"), true)
	}, op("replace", "active", true))
}

// members PATCHes the group with ops and checks its members read back as exactly want.
func (r *runner) members(ctx context.Context, want []*resource, ops ...map[string]any) (string, error) {
	return r.patchThenRead(ctx, r.group, nil, func(doc map[string]any, c *checks) {
		c.members(doc, want...)
	}, ops...)
}

func (r *runner) getGroup(ctx context.Context) (string, error) {
	g := r.group
	doc, resp, err := r.read(ctx, g, url.Values{"excludedAttributes": {"members"}})
	if err != nil {
		return "", err
	}
	var c checks
	c.str("displayName", get(doc, "displayName"), g.name)
	c.str("externalId", get(doc, "externalId"), g.externalID)
	if _, ok := getOK(doc, "members"); ok {
		c.add("members present although excluded")
	}
	if err := c.err(resp.label); err != nil {
		return "", err
	}
	return "200", nil
}

func (r *runner) renameGroup(ctx context.Context) (string, error) {
	g := r.group
	renamed := g.name + "-renamed"
	status, err := r.patchThenRead(ctx, g, url.Values{"excludedAttributes": {"members"}}, func(doc map[string]any, c *checks) {
		c.str("displayName", get(doc, "displayName"), renamed)
		if got, _ := str(get(doc, "displayName")); r.ours(got) {
			g.name = got
		}
	}, op("Replace", "displayName", renamed))
	if err != nil {
		return "", err
	}
	if _, err := r.findExactly(ctx, g, "displayName", renamed, url.Values{"excludedAttributes": {"members"}}); err != nil {
		return "", fmt.Errorf("the new displayName does not find the group: %w", err)
	}
	return status + ", found by the new displayName", nil
}

// gone checks a deleted resource answers 404 and is no longer found by its name.
func (r *runner) gone(ctx context.Context, res *resource) (string, error) {
	resp, err := r.send(ctx, http.MethodGet, "/"+res.kind+"/"+url.PathEscape(res.id), nil, nil, auth{})
	if err != nil {
		return "", err
	}
	if resp.status != http.StatusNotFound {
		return "", fmt.Errorf("%s: %s after the delete, want 404", resp.label, statusText(resp.status))
	}
	if err := r.findNone(ctx, res.kind, nameAttr(res.kind), res.name); err != nil {
		return "", fmt.Errorf("still found by %s: %w", nameAttr(res.kind), err)
	}
	return "404, not found by " + nameAttr(res.kind), nil
}
