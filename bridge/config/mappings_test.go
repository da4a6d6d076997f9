package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateMappings(t *testing.T) {
	c := &Config{Provisioners: []Provisioner{
		{Name: "good", UserMapping: map[string]string{"userName": "{{ .mail | lower }}", "title": ""}, GroupMapping: map[string]string{"displayName": "{{ .cn }}"}},
		{Name: "okta", UserMapping: map[string]string{"userName": "{{ .mail | lower ", "nosuch": "x"}},
		{Name: "grp", GroupMapping: map[string]string{"members": "{{ .member }}", "displayName": "{{ .cn"}},
	}}
	var lines []string
	for _, e := range validateMappings(c) {
		lines = append(lines, e.Error())
	}
	require.ElementsMatch(t, []string{
		`provisioner "okta": user_mapping.nosuch: "nosuch" is not an attribute of urn:ietf:params:scim:schemas:core:2.0:User`,
		`provisioner "okta": user_mapping.userName: template: userName:1: unclosed action`,
		`provisioner "grp": group_mapping.members: members are pushed as deltas of target ids, not rendered`,
		`provisioner "grp": group_mapping.displayName: template: displayName:1: unclosed action`,
	}, lines, strings.Join(lines, "\n"))
}

func TestValidateInboundMaps(t *testing.T) {
	c := &Config{Inbound: Inbound{
		UserAttributes:  map[string]string{"title": "title", "nickName": "carLicense", "noSuchAttr": "x", "displayName": "bad attr!"},
		GroupAttributes: map[string]string{"colour": "x"},
		Extensions:      []Extension{{URN: "urn:example:acme:2.0:User", Attributes: []ExtAttribute{{Name: "badge", Type: "string", LDAP: "carLicense2"}}}},
	}}
	msg := errorsText(validateMappings(c))
	require.Contains(t, msg, "inbound.user_attributes: ")
	require.Contains(t, msg, "noSuchAttr")
	require.Contains(t, msg, "bad attr!")
	require.Contains(t, msg, "inbound.group_attributes: ")
	require.Contains(t, msg, "colour")
	require.NotContains(t, msg, "nickName", "a valid override is accepted")
}

func errorsText(errs []error) string {
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.Error())
	}
	return strings.Join(lines, "\n")
}
